"""Avro schemas of the message contracts: derived from the dataclasses, published as .avsc files.

`schemas/avro/<Name>.avsc` is the published source of truth for every message on Kafka. The
files are *generated* from the frozen dataclasses in `events.messages` (so code and contract
cannot silently diverge: a unit test fails on any drift) but they are committed and reviewed
like any other public contract, and the serde loads the files, not the dataclasses' schema.

    python -m events.avro --check   # exit 1 when the files differ from the dataclasses
    python -m events.avro --write   # regenerate; archives changed schemas into history/

Record layout (one record per message class, record name == class name, namespace
`checkout.v1`): first field `envelope` (the named record `Envelope`), then the message's own
fields. Named types (Envelope, LineItem, Address, enums) are defined once per file, on first
use, and referenced by name afterwards, so every file is self-contained.

Previous published versions live in `schemas/avro/history/<Name>.v<N>.avsc`: the single-object
decoder needs them to read data written before a change (see docs/decisions/0001).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import enum
import io
import json
import re
import sys
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from events import messages

NAMESPACE = "checkout.v1"
ENVELOPE_FIELD = "envelope"
ENVELOPE_RECORD = "Envelope"
HISTORY_DIR = "history"
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas" / "avro"
"""Default location of the published schemas: the repository's schemas/avro (this package is
installed in editable mode; the files are not Python modules, so no importlib.resources)."""

Schema = Any
"""A JSON-shaped Avro schema: a type name, a dict, or a list (union)."""

_HISTORY_FILE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[0-9]+)\.avsc$")
_AVRO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class UnsupportedTypeError(TypeError):
    """A dataclass field whose Python type has no Avro mapping here."""


def envelope_schema() -> dict[str, Any]:
    """The `Envelope` record. `checkout_id` duplicates `correlation_id` on purpose: consumers
    outside Python (and ksql/Connect) can filter by checkout without knowing our conventions."""
    return {
        "type": "record",
        "name": ENVELOPE_RECORD,
        "fields": [
            {"name": "message_id", "type": "string"},
            {"name": "type", "type": "string"},
            {"name": "schema_version", "type": "int"},
            {"name": "checkout_id", "type": "string"},
            {"name": "correlation_id", "type": "string"},
            {"name": "causation_id", "type": ["null", "string"], "default": None},
            {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "producer", "type": "string"},
        ],
    }


def message_classes() -> tuple[type, ...]:
    """Every class in the `Message` union, read at call time (the union grows as we work)."""
    return tuple(get_args(messages.Message))


# --- derivation -----------------------------------------------------------------------------


class _Deriver:
    """Walks type hints; remembers which named types this file has already defined, because
    Avro forbids redefining a name and expects later uses to be plain name references."""

    def __init__(self) -> None:
        self.defined: dict[str, object] = {ENVELOPE_RECORD: ENVELOPE_RECORD}

    def named(self, name: str, owner: object) -> bool:
        """True when `name` is already defined (by `owner`); raise on a clash of two types."""
        if name not in self.defined:
            self.defined[name] = owner
            return False
        if self.defined[name] is not owner:
            raise UnsupportedTypeError(f"two different types are both named {name!r} in Avro")
        return True

    def record_fields(self, cls: type) -> list[dict[str, Any]]:
        hints = get_type_hints(cls)
        fields = []
        for f in dataclasses.fields(cls):
            where = f"{cls.__name__}.{f.name}"
            tp = hints[f.name]
            default = _field_default(f)
            avro_type = self.type_of(tp, where)
            field: dict[str, Any] = {"name": f.name, "type": avro_type}
            if isinstance(avro_type, list):
                # An Avro union default must match the union's FIRST branch, so a non-None
                # default moves "null" to the end.
                if default is dataclasses.MISSING or default is None:
                    field["default"] = None
                else:
                    field["type"] = [*avro_type[1:], "null"]
                    field["default"] = _avro_default(default)
            elif default is not dataclasses.MISSING:
                field["default"] = _avro_default(default)
            fields.append(field)
        return fields

    def type_of(self, tp: Any, where: str) -> Schema:
        # bool before int: bool is a subclass of int, and `is` keeps them apart anyway.
        simple = {str: "string", bool: "boolean", int: "long", float: "double", bytes: "bytes"}
        if isinstance(tp, type) and tp in simple:
            return simple[tp]
        origin = get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = get_args(tp)
            rest = [a for a in args if a is not type(None)]
            if len(args) != 2 or len(rest) != 1:
                raise UnsupportedTypeError(f"{where}: only `X | None` unions are supported")
            return ["null", self.type_of(rest[0], where)]
        if origin is tuple:
            args = get_args(tp)
            if len(args) != 2 or args[1] is not Ellipsis:
                raise UnsupportedTypeError(f"{where}: only homogeneous tuple[X, ...] is supported")
            return {"type": "array", "items": self.type_of(args[0], where)}
        if isinstance(tp, type) and issubclass(tp, enum.StrEnum):
            if self.named(tp.__name__, tp):
                return tp.__name__
            symbols = [member.value for member in tp]
            bad = [s for s in symbols if not _AVRO_NAME.match(s)]
            if bad:
                # Symbols are the values (what JSON/HTTP show), so they must be Avro names.
                raise UnsupportedTypeError(f"{where}: enum values {bad} are not valid Avro symbols")
            return {"type": "enum", "name": tp.__name__, "symbols": symbols}
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            if self.named(tp.__name__, tp):
                return tp.__name__
            return {"type": "record", "name": tp.__name__, "fields": self.record_fields(tp)}
        raise UnsupportedTypeError(
            f"{where}: {tp!r} has no Avro mapping (supported: str, int, bool, float, bytes, "
            "StrEnum, frozen dataclass, X | None, tuple[X, ...])"
        )


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _avro_default(value: Any) -> Any:
    """A Python default as Avro JSON (enum symbol, list for arrays, dict for records)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_avro_default(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _avro_default(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def derive_schema(cls: type) -> dict[str, Any]:
    """The Avro record of one message class: `envelope` first, then the class's fields."""
    if not dataclasses.is_dataclass(cls):
        raise UnsupportedTypeError(f"{cls!r} is not a dataclass")
    deriver = _Deriver()
    deriver.named(cls.__name__, cls)
    own = deriver.record_fields(cls)
    if any(f["name"] == ENVELOPE_FIELD for f in own):
        raise UnsupportedTypeError(f"{cls.__name__}: field name {ENVELOPE_FIELD!r} is reserved")
    return {
        "type": "record",
        "name": cls.__name__,
        "namespace": NAMESPACE,
        "fields": [{"name": ENVELOPE_FIELD, "type": envelope_schema()}, *own],
    }


def derive_all(classes: Iterable[type] | None = None) -> dict[str, dict[str, Any]]:
    return {cls.__name__: derive_schema(cls) for cls in (classes or message_classes())}


def render(schema: Schema) -> str:
    """The exact text of a published .avsc (stable, so drift is a plain string comparison)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


# --- the published files --------------------------------------------------------------------


def load_schema(path: Path) -> Schema:
    return json.loads(path.read_text(encoding="utf-8"))


def published(schema_dir: Path = SCHEMA_DIR) -> dict[str, Path]:
    """Current schema files by record name."""
    return {p.stem: p for p in sorted(schema_dir.glob("*.avsc"))}


def history(schema_dir: Path = SCHEMA_DIR) -> list[tuple[str, int, Path]]:
    """Previous published versions: (record name, version, path), oldest first per name."""
    found = []
    for p in sorted((schema_dir / HISTORY_DIR).glob("*.avsc")):
        m = _HISTORY_FILE.match(p.name)
        if m is None:
            raise ValueError(f"{p}: history files must be named <Name>.v<N>.avsc")
        found.append((m["name"], int(m["version"]), p))
    return sorted(found, key=lambda t: (t[0], t[1]))


def drift(schema_dir: Path = SCHEMA_DIR, classes: Iterable[type] | None = None) -> list[str]:
    """Every difference between the .avsc files and what the dataclasses derive."""
    expected = {name: render(s) for name, s in derive_all(classes).items()}
    on_disk = published(schema_dir)
    problems = []
    for name, text in expected.items():
        path = on_disk.get(name)
        if path is None:
            problems.append(f"{name}: no {name}.avsc published")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{name}: {path.name} differs from the dataclass")
    problems += [
        f"{name}: {path.name} has no message class"
        for name, path in on_disk.items()
        if name not in expected
    ]
    return problems


def write_schemas(
    schema_dir: Path = SCHEMA_DIR,
    classes: Iterable[type] | None = None,
    *,
    archive: bool = True,
    allow_incompatible: bool = False,
) -> list[str]:
    """(Re)write every .avsc from the dataclasses; returns what was done.

    A changed schema replaces the published one only if both can read each other's data
    (full compatibility: consumers and producers deploy in any order); the replaced version is
    archived as history/<Name>.v<N>.avsc so decoders keep reading data written with it.
    Orphan files (class removed) are reported, never deleted: old data still exists.
    """
    schema_dir.mkdir(parents=True, exist_ok=True)
    versions: dict[str, int] = {}
    for name, version, _ in history(schema_dir):
        versions[name] = max(version, versions.get(name, 0))
    done = []
    derived = derive_all(classes)
    blocked = []
    for name, schema in derived.items():
        path = schema_dir / f"{name}.avsc"
        text = render(schema)
        if path.exists():
            old_text = path.read_text(encoding="utf-8")
            if old_text == text:
                continue
            old = json.loads(old_text)
            problems = check_compatible(old, schema)
            if problems and not allow_incompatible:
                blocked.append(f"{name}: incompatible change:\n  " + "\n  ".join(problems))
                continue
            if archive:
                version = versions.get(name, 0) + 1
                (schema_dir / HISTORY_DIR).mkdir(exist_ok=True)
                archived = schema_dir / HISTORY_DIR / f"{name}.v{version}.avsc"
                archived.write_text(old_text, encoding="utf-8")
                done.append(f"archived {archived.relative_to(schema_dir)}")
            done.append(f"updated {path.name}")
        else:
            done.append(f"created {path.name}")
        path.write_text(text, encoding="utf-8")
    done += [
        f"orphan {p.name} (no message class; left in place)"
        for name, p in published(schema_dir).items()
        if name not in derived
    ]
    if blocked:
        raise IncompatibleSchemaError("\n".join(blocked))
    return done


class IncompatibleSchemaError(ValueError):
    """A schema change that old readers or new readers cannot resolve."""


# --- compatibility --------------------------------------------------------------------------

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_PROMOTIONS = frozenset({
    ("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"),
    ("long", "double"), ("float", "double"), ("string", "bytes"), ("bytes", "string"),
})  # fmt: skip
_COMPLEX = frozenset({"record", "error", "enum", "fixed", "array", "map"})


def check_compatible(old_schema: Schema, new_schema: Schema, *, samples: int = 25) -> list[str]:
    """Problems that stop old and new from reading each other's data; empty means FULL
    compatibility (new reader reads old data, old reader reads new data).

    Two checks: the Avro resolution rules applied structurally (catches what sampling can
    miss, e.g. a removed enum symbol nobody happened to generate), then fastavro itself
    resolving randomly generated records both ways (catches whatever the rules here get
    wrong about fastavro's actual behaviour).
    """
    problems = []
    for label, writer, reader in (
        ("new reader, old data", old_schema, new_schema),
        ("old reader, new data", new_schema, old_schema),
    ):
        found = _resolution_problems(
            writer, reader, _names(writer), _names(reader), _name_of(reader), set()
        )
        problems += [f"{label}: {p}" for p in found]
        if not found:
            problems += [f"{label}: {p}" for p in _fastavro_problems(writer, reader, samples)]
    return problems


def _fastavro_problems(writer: Schema, reader: Schema, samples: int) -> list[str]:
    # Imported here: fastavro is only needed by the checker/serde, not by importing the module.
    from fastavro import parse_schema, schemaless_reader, schemaless_writer
    from fastavro.utils import generate_many

    w = parse_schema(copy.deepcopy(writer))
    r = parse_schema(copy.deepcopy(reader))
    for record in generate_many(w, samples):
        buf = io.BytesIO()
        schemaless_writer(buf, w, record)
        buf.seek(0)
        try:
            schemaless_reader(buf, w, r)
        except Exception as exc:  # any failure is the finding we report
            return [f"fastavro cannot resolve: {type(exc).__name__}: {exc}"]
    return []


def _name_of(schema: Schema) -> str:
    return str(schema.get("name", "schema")) if isinstance(schema, dict) else "schema"


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _names(
    schema: Schema, namespace: str | None = None, out: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Named types of a schema by full and by short name (our files use one namespace)."""
    out = {} if out is None else out
    if isinstance(schema, list):
        for branch in schema:
            _names(branch, namespace, out)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            name = str(schema["name"])
            ns = name.rsplit(".", 1)[0] if "." in name else schema.get("namespace", namespace)
            out[f"{ns}.{_short(name)}" if ns else name] = schema
            out[_short(name)] = schema
            for field in schema.get("fields", ()):
                _names(field["type"], ns, out)
        elif kind == "array":
            _names(schema["items"], namespace, out)
        elif kind == "map":
            _names(schema["values"], namespace, out)
        elif isinstance(kind, dict | list):
            _names(kind, namespace, out)
    return out


def _deref(node: Schema, names: dict[str, Any]) -> Schema:
    """A primitive name, or the dict/list of a complex type, with name references resolved."""
    for _ in range(100):  # bounded: a malformed schema could name itself
        if isinstance(node, str):
            if node in _PRIMITIVES:
                return node
            if node not in names:
                raise ValueError(f"unknown Avro type name {node!r}")
            node = names[node]
        elif isinstance(node, dict) and node.get("type") not in _COMPLEX:
            node = node["type"]  # {"type": "long", "logicalType": ...} and similar wrappers
        else:
            return node
    raise ValueError("Avro type references do not terminate")


def _kind(node: Schema) -> str:
    if isinstance(node, list):
        return "union"
    if isinstance(node, str):
        return node
    return str(node["type"])


def _resolution_problems(
    writer: Schema,
    reader: Schema,
    wnames: dict[str, Any],
    rnames: dict[str, Any],
    path: str,
    seen: set[tuple[int, int]],
) -> list[str]:
    """The Avro spec's "Schema Resolution" rules: can `reader` read data written by `writer`?"""
    w, r = _deref(writer, wnames), _deref(reader, rnames)
    wk, rk = _kind(w), _kind(r)
    if wk == "union":  # every branch the writer may have used must be readable
        return [
            p for branch in w for p in _resolution_problems(branch, r, wnames, rnames, path, seen)
        ]
    if rk == "union":  # the writer's type must match some reader branch
        if any(not _resolution_problems(w, branch, wnames, rnames, path, seen) for branch in r):
            return []
        return [f"{path}: writer type {_describe(w)} matches no branch of the reader's union"]
    if wk in _PRIMITIVES or rk in _PRIMITIVES:
        if wk == rk or (wk, rk) in _PROMOTIONS:
            return []
        return [f"{path}: writer type {_describe(w)} cannot be read as {_describe(r)}"]
    if wk != rk:
        return [f"{path}: writer type {_describe(w)} cannot be read as {_describe(r)}"]
    if wk in ("record", "error", "enum", "fixed"):
        aliases = {_short(a) for a in r.get("aliases", ())}
        if _short(w["name"]) != _short(r["name"]) and _short(w["name"]) not in aliases:
            return [f"{path}: writer {wk} {w['name']} cannot be read as {r['name']}"]
    if wk in ("record", "error"):
        if (id(w), id(r)) in seen:  # recursive types: already being checked further up
            return []
        seen.add((id(w), id(r)))
        written = {f["name"]: f for f in w["fields"]}
        problems = []
        for field in r["fields"]:
            candidates = [field["name"], *field.get("aliases", ())]
            source = next((written[n] for n in candidates if n in written), None)
            if source is None:
                if "default" not in field:
                    problems.append(
                        f"{path}.{field['name']}: missing from the writer's data "
                        "and the reader has no default"
                    )
            else:
                problems += _resolution_problems(
                    source["type"], field["type"], wnames, rnames, f"{path}.{field['name']}", seen
                )
        return problems
    if wk == "enum":
        unknown = [s for s in w["symbols"] if s not in r["symbols"]]
        if unknown and "default" not in r:
            return [f"{path}: reader enum {r['name']} lacks symbols {unknown} and has no default"]
        return []
    if wk == "array":
        return _resolution_problems(w["items"], r["items"], wnames, rnames, f"{path}[]", seen)
    if wk == "map":
        return _resolution_problems(w["values"], r["values"], wnames, rnames, f"{path}{{}}", seen)
    if wk == "fixed" and w["size"] != r["size"]:
        return [f"{path}: fixed {w['name']} size {w['size']} != {r['size']}"]
    return []


def _describe(node: Schema) -> str:
    kind = _kind(node)
    if isinstance(node, dict) and "name" in node:
        return f"{kind} {node['name']}"
    return kind


# --- command line ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m events.avro",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="regenerate the .avsc files")
    action.add_argument("--check", action="store_true", help="fail on drift (the default)")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="schema directory")
    parser.add_argument(
        "--no-archive",
        action="store_true",
        help="do not keep replaced schemas in history/ (unpublished edits only)",
    )
    parser.add_argument(
        "--allow-incompatible",
        action="store_true",
        help="write even if old and new cannot read each other's data",
    )
    args = parser.parse_args(argv)
    if args.write:
        try:
            done = write_schemas(
                args.dir, archive=not args.no_archive, allow_incompatible=args.allow_incompatible
            )
        except IncompatibleSchemaError as exc:
            print(exc, file=sys.stderr)
            return 1
        print("\n".join(done) if done else "schemas up to date")
        return 0
    problems = drift(args.dir)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("run: python -m events.avro --write", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
