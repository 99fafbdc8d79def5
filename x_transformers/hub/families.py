"""What the converters of the reference families (GPT-2, Llama, BERT, ViT, T5) share: refusing
a configuration we cannot express, copying tensors with their shapes checked, and reaching the
projections of a layer stack by role.

Converters map from the Hugging Face model *object* (its modules and config attributes), never
from raw state-dict key names, which differ between ``transformers`` versions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ..attention.projections import AttentionProjections
from ..layers.layout import CROSS_ATTENTION, FEEDFORWARD, SELF_ATTENTION

# transformers' activation names -> ff_activation (both tanh-gelu spellings are one formula)
HF_ACTIVATIONS = {
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}


class UnsupportedConfigError(ValueError):
    """A reference configuration uses something this library cannot express (or a model of
    ours uses something the reference family cannot); the message names it."""


def refuse(family: str, name: str, value, why: str) -> None:
    raise UnsupportedConfigError(f"{family}: cannot convert {name}={value!r}: {why}")


def require(family: str, config, name: str, allowed, why: str, default=None) -> None:
    """``config.<name>`` (``default`` when absent) must be one of ``allowed``."""
    value = getattr(config, name, default)
    if value not in allowed:
        refuse(family, name, value, why)


@torch.no_grad()
def copy_into(target: Tensor, source: Tensor, what: str) -> None:
    """``target[...] = source`` after checking shapes (``target`` may be a view)."""
    if tuple(target.shape) != tuple(source.shape):
        raise ValueError(f"{what}: shape {tuple(source.shape)} does not fit {tuple(target.shape)}")
    target.copy_(source.to(target.dtype))


def copy_linear(target: nn.Linear, weight: Tensor, bias: Tensor | None, what: str) -> None:
    copy_into(target.weight, weight, f"{what}.weight")
    copy_optional(target.bias, bias, f"{what}.bias")


def copy_optional(target: Tensor | None, source: Tensor | None, what: str) -> None:
    """Both present (copied) or both absent; a bias on one side only is an error."""
    if (target is None) != (source is None):
        side = "the reference" if target is None else "this model"
        raise ValueError(f"{what}: only {side} has this tensor")
    if target is not None:
        copy_into(target, source, what)


def copy_norm(target: nn.Module, source: nn.Module, what: str) -> None:
    """LayerNorm / RMSNorm gains and biases; the epsilons must agree."""
    eps = getattr(source, "eps", getattr(source, "variance_epsilon", None))
    if eps != getattr(target, "eps", None):
        raise ValueError(f"{what}: epsilon {getattr(target, 'eps', None)} here, {eps} there")
    copy_optional(target.weight, getattr(source, "weight", None), f"{what}.weight")
    copy_optional(getattr(target, "bias", None), getattr(source, "bias", None), f"{what}.bias")


def blocks_of(stack, kind: str) -> list:
    """The :class:`Sublayer` blocks of one kind ('a', 'c', 'f') of a layer stack, in order."""
    return [block for block, k in zip(stack.blocks, stack.layer_kinds) if k == kind]


def units(stack) -> Iterator[tuple]:
    """Per layer: (self-attention block, cross-attention block or None, feedforward block)."""
    attention = blocks_of(stack, SELF_ATTENTION)
    cross = blocks_of(stack, CROSS_ATTENTION) or [None] * len(attention)
    feedforward = blocks_of(stack, FEEDFORWARD)
    if not (len(attention) == len(cross) == len(feedforward)):
        raise ValueError("the stack is not a plain (attention, feedforward) layout")
    yield from zip(attention, cross, feedforward)


def projections(block) -> dict[str, tuple[Tensor, Tensor | None]]:
    """Writable views of the q / k / v / out weights and biases of an attention block."""
    proj = block.branch.proj
    if not isinstance(proj, AttentionProjections):
        raise TypeError(f"expected AttentionProjections, got {type(proj).__name__}")
    return proj.role_parameters()


def set_projection(block, role: str, weight: Tensor, bias: Tensor | None, what: str) -> None:
    target_weight, target_bias = projections(block)[role]
    copy_into(target_weight, weight, f"{what}.{role}.weight")
    copy_optional(target_bias, bias, f"{what}.{role}.bias")


def reference_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def resolved_options(model) -> dict:
    """The options of a token model, with spellings that mean the same thing made equal (the
    hidden width by ``ff_mult`` or ``ff_inner_dim``, the activation by name or flag, the default
    norm epsilon)."""
    from ..feedforward import hidden_width
    from ..norms import build_norm

    config = model.attn_layers.config
    ff = config.feedforward
    ff = dataclasses.replace(
        ff,
        mult=4,
        inner_dim=hidden_width(config.dim, ff),
        activation=ff.activation_name,
        swish=False,
        relu_squared=False,
    )
    norm = build_norm(config.dim, config.blocks)
    eps = getattr(norm, "eps", None)
    blocks = dataclasses.replace(config.blocks, norm_eps=eps)
    config = dataclasses.replace(config, feedforward=ff, blocks=blocks)
    return {"layers": config, "wrapper": model.options}


def check_same_model(family: str, model, expected) -> None:
    """``model`` must have exactly the options of ``expected`` (the model the reference config
    describes); the first difference is named in an :class:`UnsupportedConfigError`."""
    for group, ours in resolved_options(model).items():
        theirs = resolved_options(expected)[group]
        _first_difference(family, ours, theirs, group)


def _first_difference(family: str, ours, theirs, where: str) -> None:
    for field in dataclasses.fields(ours):
        mine, reference = getattr(ours, field.name), getattr(theirs, field.name)
        if dataclasses.is_dataclass(mine):
            _first_difference(family, mine, reference, f"{where}.{field.name}")
        elif mine != reference:
            refuse(family, f"{where}.{field.name}", mine, f"the {family} family has {reference!r}")
