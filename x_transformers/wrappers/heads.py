"""Embeddings and heads of the reference families around a token model.

- token-type (segment) embeddings added to the token embeddings (BERT, 1810.04805);
- the logits head: an optional transform (dense -> activation -> LayerNorm, BERT's masked-LM
  head), an optional scale of the final hidden states (T5 with tied embeddings multiplies by
  ``d_model ** -0.5``, 1910.10683), the projection (own or tied to the token embedding) and an
  optional bias;
- the pooler: dense + tanh on the first position (BERT's next-sentence pooler, ViT's pooler).

::

    hidden ── transform? ── * scale? ── @ W^T (own or tied) ── + bias? ──> logits

Shape letters: b batch, n sequence, d width, v vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..backend import value_range
from ..feedforward import activation_by_name
from ..options import WrapperOptions
from ..weight_layout import linear


class LogitsTransform(nn.Module):
    """BERT's prediction-head transform: ``LayerNorm(activation(dense(h)))`` (1810.04805)."""

    def __init__(self, dim: int, activation: str, eps: float):
        super().__init__()
        self.dense = linear(dim, dim)
        self.activation = activation_by_name(activation)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, h: Tensor) -> Tensor:
        return self.norm(self.activation(self.dense(h)))


def build_logits_transform(dim: int, options: WrapperOptions) -> nn.Module | None:
    """``logits_transform``: a :class:`LogitsTransform`, or None when off."""
    if options.logits_transform is None:
        return None
    eps = 1e-5 if options.emb_norm_eps is None else options.emb_norm_eps
    return LogitsTransform(dim, options.logits_transform, eps)


def project_logits(
    h: Tensor,
    transform: nn.Module | None,
    scale: float | None,
    weight: Tensor,
    bias: Tensor | None,
) -> Tensor:
    """``(transform(h) * scale) @ weight^T + bias``: (b, n, d) -> (b, n, v)."""
    if transform is not None:
        h = transform(h)
    if scale is not None:
        h = h * scale
    return F.linear(h, weight, bias)


class Pooler(nn.Module):
    """``tanh(dense(h[:, 0]))``: the first position's final hidden state, pooled (BERT, ViT)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dense = linear(dim, dim)

    def forward(self, h: Tensor) -> Tensor:
        return torch.tanh(self.dense(h[:, 0]))  # (b, n, d) -> (b, d)


def check_token_type_ids(token_type_ids: Tensor, x: Tensor, num_token_types: int) -> None:
    """(b, n) integer ids in ``[0, num_token_types)`` for the tokens ``x`` (b, n)."""
    if token_type_ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"'token_type_ids' must be an integer tensor, got {token_type_ids.dtype}")
    if tuple(token_type_ids.shape) != tuple(x.shape):
        raise ValueError(
            f"'token_type_ids' must have the shape of the tokens {tuple(x.shape)}, "
            f"got {tuple(token_type_ids.shape)}"
        )
    if token_type_ids.device.type == "cpu" and token_type_ids.numel():
        low, high = value_range(token_type_ids)
        if low < 0 or high >= num_token_types:
            raise ValueError(
                f"'token_type_ids' must lie in [0, {num_token_types}), got [{low}, {high}]"
            )
