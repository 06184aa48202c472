"""Command-line flags from the configuration tree: one `--<field-name>` per setting.

Flags default to "not given", so the resolved configuration is: the tree's defaults, then a
config file (`--config`), then the flags a user typed.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any

from mmfedrec.config.codec import from_dict, leaf_fields, merge, read_config_file, to_dict, value_type
from mmfedrec.config.tree import RunConfig, flag


def add_config_arguments(parser: argparse.ArgumentParser, sections: tuple[str, ...] | None = None) -> None:
    """Add a flag for each setting of `sections` ("" = the run's own fields; None = all), grouped by section."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    defaults = to_dict(RunConfig())
    for name, (section, item, hint) in leaf_fields().items():
        if sections is not None and section not in sections:
            continue
        group = groups.get(section) or groups.setdefault(section, parser.add_argument_group(section or "run"))
        default = defaults[section][name] if section else defaults[name]
        help_text = item.metadata.get("help", "")
        if item.metadata.get("choices"):
            help_text += f"; one of: {', '.join(map(str, item.metadata['choices']))}"
        shown = (
            "unset"
            if default in (None, "")
            else (",".join(map(str, default)) if isinstance(default, list) else default)
        )
        help_text = f"{help_text} (default: {shown})".replace("%", "%%")
        if hint is bool:
            group.add_argument(
                flag(name), action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        else:
            group.add_argument(
                flag(name),
                default=argparse.SUPPRESS,
                metavar=_metavar(hint),
                type=_text_parser(name, hint),
                help=help_text,
            )


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings a user typed on the command line, nested by section."""
    given: dict[str, Any] = {}
    for name, (section, _, _) in leaf_fields().items():
        if name in vars(args):
            (given.setdefault(section, {}) if section else given)[name] = getattr(args, name)
    return given


def resolve_config(args: argparse.Namespace, defaults: dict[str, Any] | None = None, **fixed: Any) -> RunConfig:
    """The tree's defaults, then a command's own `defaults`, then `args.config` (a file, run folder
    or named config), then the typed flags, then `fixed`; paths made absolute."""
    base = dict(defaults or {})
    source = "command line"
    if getattr(args, "config", None):
        base = merge(base, read_config_file(args.config))
        source = f"--config {args.config}"
    return from_dict(merge(merge(base, given_settings(args)), fixed), source).absolute()


def section_from_args(args: argparse.Namespace, section: str) -> Any:
    """One section built from its typed flags (for subcommands that need only, say, the data)."""
    return getattr(from_dict({section: given_settings(args).get(section, {})}, "command line", RunConfig), section)


def _metavar(hint: Any) -> str:
    hint = value_type(hint)
    if typing.get_origin(hint) is tuple:
        return "N,N,..."
    return {int: "N", float: "X", Path: "PATH"}.get(hint, "TEXT")


def _text_parser(name: str, hint: Any):
    """Text to the field's type; a bad value is a one-line error naming the flag."""
    base = value_type(hint)

    def parse(text: str) -> Any:
        if isinstance(hint, types.UnionType) and text == "":
            return None
        try:
            if base is int:
                return int(text)
            if base is float:
                return float(text)
            if typing.get_origin(base) is tuple:
                return tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            kind = "comma-separated integers" if typing.get_origin(base) is tuple else f"an {base.__name__}"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        return text

    parse.__name__ = name  # argparse names the type in its message
    return parse
