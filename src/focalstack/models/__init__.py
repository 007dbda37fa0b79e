"""Networks and the model factory.

Every network follows the model contract of docs/CONVENTIONS.md: ``forward(stack (B, S, 3, H, W),
focus_u (B, S)) -> {"aif": (B, 3, H, W), "t": (B, 1, H, W)}``. New architectures register themselves
with :func:`register_model` and accept the ``width`` and ``depth`` keywords of :class:`ModelConfig`; the
module defining them must be imported below so that registration happens on ``import focalstack.models``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from torch import nn

from focalstack.models.attention import DAIFNetAttention
from focalstack.models.daifnet import DAIFNet

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

_M = TypeVar("_M", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[_M], _M]:
    """Decorator registering a model class or factory under ``name`` for :func:`create_model`."""

    def deco(factory: _M) -> _M:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str = "daifnet", **kwargs: object) -> nn.Module:
    """Build a registered network, e.g. ``create_model("daifnet", width=16, depth=4)``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {list_models()}")
    return _REGISTRY[name](**kwargs)


@dataclass
class ModelConfig:
    """Serializable model choice (a CLI / checkpoint config).

    Attributes:
        name: registered model name (:func:`list_models`).
        width: channels of the first level.
        depth: number of 2x downsamplings.
    """

    name: str = "daifnet"
    width: int = 16
    depth: int = 4


def build_model(cfg: ModelConfig) -> nn.Module:
    """:func:`create_model` from a :class:`ModelConfig`."""
    return create_model(cfg.name, width=cfg.width, depth=cfg.depth)


register_model("daifnet")(DAIFNet)
register_model("daifnet-attn")(DAIFNetAttention)
register_model("daifnet-attn-nofocus")(functools.partial(DAIFNetAttention, focus_input="none"))
register_model("daifnet-attn-metres")(functools.partial(DAIFNetAttention, focus_input="metres"))

__all__ = [
    "DAIFNet",
    "DAIFNetAttention",
    "ModelConfig",
    "build_model",
    "create_model",
    "list_models",
    "register_model",
]
