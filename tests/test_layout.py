"""The package's shape as docs/architecture.md states it: small folders, imports one way."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mmfedrec"

MAY_IMPORT = {  # package -> the mmfedrec packages it may import (besides itself and the shared modules)
    "config": set(),
    "data": {"config"},
    "evaluation": {"config", "data"},
    "encoders": {"config", "data", "federation.aggregation"},
    "generators": {"config", "data", "evaluation", "federation.aggregation", "federation.local", "federation.privacy"},
    "federation": {"config", "data", "encoders", "evaluation", "generators"},
}
SHARED = {"atomic", "checkpoint", "errors", "runtime", "_lazy"}


def test_no_folder_holds_more_than_twelve_python_files() -> None:
    crowded = {
        str(d.relative_to(PACKAGE)): n
        for d in PACKAGE.rglob("*")
        if d.is_dir()
        for n in [len(list(d.glob("*.py")))]
        if n > 12
    }
    assert not crowded


def imported_packages(path: Path) -> set[str]:
    """The mmfedrec modules a file imports, as dotted names below `mmfedrec`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmfedrec."):
            names.add(node.module.removeprefix("mmfedrec."))
        elif isinstance(node, ast.Import):
            names |= {a.name.removeprefix("mmfedrec.") for a in node.names if a.name.startswith("mmfedrec.")}
    return names


def test_imports_go_one_way() -> None:
    wrong = []
    for package, allowed in MAY_IMPORT.items():
        for path in (PACKAGE / package).rglob("*.py"):
            for name in imported_packages(path):
                top = name.split(".")[0]
                if top in (package, *SHARED) or any(name == a or name.startswith(a + ".") for a in allowed):
                    continue
                if top == "federation" and package == "federation":
                    continue
                wrong.append(f"{path.relative_to(PACKAGE)} imports mmfedrec.{name}")
    assert not wrong


FEDERATION_ORDER = (
    "models",
    "local",
    "privacy",
    "aggregation",
    "engines",
    "flower",
)  # each imports only those before it


def test_the_federation_rooms_import_one_way() -> None:
    wrong = []
    for rank, room in enumerate(FEDERATION_ORDER):
        for path in (PACKAGE / "federation" / room).rglob("*.py"):
            for name in imported_packages(path):
                parts = [*name.split("."), ""]
                later = parts[0] == "federation" and parts[1] in FEDERATION_ORDER[rank + 1 :]
                if later:
                    wrong.append(f"{path.relative_to(PACKAGE)} imports mmfedrec.{name}")
    assert not wrong
