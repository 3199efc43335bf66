"""Reading and validating experiment configs (TOML, stdlib ``tomllib``) into typed objects.

A config table is a frozen dataclass (:func:`table`) whose fields are its keys: a field's
annotation is the key's type, :func:`setting` gives its default and an extra check, and the
string under the field documents it. :func:`validate` turns a parsed TOML table into such
an object, so the class is the schema and the object the validated config.

A config is checked completely before any work starts. Every problem raises
:class:`ConfigError`, whose message names the file, the key path (for example
``optimizer.learning_rate``), what was expected and what was given; the CLI turns it into
exit code 2.

The annotations a field may have: ``str``, ``int``, ``float`` (an integer is accepted and
converted), ``bool``, ``tuple[X, ...]`` (a TOML array), ``dict[str, X]`` (a table of any
keys) and another :func:`table` class (a nested table, or with ``tuple[...]`` an array of
tables such as ``[[losses]]``).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import math
import tomllib
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

Check = Callable[[Any], "str | None"]
T = TypeVar("T")


class ConfigError(ValueError):
    """A config problem, found before any work starts."""

    def __init__(self, source: str, path: str, message: str):
        self.source, self.path = source, path
        # An empty path is a problem of the file itself (missing, a folder, not TOML).
        super().__init__(f"{source}: {path}: {message}" if path else f"{source}: {message}")


# --- declaring a table -----------------------------------------------------------------------

REQUIRED: Any = dataclasses.MISSING  # the default of a key that must be given


def setting(default: Any = REQUIRED, check: Check | None = None) -> Any:
    """A key of a :func:`table`: its ``default`` (none: the key is required) and a ``check``
    that returns an error text for a bad value, or None."""
    metadata = {"check": check} if check is not None else {}
    if isinstance(default, dict | list):
        return dataclasses.field(default_factory=functools.partial(copy.deepcopy, default),
                                 metadata=metadata)
    if isinstance(default, type) and dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@typing.dataclass_transform(kw_only_default=True, field_specifiers=(dataclasses.field, setting))
def table(cls: type[T]) -> type[T]:
    """A config table: a frozen, keyword-only dataclass whose fields are its keys."""
    return dataclasses.dataclass(frozen=True, kw_only=True)(cls)


def as_dict(config: Any) -> dict[str, Any]:
    """A validated config as plain TOML data (tables as dicts, arrays as lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


# --- validating ------------------------------------------------------------------------------

_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
_KINDS = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
          tuple: "array", dict: "table"}


def _describe(value: Any) -> str:
    return f"{value!r} ({_KINDS.get(type(value), type(value).__name__)})"


def _scalar_ok(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if isinstance(value, int) and kind is float:
        return True  # TOML writes 1 for 1.0; accept an integer where a number is wanted
    return isinstance(value, kind)


@functools.cache
def _keys(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def _unknown_key(key: str, known: list[str]) -> str:
    """The message for a key that is not one of ``known``, with the closest as a hint."""
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key{hint} (expected one of: {', '.join(sorted(known))})"


def validate(cls: type[T], data: Mapping[str, Any], source: str, prefix: str = "") -> T:
    """``data`` as a ``cls`` object with defaults filled in, or raise :class:`ConfigError`."""
    keys = _keys(cls)
    values: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in keys:
            raise ConfigError(source, path, _unknown_key(key, list(keys)))
        field, kind = keys[key]
        values[key] = _convert(kind, value, source, path)
        check = field.metadata.get("check")
        problem = check(values[key]) if check is not None else None
        if problem:
            raise ConfigError(source, path, f"{problem}, got {_describe(value)}")
    for key, (field, kind) in keys.items():
        if key in values:
            continue
        if dataclasses.is_dataclass(kind):  # an absent table: its own defaults, or errors
            values[key] = validate(kind, {}, source, f"{prefix}{key}.")
        elif field.default is REQUIRED and field.default_factory is dataclasses.MISSING:
            raise ConfigError(source, f"{prefix}{key}", "missing required key")
    return cls(**values)


def _convert(kind: Any, value: Any, source: str, path: str) -> Any:
    """``value`` checked against the annotation ``kind`` (and its items, recursively)."""
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind) or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(source, path, f"expected a table, got {_describe(value)}")
        if origin is None:
            return validate(kind, value, source, f"{path}.")
        item = typing.get_args(kind)[1]
        return {k: _convert(item, v, source, f"{path}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(source, path, f"expected an array, got {_describe(value)}")
        item = typing.get_args(kind)[0]
        return tuple(_convert(item, v, source, f"{path}[{i}]") for i, v in enumerate(value))
    if not _scalar_ok(value, kind):
        raise ConfigError(source, path, f"expected {_NAMES[kind]}, got {_describe(value)}")
    return float(value) if kind is float else value


# --- reusable checks -------------------------------------------------------------------------

def positive(value: float) -> str | None:
    """A finite number > 0."""
    return None if math.isfinite(value) and value > 0 else "expected a finite number > 0"


def at_least(low: int) -> Check:
    """An integer >= ``low``."""
    return lambda value: None if value >= low else f"expected an integer >= {low}"


def between(low: float, high: float, *, open_interval: bool = False) -> Check:
    """A number in ``[low, high]``, or ``(low, high)`` with ``open_interval``."""
    if open_interval:
        return lambda v: None if low < v < high else f"expected a number in ({low:g}, {high:g})"
    return lambda v: None if low <= v <= high else f"expected a number in [{low:g}, {high:g}]"


def one_of(*choices: str) -> Check:
    """One of ``choices``, with the closest as a hint."""
    def check(value: str) -> str | None:
        if value in choices:
            return None
        close = difflib.get_close_matches(value, choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"expected one of {', '.join(map(repr, choices))}{hint}"

    return check


# --- loading ---------------------------------------------------------------------------------

def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optimizer.learning_rate=0.1"`` -> (["optimizer", "learning_rate"], 0.1).

    The value is read as a TOML value (numbers, booleans, arrays, quoted
    strings); anything that does not parse is taken as a bare string.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--set", text, "expected KEY=VALUE, e.g. optimizer.learning_rate=0.1")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return [part.strip() for part in key.split(".")], value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``data`` with each ``KEY=VALUE`` of ``overrides`` set (a copy; tables made as needed)."""
    data = copy.deepcopy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for key in keys[:-1]:
            if key.isdigit() and isinstance(node, list):
                node = node[int(key)]
                continue
            node = node.setdefault(key, {})
            if not isinstance(node, dict | list):
                raise ConfigError("--set", ".".join(keys), f"{key!r} is not a table")
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return data


def read(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error becomes a :class:`ConfigError`."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(str(path), "", "is a folder, not a config file")
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(str(path), "", "no such file") from None
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot be read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not valid TOML: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), "", f"not valid TOML: {e}") from None
def dumps(data: Mapping[str, Any]) -> str:
    """Write a validated config back as TOML (the subset our configs use)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, list[Mapping[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            arrays.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, table in tables:
        lines += ["", f"[{key}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()
                                     if v is not None and not isinstance(v, Mapping)]
        for k, v in table.items():
            if isinstance(v, Mapping):
                lines += ["", f"[{key}.{k}]"] + [f"{a} = {_toml_value(b)}" for a, b in v.items()]
    for key, items in arrays:
        for item in items:
            lines += ["", f"[[{key}]]"]
            for k, v in item.items():
                if isinstance(v, Mapping):
                    inline = ", ".join(f"{a} = {_toml_value(b)}" for a, b in v.items())
                    lines.append(f"{k} = {{ {inline} }}")
                elif v is not None:
                    lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
