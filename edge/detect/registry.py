"""Finds the detector plugins of this package and builds one from plain options (a config section or the CLI).

A plugin is a module here that defines ``KEY``, an ``Options`` dataclass (each field with a default and a
``metadata["help"]``) and one :class:`FaceDetector` subclass taking those options. Nothing is listed by hand:
a new file is a new ``type``. Unknown types, unknown options and bad values fail with the key at fault.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
import typing
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from emo7ion.edge.detect.base import FaceDetector

DEFAULT: dict[str, Any] = {"type": "centerface", "threshold": 0.3, "nms_iou": 0.3, "upscale": 1.0, "tiles": 1}
"""The detector the agent uses unless configured otherwise (chosen by measurement: docs/benchmarks.md)."""


@functools.cache
def plugins() -> dict[str, ModuleType]:
    """Every plugin module of this package, by its ``KEY``."""
    package = importlib.import_module(__package__)
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{__package__}.{info.name}")
        key = getattr(module, "KEY", None)
        if key is None:
            continue
        if key in found:
            raise RuntimeError(f"detector type {key!r} is defined twice: {found[key].__name__} and {module.__name__}")
        detector_class(module)  # fails early on a malformed plugin
        found[key] = module
    return dict(sorted(found.items()))


def detector_class(module: ModuleType) -> type[FaceDetector]:
    """The one FaceDetector subclass a plugin module defines."""
    classes = [value for value in vars(module).values()
               if isinstance(value, type) and issubclass(value, FaceDetector) and value.__module__ == module.__name__]
    if len(classes) != 1 or not dataclasses.is_dataclass(getattr(module, "Options", None)):
        raise RuntimeError(f"detector plugin {module.__name__} must define one FaceDetector subclass and an Options "
                           f"dataclass, found {[c.__name__ for c in classes]}")
    return classes[0]


def available() -> list[str]:
    """The detector types (plugin keys), sorted. A type whose weights are missing fails in :func:`create`."""
    return list(plugins())


def options_help(detector_type: str) -> list[tuple[str, Any, str]]:
    """(name, default, help) of each option of a detector type."""
    module = _plugin(detector_type)
    return [(f.name, f.default, f.metadata.get("help", "")) for f in dataclasses.fields(module.Options)]


def create(options: Mapping[str, Any]) -> FaceDetector:
    """A detector from ``{"type": KEY, option: value, ...}``; string values (from the CLI or an env) are parsed to
    each option's type."""
    options = dict(options)
    if "type" not in options:
        raise ValueError(f"detector options need a 'type', one of: {', '.join(available())}")
    detector_type = options.pop("type")
    module = _plugin(detector_type)
    fields = {f.name: f for f in dataclasses.fields(module.Options)}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for detector {detector_type!r}; valid options: "
                         f"{', '.join(fields)}")
    hints = typing.get_type_hints(module.Options)
    values = {key: coerce(key, value, hints[key]) for key, value in options.items()}
    return detector_class(module)(module.Options(**values))


def coerce(key: str, value: Any, kind: Any) -> Any:
    """``value`` as an option of type ``kind`` (bool, int, float or str); strings are parsed."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a plugin with an option type this registry cannot parse
        raise RuntimeError(f"option {key!r} has type {kind!r}; plugins may use bool, int, float or str")
    raise ValueError(f"option {key}={value!r}: expected {kind.__name__}")


def _plugin(detector_type: Any) -> ModuleType:
    found = plugins()
    if detector_type not in found:
        raise ValueError(f"unknown detector type {detector_type!r}; valid types: {', '.join(found)}")
    return found[detector_type]
