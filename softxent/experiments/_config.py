"""Reading and validating experiment configs (TOML, stdlib ``tomllib``).

A config is checked completely before any work starts. Every problem raises
:class:`ConfigError`, whose message names the file, the key path (for example
``optimizer.learning_rate``), what was expected and what was given; the CLI turns
it into exit code 2.

A schema is a dict from key to :class:`Field` (a leaf) or to a nested schema (a
table). ``Field.check`` receives the value and returns an error text or None.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Check = Callable[[Any], "str | None"]


class ConfigError(ValueError):
    """A config problem, found before any work starts."""

    def __init__(self, source: str, path: str, message: str):
        self.source, self.path = source, path
        # An empty path is a problem of the file itself (missing, a folder, not TOML).
        super().__init__(f"{source}: {path}: {message}" if path else f"{source}: {message}")


REQUIRED: Any = object()  # the default of a key that must be given


@dataclasses.dataclass(frozen=True)
class Field:
    """One leaf of a schema: its type(s), default and an extra check."""

    types: tuple[type, ...]
    default: Any = REQUIRED
    check: Check | None = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def _type_name(types: tuple[type, ...]) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "a table"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _describe(value: Any) -> str:
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string",
             list: "array", dict: "table"}
    return f"{value!r} ({kinds.get(type(value), type(value).__name__)})"


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True  # TOML writes 1 for 1.0; accept an integer where a number is wanted
    return isinstance(value, types)


def validate(data: Mapping[str, Any], schema: Mapping[str, Any], source: str,
             prefix: str = "") -> dict[str, Any]:
    """Return ``data`` with defaults filled in, or raise :class:`ConfigError`."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(schema))
            raise ConfigError(source, path, f"unknown key{hint} (expected one of: {known})")
        rule = schema[key]
        if isinstance(rule, Mapping):
            if not isinstance(value, dict):
                raise ConfigError(source, path, f"expected a table, got {_describe(value)}")
            out[key] = validate(value, rule, source, f"{path}.")
            continue
        if not _type_ok(value, rule.types):
            raise ConfigError(
                source, path, f"expected {_type_name(rule.types)}, got {_describe(value)}"
            )
        if isinstance(value, int) and not isinstance(value, bool) and float in rule.types \
                and int not in rule.types:
            value = float(value)
        if rule.check is not None:
            problem = rule.check(value)
            if problem:
                raise ConfigError(source, path, f"{problem}, got {_describe(value)}")
        out[key] = value
    for key, rule in schema.items():
        if key in out:
            continue
        if isinstance(rule, Mapping):
            out[key] = validate({}, rule, source, f"{prefix}{key}.")
        elif rule.required:
            raise ConfigError(source, f"{prefix}{key}", "missing required key")
        else:
            out[key] = copy.deepcopy(rule.default)
    return out


# --- reusable checks -------------------------------------------------------------------------

def positive(value: Any) -> str | None:
    return None if math.isfinite(value) and value > 0 else "expected a finite number > 0"


def at_least(low: int) -> Check:
    return lambda value: None if value >= low else f"expected an integer >= {low}"


def one_of(*choices: str) -> Check:
    def check(value: str) -> str | None:
        if value in choices:
            return None
        close = difflib.get_close_matches(value, choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"expected one of {', '.join(map(repr, choices))}{hint}"

    return check


def list_of(types: tuple[type, ...], what: str) -> Check:
    return lambda value: None if all(_type_ok(v, types) for v in value) else f"expected {what}"


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
