"""Turn a TOML file (plus ``--set`` overrides) into a validated config dict."""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any

from ._config import ConfigError, Field, apply_overrides, at_least, one_of, positive, read, validate

OPTIMIZERS = ("sgd", "adam", "lbfgs")
FIGURES = ("convergence", "simplex", "gradients", "surface")


def common_schema(kinds: tuple[str, ...]) -> dict[str, Any]:
    """Keys every config has, whatever its kind."""
    return {
        "name": Field((str,), doc="results go to <out>/<name>-<timestamp>/"),
        "kind": Field((str,), check=one_of(*kinds)),
        "description": Field((str,), ""),
        "seed": Field((int,), 0, at_least(0)),
        "device": Field((str,), "auto", one_of("auto", "cpu", "gpu", "tpu")),
        "dtype": Field((str,), "float64", one_of("float64", "float32")),
        "tolerance": Field((float,), 1e-4, positive, "converged when the final error <= this"),
        "figures": Field((list,), [], _figure_names),
        "optimizer": {
            "name": Field((str,), "adam", one_of(*OPTIMIZERS)),
            "learning_rate": Field((float,), 0.05, positive,
                                   "sgd/adam step size; lbfgs scales its line-search step"),
            "schedule": Field((str,), "constant", one_of("constant", "cosine"),
                              "cosine: decay the sgd/adam step size to 1e-3 of it"),
            "steps": Field((int,), 1000, at_least(1)),
            "log_every": Field((int,), 10, at_least(1)),
        },
        "plugins": Field((list,), [], _plugin_paths,
                         "modules or .py files (relative to this config) to import first: "
                         "the losses they register can be named in [[losses]]"),
        "losses": Field((list,), check=_loss_entries),
    }


def _plugin_paths(value: list[Any]) -> str | None:
    bad = [v for v in value if not isinstance(v, str) or not v]
    return f"expected module names or .py paths (strings), got {bad[0]!r}" if bad else None


def _figure_names(value: list[Any]) -> str | None:
    for v in value:
        if v not in FIGURES:
            close = difflib.get_close_matches(str(v), FIGURES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"expected figure names from {', '.join(map(repr, FIGURES))}{hint}"
    return None


def _loss_entries(value: list[Any]) -> str | None:
    if not value:
        return "expected at least one [[losses]] entry"
    if not all(isinstance(v, dict) for v in value):
        return "expected an array of tables ([[losses]] with name = ...)"
    return None


def _check_losses(losses: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """Each entry: ``name`` from the registry, ``params`` within their domains."""
    from .. import get_loss

    checked = []
    for i, entry in enumerate(losses):
        where = f"losses[{i}]"
        entry = validate(entry, {"name": Field((str,)), "params": Field((dict,), {}),
                                 "label": Field((str,), "")}, source, f"{where}.")
        try:
            spec = get_loss(entry["name"])
        except KeyError as e:
            raise ConfigError(source, f"{where}.name", str(e.args[0])) from None
        known = {p.name: p for p in spec.params}
        for key, val in entry["params"].items():
            path = f"{where}.params.{key}"
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(source, path, f"{spec.name} has no parameter {key!r}{hint} "
                                  f"(parameters: {', '.join(known) or 'none'})")
            param = known[key]
            if isinstance(val, bool) or not isinstance(val, int | float):
                raise ConfigError(source, path,
                                  f"expected a number in {param.domain()}, got {val!r}")
            try:
                param.validate(spec.name, val)
            except ValueError:
                raise ConfigError(source, path,
                                  f"expected a number in {param.domain()}, got {val!r}") from None
        entry["label"] = entry["label"] or _label(spec.name, entry["params"])
        checked.append(entry)
    labels = [e["label"] for e in checked]
    for i, label in enumerate(labels):
        if labels.index(label) != i:
            raise ConfigError(source, f"losses[{i}]",
                              f"duplicate loss {label!r}; give it a distinct label = ...")
    return checked


def _label(name: str, params: dict[str, Any]) -> str:
    return name + "".join(f",{k}={v:g}" for k, v in params.items())


def _load_plugins(plugins: list[str], path: Path, source: str) -> None:
    from .._plugins import PluginError, load_plugin

    for i, plugin in enumerate(plugins):
        if plugin.endswith(".py") and not Path(plugin).is_absolute():
            plugin = str(path.parent / plugin)
        try:
            load_plugin(plugin)
        except PluginError as err:
            raise ConfigError(source, f"plugins[{i}]", str(err).removeprefix("--plugin ")) \
                from None


def load(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read, override and validate a config; raise :class:`ConfigError` on any problem."""
    from . import KINDS

    source = str(path)
    raw = apply_overrides(read(path), list(overrides or []))
    kind_name = raw.get("kind")
    if kind_name is None:
        raise ConfigError(source, "kind", f"missing required key (one of: {', '.join(KINDS)})")
    if not isinstance(kind_name, str) or kind_name not in KINDS:
        raise ConfigError(source, "kind", f"{one_of(*KINDS)(str(kind_name))}, got {kind_name!r}")
    kind = importlib.import_module(KINDS[kind_name])
    schema = {**common_schema(tuple(KINDS)), **kind.SCHEMA}
    config = validate(raw, schema, source)
    _load_plugins(config["plugins"], Path(path), source)
    config["losses"] = _check_losses(config["losses"], source)
    steps, log_every = config["optimizer"]["steps"], config["optimizer"]["log_every"]
    if steps % log_every:
        raise ConfigError(source, "optimizer.log_every",
                          f"expected a divisor of optimizer.steps = {steps}, got {log_every}")
    kind.check(config, source)
    if config["device"] != "auto":
        import jax

        try:
            jax.devices(config["device"])
        except RuntimeError:
            raise ConfigError(source, "device", f"expected a platform available here "
                              f"('auto' or {jax.default_backend()!r}), "
                              f"got {config['device']!r}") from None
    return config
