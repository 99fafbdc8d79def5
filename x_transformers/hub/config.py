"""Constructor capture: every public model remembers the keywords it was built with, so that
``config.json`` reads like the Python call that built it.

::

    TransformerWrapper(num_tokens=256, max_seq_len=128, attn_layers=Decoder(dim=64, depth=2))

    {"class": "TransformerWrapper",
     "kwargs": {"num_tokens": 256, "max_seq_len": 128,
                "attn_layers": {"class": "Decoder", "kwargs": {"dim": 64, "depth": 2}}}}

:class:`Configurable` records the bound arguments of the outermost ``__init__`` of each instance
(only the arguments given, never the defaults, so a later default change does not rewrite old
files). Nested models (``attn_layers=Decoder(...)``, ``net=TransformerWrapper(...)``) are
written as ``{"class": ..., "kwargs": ...}``; tuples become JSON lists. Anything else that JSON
cannot hold (a function, a tensor, a plain ``nn.Module``) is refused with the argument's name.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
from typing import Any

from torch import nn

FORMAT = "x_transformers"
FORMAT_VERSION = 1
CLASS_KEY, KWARGS_KEY = "class", "kwargs"

# class name -> class, filled as the public models are defined (see Configurable)
REGISTRY: dict[str, type] = {}
# modules whose import defines the public models (the wrappers are imported lazily)
_MODEL_MODULES = ("..layers", "..wrappers", "..generation")  # relative to this package


class ConfigError(ValueError):
    """A model configuration cannot be written to, or read from, JSON; the message names the
    file (when there is one) and the key."""


class Configurable:
    """Mixin of the public models: records the constructor's bound arguments in
    ``self.init_kwargs`` and registers the class by name for :func:`config_to_model`."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if issubclass(cls, nn.Module):
            REGISTRY[cls.__name__] = cls
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording(cls.__init__)


def _recording(init):
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if "init_kwargs" not in self.__dict__:  # the outermost __init__ of this instance
            object.__setattr__(self, "init_kwargs", _bound_keywords(signature, self, args, kwargs))
        init(self, *args, **kwargs)

    return __init__


def _bound_keywords(signature: inspect.Signature, instance, args, kwargs) -> dict[str, Any]:
    bound = signature.bind(instance, *args, **kwargs)
    keywords: dict[str, Any] = {}
    for index, (name, value) in enumerate(bound.arguments.items()):
        kind = signature.parameters[name].kind
        if index == 0:
            continue  # self
        if kind is inspect.Parameter.VAR_KEYWORD:
            keywords.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                raise ConfigError(f"{type(instance).__name__}: positional *{name} cannot be saved")
        else:
            keywords[name] = value
    return keywords


# ---------------------------------------------------------------------------- to JSON


def model_to_config(model) -> dict[str, Any]:
    """``{"class": name, "kwargs": {...}}`` of a model built by a :class:`Configurable` class."""
    if not isinstance(model, Configurable) or "init_kwargs" not in model.__dict__:
        raise ConfigError(
            f"{type(model).__name__} does not record its constructor arguments; only the "
            f"public x_transformers models can be saved ({', '.join(sorted(REGISTRY))})"
        )
    where = type(model).__name__
    kwargs = {k: _to_json(v, f"{where}.{k}") for k, v in model.init_kwargs.items()}
    return {CLASS_KEY: where, KWARGS_KEY: kwargs}


def _to_json(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"argument {where}={value} is not finite and cannot be saved")
        return value
    if isinstance(value, (list, tuple)):
        return [_to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Configurable):
        return model_to_config(value)
    if isinstance(value, dict):
        if set(value) == {CLASS_KEY, KWARGS_KEY}:
            raise ConfigError(f"argument {where} is a dict that reads like a nested model")
        if not all(isinstance(k, str) for k in value):
            raise ConfigError(f"argument {where} has non-string dict keys: {list(value)}")
        return {k: _to_json(v, f"{where}.{k}") for k, v in value.items()}
    raise ConfigError(
        f"argument {where} is a {type(value).__name__} ({value!r:.60}), which config.json "
        "cannot hold; only numbers, strings, booleans, None, lists, dicts and x_transformers "
        "models can be saved"
    )


# ---------------------------------------------------------------------------- from JSON


def resolve_class(name: Any, source: str) -> type:
    """The registered model class called ``name``."""
    if not isinstance(name, str):
        raise ConfigError(f"{source}: key '{CLASS_KEY}' must be a class name, got {name!r}")
    if name not in REGISTRY:
        for module in _MODEL_MODULES:
            importlib.import_module(module, __package__)
    if name not in REGISTRY:
        raise ConfigError(
            f"{source}: unknown model class {name!r} (key '{CLASS_KEY}'); known: "
            f"{', '.join(sorted(REGISTRY))}"
        )
    return REGISTRY[name]


def config_to_model(config: Any, source: str, where: str = "config"):
    """Build the model ``config`` describes (nested models first). ``source`` names the file."""
    cls, kwargs = _class_and_kwargs(config, source, where)
    built = {k: _from_json(v, source, f"{where}.{k}") for k, v in kwargs.items()}
    try:
        return cls(**built)
    except (TypeError, ValueError) as error:
        message = f"{source}: {cls.__name__}(**{where}) refused its keywords: {error}"
        raise ConfigError(message) from None


def _class_and_kwargs(config: Any, source: str, where: str) -> tuple[type, dict]:
    if not isinstance(config, dict) or CLASS_KEY not in config or KWARGS_KEY not in config:
        raise ConfigError(
            f"{source}: {where} must be an object with '{CLASS_KEY}' and '{KWARGS_KEY}'"
        )
    extra = set(config) - {CLASS_KEY, KWARGS_KEY}
    if extra:
        raise ConfigError(f"{source}: unexpected key(s) {sorted(extra)} in {where}")
    if not isinstance(config[KWARGS_KEY], dict):
        raise ConfigError(f"{source}: {where}.{KWARGS_KEY} must be an object")
    return resolve_class(config[CLASS_KEY], source), config[KWARGS_KEY]


def _from_json(value: Any, source: str, where: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {CLASS_KEY, KWARGS_KEY}:
            return config_to_model(value, source, where)
        return {k: _from_json(v, source, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v, source, f"{where}[{i}]") for i, v in enumerate(value)]
    return value
