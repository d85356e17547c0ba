"""Typed settings for every service: dataclasses filled from TOML, environment variables and flags.

Each layer is checked against the dataclass: an unknown key or a value of the wrong type is a
:class:`ConfigError` naming the dotted key (``broker.url``), so a typo stops a service at start
instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from emo7ion.core.service.errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration value the agent cannot start with; the message names the key."""


def check_positive(key: str, value: float, allow_zero: bool = False) -> None:
    """The one check for counts, periods and limits that must be above zero (or zero, where zero means "off"):
    a ConfigError naming ``key``. NaN is refused too (it compares false with everything)."""
    if not (value > 0 or (allow_zero and value == 0)):
        raise ConfigError(f"{key}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


def coerce(key: str, kind: Any, value: Any) -> Any:
    """``value`` (from TOML, an environment variable, a flag or a plugin's options) as the declared type: the one
    conversion every setting goes through. A ConfigError names ``key``."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.strip().lower() in ("1", "true", "yes", "on")
    elif kind in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be a{'n integer' if kind is int else ' number'}")
        try:
            number = kind(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={value!r} must be a{'n integer' if kind is int else ' number'}") from None
        if kind is int and isinstance(value, float) and value != number:
            raise ConfigError(f"{key}={value!r} must be an integer")
        return number
    elif kind is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
    elif kind is dict:
        if isinstance(value, dict):
            return dict(value)
    else:
        raise ConfigError(f"{key} has type {kind!r}; settings may be bool, int, float, str or a table")
    raise ConfigError(f"{key}={value!r} has the wrong type (expected {getattr(kind, '__name__', kind)})")


def build(cls: type, values: dict, prefix: str = "") -> Any:
    """An instance of dataclass ``cls`` from plain values (each coerced to its field's type); an unknown key or a
    value its ``__post_init__`` refuses is a ConfigError naming ``prefix`` + the key."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(prefix + k for k in unknown)}; known keys here: "
                          f"{', '.join(names)}")
    try:
        return cls(**{name: coerce(prefix + name, hints[name], value) for name, value in values.items()})
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(f"{prefix}{error}") from None


def _nested(dotted: str, value: Any) -> dict:
    head, _, rest = dotted.partition(".")
    return {head: _nested(rest, value) if rest else value}


def _has(values: dict, dotted: str) -> bool:
    head, _, rest = dotted.partition(".")
    if head not in values:
        return False
    return not rest or (isinstance(values[head], dict) and _has(values[head], rest))


def _apply(target: Any, values: dict, prefix: str = "") -> None:
    hints = typing.get_type_hints(type(target))
    fields = {f.name: f for f in dataclasses.fields(target)}
    # A config class may keep an old spelling of a key working: SETTING_ALIASES = {"old": "table.new"}.
    aliases: dict[str, str] = getattr(type(target), "SETTING_ALIASES", {})
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name in aliases and name not in fields:
            if _has(values, aliases[name]):
                raise ConfigError(f"{key} and {prefix}{aliases[name]} are both set (the same setting): keep only "
                                  f"{prefix}{aliases[name]}")
            _apply(target, _nested(aliases[name], value), prefix)
            continue
        if name not in fields:
            raise ConfigError(f"unknown key {key!r}; known keys here: {', '.join(sorted(fields))}")
        kind = hints[name]
        if isinstance(kind, types.UnionType):
            kind = next(t for t in typing.get_args(kind) if t is not type(None))
        shorthand = fields[name].metadata.get("shorthand")
        if dataclasses.is_dataclass(kind) and shorthand and not isinstance(value, dict):
            _apply(getattr(target, name), {shorthand: value}, f"{key}.")  # broker = "mqtt://..." sets broker.url
        elif dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise ConfigError(f"{key} must be a table of settings, got {value!r}")
            _apply(getattr(target, name), value, f"{key}.")
        elif kind is dict and isinstance(value, str) and shorthand:
            setattr(target, name, {shorthand: value})  # a bare name from a flag or variable: {shorthand: name}
        elif kind is dict and isinstance(value, dict) and getattr(target, name):
            getattr(target, name).update(value)  # a table merges onto the one a lower layer set
        else:
            setattr(target, name, coerce(key, kind, value))


def settings_from_environment(prefix: str, environ: dict[str, str] | None = None) -> dict:
    """Nested settings from ``PREFIXKEY`` / ``PREFIXTABLE__KEY`` variables."""
    nested: dict = {}
    for name, value in sorted((os.environ if environ is None else environ).items()):
        if not name.startswith(prefix):
            continue
        path = [part.lower() for part in name[len(prefix):].split("__") if part]
        node = nested
        for depth, part in enumerate(path[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # PREFIXBROKER=url and PREFIXBROKER__KEEPALIVE_S=10
                table = prefix + "__".join(path[:depth + 1]).upper()
                raise ConfigError(f"{table} and {name} are both set: {table} is a table here, so set its "
                                  f"entries as {table}__KEY (for example {table}__URL) instead")
        if path:
            node[path[-1]] = value
    return nested


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from error


def apply_settings(config: Any, values: dict, source: str = "") -> None:
    """Set a dataclass config from nested plain values; a ConfigError names the bad key (and file)."""
    try:
        _apply(config, values)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}" if source else str(error)) from error


def layered(config: Any, path: str | Path | None, env_prefix: str, overrides: dict | None = None,
            environ: dict[str, str] | None = None) -> Any:
    """Fill ``config`` from defaults < TOML file < ``env_prefix`` environment variables < ``overrides``."""
    if path:
        apply_settings(config, read_toml(path), source=str(path))
    apply_settings(config, settings_from_environment(env_prefix, environ))
    apply_settings(config, {k: v for k, v in (overrides or {}).items() if v is not None})
    return config
