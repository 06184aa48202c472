import json
import pickle

import numpy as np
import pytest
import torch

from mmfedrec.checkpoint import load_checkpoint, save_checkpoint
from mmfedrec.errors import MmfedrecError


def tensors(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "shared.experts.weight": torch.randn(3, 4, 5, generator=generator),
        "private.user": torch.randn(10, 4, generator=generator),
        "rng.torch": generator.get_state(),  # uint8 state of a torch.Generator
        "counts": torch.arange(6, dtype=torch.int64),
    }


def test_round_trip_keeps_tensors_and_rng_states(tmp_path) -> None:
    rng = np.random.default_rng(7)
    rng.random(5)  # a generator part-way through its stream
    meta = {
        "round": 12,
        "rng": rng.bit_generator.state,
        "accountant": {"mechanism": "rdp", "history": [[1.1, 0.1, 12]]},
    }
    path = tmp_path / "runs" / "ckpt.safetensors"
    save_checkpoint(path, tensors(0), meta)
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded.keys() == tensors(0).keys()
    for name, tensor in tensors(0).items():
        assert torch.equal(loaded[name], tensor) and loaded[name].dtype == tensor.dtype
    assert loaded_meta == json.loads(json.dumps(meta))
    restored = np.random.default_rng()
    restored.bit_generator.state = loaded_meta["rng"]
    assert np.array_equal(restored.random(4), rng.random(4))
    resumed, original = torch.Generator(), torch.Generator()
    resumed.set_state(loaded["rng.torch"])
    original.set_state(tensors(0)["rng.torch"])
    assert torch.equal(torch.rand(3, generator=resumed), torch.rand(3, generator=original))
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.safetensors"]  # no temp files left


def test_a_crash_mid_write_leaves_the_old_checkpoint(tmp_path, monkeypatch) -> None:
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, tensors(0), {"round": 1})

    def crash(*args: object) -> None:
        raise OSError("simulated crash after the temp file was written")

    monkeypatch.setattr("mmfedrec.atomic.os.replace", crash)  # the rename every atomic write ends with
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, tensors(1), {"round": 2})
    monkeypatch.undo()
    loaded, meta = load_checkpoint(path)
    assert meta == {"round": 1} and torch.equal(loaded["private.user"], tensors(0)["private.user"])
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]


@pytest.mark.parametrize("keep", [0, 7, 60, -9])
def test_truncated_files_are_a_clear_error(tmp_path, keep: int) -> None:
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, tensors(0), {"round": 1})
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(MmfedrecError, match=r"ckpt\.safetensors: not a readable safetensors checkpoint") as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value)


def test_pickles_are_never_loaded(tmp_path) -> None:
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"round": 1}))
    with pytest.raises(MmfedrecError, match=r"evil\.safetensors: not a readable"):
        load_checkpoint(path)
    torch.save({"x": torch.zeros(2)}, path)  # torch's own pickle-based format
    with pytest.raises(MmfedrecError, match=r"evil\.safetensors: not a readable"):
        load_checkpoint(path)


def test_foreign_safetensors_and_missing_files(tmp_path) -> None:
    from safetensors.torch import save_file

    foreign = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(2)}, foreign)
    with pytest.raises(MmfedrecError, match="not written by mmfedrec"):
        load_checkpoint(foreign)
    with pytest.raises(MmfedrecError, match=r"missing\.safetensors: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
