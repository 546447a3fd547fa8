"""ARCHITECTURE.md §2 as a test: the dependency direction, and one reader of the environment.

Walks the source tree's syntax (ast): an import or an environment read hidden inside a function
counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("saga", "events", "analytics", "adapters", "projections", "api", "infra", "bench")
OURS = (*PACKAGES, "tests", "schemas")
SETTINGS = ROOT / "infra" / "settings.py"


def sources(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append((node.lineno, node.module))
    return names


def environment_reads(tree: ast.AST) -> list[int]:
    """Lines that touch os.environ / os.getenv / environ.get / getenv / putenv, however
    imported (`from os import environ` included)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "putenv"}:
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(a.name in {"environ", "getenv", "putenv"} for a in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.Name) and node.id in {"environ", "getenv"}:
            lines.append(node.lineno)
    return lines


def parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


def test_the_walk_sees_the_source_tree() -> None:
    # A wrong ROOT would make every test below pass vacuously.
    assert len(sources(*PACKAGES)) > 100 and SETTINGS in sources("infra")


def test_nothing_reads_the_environment_outside_infra_settings() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sources(*PACKAGES)
        if path != SETTINGS
        for line in environment_reads(parse(path))
    ]
    assert found == [], "read the environment only in infra/settings.py (Settings): " + ", ".join(
        found
    )


def test_the_environment_check_catches_every_spelling() -> None:
    for code in (
        "import os\nos.environ['X']",
        "import os\nos.getenv('X')",
        "from os import environ\nenviron.get('X')",
        "import os\nenv = {**os.environ}",
    ):
        assert environment_reads(ast.parse(code)), code
    assert environment_reads(ast.parse("settings.jwt_secret")) == []


@pytest.mark.parametrize("package", ["saga", "events", "adapters", "api", "projections"])
def test_nothing_outside_infra_imports_infra(package: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sources(package)
        for line, name in imported(parse(path))
        if name == "infra" or name.startswith("infra.")
    ]
    assert found == [], "the composition root hands values in instead: " + "; ".join(found)


@pytest.mark.parametrize(
    ("package", "allowed"), [("saga", {"saga", "events"}), ("events", {"events", "saga"})]
)
def test_saga_and_events_import_nothing_of_ours_but_each_other(
    package: str, allowed: set[str]
) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sources(package)
        for line, name in imported(parse(path))
        if name.split(".")[0] in OURS and name.split(".")[0] not in allowed
    ]
    assert found == [], "; ".join(found)


def test_the_import_check_sees_imports_inside_functions() -> None:
    tree = ast.parse("def f():\n    from infra.settings import Settings\n")
    assert imported(tree) == [(2, "infra.settings")]
