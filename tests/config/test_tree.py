"""The configuration tree: torch-free, one name per setting, strict readers, lossless written forms."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mmfedrec.config import ConfigError, RunConfig
from mmfedrec.config.codec import (
    flatten,
    from_dict,
    from_flat,
    leaf_fields,
    read_config_file,
    to_dict,
    to_toml,
    with_settings,
)

CHANGED = {  # one non-default value per kind of field
    "method": "fedavg-mf",
    "seeds": (3, 4),
    "engine": "loop",
    "dataset": "csv",
    "interactions": Path("/data/events.csv"),
    "min_rating": 4.0,
    "cache_dir": None,
    "rounds": 7,
    "lr": 0.123,
    "negatives_avoid_heldout": True,
    "expertwise": False,
    "row_optimizer": "sgd",
    "compress_bits": 8,
}


def test_importing_the_config_never_imports_torch() -> None:
    code = "import mmfedrec.config, mmfedrec.config.arguments, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_setting_has_one_name_and_a_help_text() -> None:
    leaves = leaf_fields()  # raises when a name is defined twice
    assert len(leaves) > 60
    assert all(item.metadata.get("help") for _, item, _ in leaves.values())


@pytest.mark.parametrize("form", ["dict", "toml", "flat"])
def test_written_forms_read_back_to_the_same_tree(form: str) -> None:
    config = with_settings(RunConfig(), **CHANGED)
    if form == "dict":
        again = from_dict(to_dict(config), "test")
    elif form == "toml":
        again = from_dict(tomllib.loads(to_toml(config)), "test")
    else:
        again = from_flat(flatten(config))
    assert again == config


def test_a_wrong_key_or_type_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[local]\nlrr = 0.1\n")
    with pytest.raises(ConfigError, match=r"c.toml: unknown key local.lrr \(expected one of: .*lr,"):
        from_dict(read_config_file(str(path)), str(path))
    path.write_text('[train]\nrounds = "many"\n')
    with pytest.raises(ConfigError, match=r"c.toml: train.rounds: expected int, got 'many'"):
        from_dict(read_config_file(str(path)), str(path))
    path.write_text("[local]\nlr = nan\n")
    with pytest.raises(ConfigError, match=r"--lr \(lr\) must be a finite number, got nan"):
        from_dict(read_config_file(str(path)), str(path))


FLOATS = [name for name, (_, _, hint) in leaf_fields().items() if hint is float]


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_no_float_setting_takes_nan_or_inf(name: str, value: float) -> None:
    """Even a setting whose feature is off: NaN once reached config.json and switched DP off silently."""
    with pytest.raises(ConfigError, match=f"--{name.replace('_', '-')}"):
        with_settings(RunConfig(), **{name: value})


def test_settings_are_checked_against_their_ranges_and_choices() -> None:
    with pytest.raises(ConfigError, match=r"--client-fraction \(client_fraction\) must be > 0"):
        with_settings(RunConfig(), client_fraction=0.0)
    with pytest.raises(ConfigError, match=r"--loss \(loss\) must be one of bce, bpr, softmax, got 'mse'"):
        with_settings(RunConfig(), loss="mse")
    with pytest.raises(ConfigError, match="--history applies to ours and its ablations, not fedncf"):
        with_settings(RunConfig(), method="fedncf", history=3)


def test_named_configs_ship_with_the_package() -> None:
    recipe = from_dict(read_config_file("ml-100k"), "ml-100k")
    assert (recipe.data.dataset, recipe.model.dim, recipe.model.history) == ("movielens-100k", 48, 10)
    assert recipe.local.row_lr == 50.0
    with pytest.raises(ConfigError, match="not a named config"):
        read_config_file("no-such-recipe")


def test_data_paths_become_absolute() -> None:
    data = dataclasses.replace(RunConfig().data, root=Path("ml-100k")).absolute()
    assert data.root == Path.cwd() / "ml-100k" and data.cache_dir.is_absolute()
