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


class ConfigError(ValueError):
    """A configuration value the agent cannot start with; the message names the key."""


def _coerce(key: str, kind: Any, value: Any) -> Any:
    """``value`` (from TOML, an environment variable or a flag) as the field's declared type."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
    elif kind in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be a number")
        try:
            number = kind(value)
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
        if isinstance(value, str):  # a bare detector name from a flag or environment variable
            return {"type": value}
    raise ConfigError(f"{key}={value!r} has the wrong type (expected {getattr(kind, '__name__', kind)})")


def _apply(target: Any, values: dict, prefix: str = "") -> None:
    hints = typing.get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target)}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in names:
            raise ConfigError(f"unknown key {key!r}; known keys here: {', '.join(sorted(names))}")
        kind = hints[name]
        if isinstance(kind, types.UnionType):
            kind = next(t for t in typing.get_args(kind) if t is not type(None))
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise ConfigError(f"{key} must be a table of settings, got {value!r}")
            _apply(getattr(target, name), value, f"{key}.")
        elif name == "detector" and isinstance(value, dict) and getattr(target, name):
            getattr(target, name).update(_coerce(key, dict, value))  # options merge onto the file's detector
        else:
            setattr(target, name, _coerce(key, kind, value))


def settings_from_environment(prefix: str, environ: dict[str, str] | None = None) -> dict:
    """Nested settings from ``PREFIXKEY`` / ``PREFIXTABLE__KEY`` variables."""
    nested: dict = {}
    for name, value in (os.environ if environ is None else environ).items():
        if not name.startswith(prefix):
            continue
        path = [part.lower() for part in name[len(prefix):].split("__") if part]
        node = nested
        for part in path[:-1]:
            node = node.setdefault(part, {})
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
