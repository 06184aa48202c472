"""The configuration tree to and from its written forms, generically from the dataclass fields.

- nested plain dicts: `config.json` and the summary (JSON keeps None as null);
- TOML: config files (`--config`, `--print-config`); TOML has no null, so None is written "";
- flat `section.field` keys: Flower's run config (flwr flattens pyproject tables the same way;
  lists are not allowed there, so seeds travel as "0,1,2").
Every reader is strict: an unknown key or a value of the wrong type is a one-line error naming it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmfedrec.config.tree import ConfigError, RunConfig

NAMED_CONFIGS = Path(__file__).parent / "named"
_ACCEPTS = {bool: (bool,), int: (int,), float: (int, float), str: (str,), Path: (str, Path)}


def to_dict(config: Any) -> dict[str, Any]:
    """Nested plain values (Path as text, tuples as lists) for JSON."""
    out: dict[str, Any] = {}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if dataclasses.is_dataclass(value):
            out[item.name] = to_dict(value)
        elif isinstance(value, Path):
            out[item.name] = str(value)
        elif isinstance(value, tuple):
            out[item.name] = list(value)
        else:
            out[item.name] = value
    return out


def to_toml(config: RunConfig) -> str:
    """The resolved configuration as TOML that `--config` reads back to the same tree."""
    import tomli_w

    def nulls_as_text(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: nulls_as_text(v) for k, v in value.items()}
        return "" if value is None else value

    return tomli_w.dumps(nulls_as_text(to_dict(config)))


def flatten(config: RunConfig) -> dict[str, str | int | float | bool]:
    """Flower's run config: one `section.field` key per leaf, scalars only."""
    flat: dict[str, str | int | float | bool] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif isinstance(value, list):
                flat[prefix + key] = ",".join(map(str, value))
            else:
                flat[prefix + key] = "" if value is None else value

    walk(to_dict(config), "")
    return flat


def from_flat(flat: Mapping[str, object], source: str = "run config") -> RunConfig:
    """The tree from flat `section.field` keys (Flower's `context.run_config`)."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *sections, name = key.split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    return from_dict(nested, source)


def from_dict(data: Mapping[str, Any], source: str, cls: type = RunConfig) -> Any:
    """A config dataclass from nested plain values; `source` names the file in errors."""
    return _build(cls, data, source, "")


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, section by section."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_config_file(name: str) -> dict[str, Any]:
    """A config file's nested values: a TOML file, a run folder or its config.json, or a named config."""
    path = Path(name)
    if path.is_dir():
        path = path / "config.json"
    if not path.exists():
        named = NAMED_CONFIGS / f"{name}.toml"
        if not named.exists():
            known = ", ".join(sorted(p.stem for p in NAMED_CONFIGS.glob("*.toml")))
            raise ConfigError(f"--config {name}: no such file, and not a named config (named: {known})")
        path = named
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ConfigError(f"{path}: not a readable TOML/JSON config ({error})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of sections")
    data.pop("out", None)  # a run folder's config.json also names its folder, which is not a setting
    return data


def with_settings(config: RunConfig, **settings: Any) -> RunConfig:
    """`config` with settings replaced by their (unique) field names, e.g. `lr=0.1, dataset="csv"`."""
    leaves = leaf_fields()
    by_section: dict[str, dict[str, Any]] = {}
    for name, value in settings.items():
        if name not in leaves:
            raise ConfigError(f"unknown setting {name!r}")
        section, _, hint = leaves[name]
        by_section.setdefault(section, {})[name] = coerce(value, hint, name)
    root = by_section.pop("", {})
    sections = {name: dataclasses.replace(getattr(config, name), **values) for name, values in by_section.items()}
    return dataclasses.replace(config, **root, **sections)


@functools.cache
def leaf_fields() -> dict[str, tuple[str, dataclasses.Field, Any]]:
    """Every setting by its (unique) field name: (section or "", field, type hint)."""
    leaves: dict[str, tuple[str, dataclasses.Field, Any]] = {}

    def add(cls: type, section: str) -> None:
        hints = typing.get_type_hints(cls)
        for item in dataclasses.fields(cls):
            hint = hints[item.name]
            if dataclasses.is_dataclass(hint):
                add(hint, item.name)
                continue
            if item.name in leaves:
                raise AssertionError(f"setting {item.name} is defined twice; names must be unique across the tree")
            leaves[item.name] = (section, item, hint)

    add(RunConfig, "")
    return leaves


def _build(cls: type, data: Mapping[str, Any], source: str, prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the config'} must be a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {item.name for item in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{source}: unknown key {prefix}{key} (expected one of: {', '.join(sorted(names))})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            values[key] = _build(hint, value, source, f"{prefix}{key}.")
        else:
            values[key] = coerce(value, hint, f"{source}: {prefix}{key}")
    try:
        return cls(**values)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def value_type(hint: Any) -> Any:
    """The type a field holds when set: X for `X | None`."""
    if isinstance(hint, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return inner
    return hint


def coerce(value: Any, hint: Any, where: str) -> Any:
    """`value` as type `hint` (int, float, bool, str, Path, tuple[int, ...], or X | None)."""
    if isinstance(hint, types.UnionType):
        return None if value is None or value == "" else coerce(value, value_type(hint), where)
    if typing.get_origin(hint) is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(value, int) and not isinstance(value, bool):
            items = [value]
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{where}: expected a list of integers, got {value!r}")
        return tuple(
            coerce(int(v) if isinstance(v, str) and v.strip().lstrip("-").isdigit() else v, int, where) for v in items
        )
    accepted = _ACCEPTS.get(hint, ())
    if isinstance(value, accepted) and (hint is bool or not isinstance(value, bool)):  # True is no number
        return hint(value)
    kind = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{where}: expected {kind}, got {value!r}")
