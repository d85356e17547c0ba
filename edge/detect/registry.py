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
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from emo7ion.core.service import settings
from emo7ion.core.service.settings import ConfigError
from emo7ion.edge.detect.base import FaceDetector

DEFAULT: dict[str, Any] = {"type": "centerface-int8", "threshold": 0.3, "nms_iou": 0.3, "upscale": 1.0, "tiles": 1}
"""The detector the agent uses unless configured otherwise, chosen by measurement (docs/benchmarks.md): int8
CenterFace finds what float CenterFace finds (at float's threshold, on the crowd sample the same recall in every
face-size bin and as many false positives; on large faces the same recall) in about half its time on a CPU
with int8 dot products; ``type = "centerface"`` is the float one."""


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
    """(name, default, help) of each option of a detector type: its own first (declared in a plugin module, its
    own or the one it varies, as centerface-int8 varies centerface), then those it shares with every tiled one."""
    module = _plugin(detector_type)
    plugin_modules = {found.__name__ for found in plugins().values()}
    own = {name for klass in module.Options.__mro__ if klass.__module__ in plugin_modules
           for name in vars(klass).get("__annotations__", {})}
    fields = sorted(dataclasses.fields(module.Options), key=lambda f: f.name not in own)
    return [(f.name, f.default, f.metadata.get("help", "")) for f in fields]


def options(spec: Mapping[str, Any], prefix: str = "") -> tuple[ModuleType, Any]:
    """The plugin and its checked ``Options`` for ``{"type": KEY, option: value, ...}``, without loading any
    weights: what a config checks at load. String values (from the CLI or an env) are parsed to each option's
    type by the settings' one coercion path; a ValueError (ConfigError) names ``prefix`` + the key at fault."""
    spec = dict(spec)
    if "type" not in spec:
        raise ConfigError(f"{_at(prefix, 'type')}detector options need a 'type', one of: {', '.join(available())}")
    detector_type = spec.pop("type")
    try:
        module = _plugin(detector_type)
    except ValueError as error:
        raise ConfigError(f"{_at(prefix, 'type')}{error}") from None
    names = [f.name for f in dataclasses.fields(module.Options)]
    unknown = sorted(set(spec) - set(names))
    if unknown:
        raise ConfigError(f"{_at(prefix, ', '.join(unknown))}unknown option(s) {', '.join(unknown)} for detector "
                          f"{detector_type!r}; valid options: {', '.join(names)}")
    return module, settings.build(module.Options, spec, prefix)


def create(spec: Mapping[str, Any]) -> FaceDetector:
    """A detector from ``{"type": KEY, option: value, ...}`` (see :func:`options`)."""
    module, checked = options(spec)
    return detector_class(module)(checked)


def _at(prefix: str, key: str) -> str:
    """``detector.treshold: `` before a message when checking a config section, nothing on the CLI."""
    return f"{prefix}{key}: " if prefix else ""


def _plugin(detector_type: Any) -> ModuleType:
    found = plugins()
    if detector_type not in found:
        raise ValueError(f"unknown detector type {detector_type!r}; valid types: {', '.join(found)}")
    return found[detector_type]
