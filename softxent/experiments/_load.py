"""Turn a TOML file (plus ``--set`` overrides) into a validated, typed config."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from pathlib import Path

from ._config import ConfigError, apply_overrides, one_of, read, validate
from ._experiment import ExperimentConfig, LossEntry


def _check_loss(entry: LossEntry, where: str, source: str) -> LossEntry:
    """``entry`` with its name in the registry and its params within their domains."""
    try:
        spec = entry.spec()
    except KeyError as e:
        raise ConfigError(source, f"{where}.name", str(e.args[0])) from None
    known = {p.name: p for p in spec.params}
    for key, val in entry.params.items():
        path = f"{where}.params.{key}"
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(source, path, f"{spec.name} has no parameter {key!r}{hint} "
                              f"(parameters: {', '.join(known) or 'none'})")
        try:
            known[key].validate(spec.name, val)
        except ValueError:
            raise ConfigError(source, path, f"expected a number in {known[key].domain()}, "
                              f"got {val!r}") from None
    return dataclasses.replace(entry, label=entry.label or _label(spec.name, entry.params))


def _label(name: str, params: dict[str, float]) -> str:
    return name + "".join(f",{k}={v:g}" for k, v in params.items())


def _check_losses(losses: tuple[LossEntry, ...], source: str) -> tuple[LossEntry, ...]:
    checked = tuple(_check_loss(entry, f"losses[{i}]", source) for i, entry in enumerate(losses))
    labels = [e.label for e in checked]
    for i, label in enumerate(labels):
        if labels.index(label) != i:
            raise ConfigError(source, f"losses[{i}]",
                              f"duplicate loss {label!r}; give it a distinct label = ...")
    return checked


def _resolved_plugins(plugins: tuple[str, ...], path: Path) -> tuple[str, ...]:
    """``.py`` plugins as absolute paths (they are relative to the config), so that the
    resolved config a run writes into its results folder loads from there too."""
    return tuple(str((path.parent / plugin).resolve())
                 if plugin.endswith(".py") and not Path(plugin).is_absolute() else plugin
                 for plugin in plugins)


def _load_plugins(plugins: tuple[str, ...], source: str) -> None:
    from .._plugins import PluginError, load_plugin

    for i, plugin in enumerate(plugins):
        try:
            load_plugin(plugin)
        except PluginError as err:
            raise ConfigError(source, f"plugins[{i}]", str(err).removeprefix("--plugin ")) \
                from None


def _check_device(device: str, source: str) -> None:
    if device == "auto":
        return
    import jax

    try:
        jax.devices(device)
    except RuntimeError:
        raise ConfigError(source, "device", f"expected a platform available here "
                          f"('auto' or {jax.default_backend()!r}), got {device!r}") from None


def load(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read, override and validate a config into its kind's :class:`ExperimentConfig`
    subclass; raise :class:`ConfigError` on any problem."""
    from . import KINDS

    source = str(path)
    raw = apply_overrides(read(path), list(overrides or []))
    kind_name = raw.get("kind")
    if kind_name is None:
        raise ConfigError(source, "kind", f"missing required key (one of: {', '.join(KINDS)})")
    if not isinstance(kind_name, str) or kind_name not in KINDS:
        raise ConfigError(source, "kind", f"{one_of(*KINDS)(str(kind_name))}, got {kind_name!r}")
    kind = importlib.import_module(KINDS[kind_name])
    config = validate(kind.CONFIG, raw, source)
    config = dataclasses.replace(config, plugins=_resolved_plugins(config.plugins, Path(path)))
    _load_plugins(config.plugins, source)
    config = dataclasses.replace(config, losses=_check_losses(config.losses, source))
    opt = config.optimizer
    if opt.steps % opt.log_every:
        raise ConfigError(source, "optimizer.log_every", f"expected a divisor of "
                          f"optimizer.steps = {opt.steps}, got {opt.log_every}")
    kind.check(config, source)
    _check_device(config.device, source)
    return config
