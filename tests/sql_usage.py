"""What the project's modules say in SQL, read from their source (not from a list kept by hand).

Used by the schema tests: no module outside the migrations runs DDL, and the tables the
migrations create are exactly the ones the modules query.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("saga", "events", "analytics", "adapters", "projections", "api", "infra", "bench", "db")
MIGRATIONS = ROOT / "db" / "migrations"

DDL = re.compile(
    r"\b(CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|VIEW|MATERIALIZED\s+VIEW)|ALTER\s+TABLE"
    r"|DROP\s+TABLE|DROP\s+INDEX|DROP\s+VIEW)\b",
    re.IGNORECASE,
)
# SQL here is written in upper case, so a prose "from" in a log message is not a table.
_NAMED = re.compile(r"(\w+)?\s*\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+(\{\w*\}|[A-Za-z_][\w.]*)(\()?")
_CTE = re.compile(r"\b(\w+)\s+AS\s*(?:MATERIALIZED\s*)?\(", re.IGNORECASE)
_NOT_TABLES = {"SET", "SKIP", "NOWAIT", "OF", "ONLY", "LATERAL", "SELECT"}
_SYSTEM = ("pg_", "information_schema")


def modules(*, include_migrations: bool = False) -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if include_migrations or MIGRATIONS not in path.parents:
                yield path


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def code_strings(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every string literal in `path` except docstrings (prose, not code)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def runtime_ddl() -> list[str]:
    """`path:line: statement` for every DDL statement or create_all outside the migrations."""
    found = []
    for path in modules():
        rel = path.relative_to(ROOT)
        for line, text in code_strings(path):
            if match := DDL.search(text):
                found.append(f"{rel}:{line}: {match.group(0)}")
        for n, source_line in enumerate(path.read_text().splitlines(), 1):
            if ".create_all(" in source_line:
                found.append(f"{rel}:{n}: create_all")
    return found


def _identifier_names(tree: ast.AST) -> Iterator[str]:
    """Tables named through psycopg's sql.Identifier(schema, "name") or a helper `_t(schema,
    "name")`, where the SQL text itself says only `{}`; and analytics' `WindowSpec("table",
    ...)`, whose name is the table its windows are upserted into (sql.Identifier(spec.name))."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first, last = node.args[0], node.args[-1]
        if len(node.args) == 2 and name in ("Identifier", "_t") and isinstance(last, ast.Constant):
            yield str(last.value)
        if name == "WindowSpec" and isinstance(first, ast.Constant):
            yield str(first.value)


def queried_tables() -> set[str]:
    """Every relation a module outside the migrations reads or writes by name."""
    names: set[str] = set()
    for path in modules():
        tree = ast.parse(path.read_text(), str(path))
        for _, text in code_strings(path):
            ctes = {m.group(1) for m in _CTE.finditer(text)}
            for before, name, call in _NAMED.findall(text):
                if call or before.lower() == "epoch" or name in _NOT_TABLES or name == "{}":
                    continue
                if name in ("{t}",):
                    continue  # analytics/store.py: sql.Identifier of a WindowSpec's table
                if before.upper() == "DISTINCT" or name.upper().startswith("EXCLUDED."):
                    continue  # IS DISTINCT FROM a column; an upsert's EXCLUDED row
                name = name.strip("{}").rsplit(".", 1)[-1]
                if name and name not in ctes and not name.startswith(_SYSTEM):
                    names.add(name)
        names.update(_identifier_names(tree))
    return names
