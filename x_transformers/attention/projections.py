"""The query, key, value and output projections of one attention block, with their bias flags.

Self-attention (``fuse_qkv=True``) keeps queries, keys and values in one fused
``(q_width + k_width + v_width, dim)`` linear, ``to_qkv``, so a block whose three inputs are the
same tensor does one matrix product; cross-attention keeps ``to_q`` and a fused ``to_kv``. When
the inputs differ (position-infused attention adds positions to the query / key inputs only,
Transformer-XL memories join the keys and values) the fused weight *and* bias are split by rows,
so every path computes the same function. A state dict in the split layout (``to_q`` +
``to_kv``) loads into the fused one.

Code that needs to set or re-initialise the projections by what they are (DeepNorm's gains,
checkpoint converters) goes through :meth:`AttentionProjections.role_parameters`, which names
the four roles ``'q'``, ``'k'``, ``'v'``, ``'out'`` and hands out writable views, instead of
slicing weights by attribute name.

Shape letters: b batch, i queries, j keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backend import register_load_state_dict_pre_hook
from ..weight_layout import linear
from .heads import HeadShapes, split_heads

ROLES = ("q", "k", "v", "out")


class AttentionProjections(nn.Module):
    """``to_q``: dim -> q_width; ``to_kv``: dim_context -> k_width + v_width (rows [keys;
    values]), or both fused in ``to_qkv`` (rows [queries; keys; values]); ``to_out``:
    out_width -> dim, or the given output module (attention on attention).

    Args:
        qkv_bias: a bias on the query, key and value projections (GPT-2, BERT, ViT).
        out_bias: a bias on the output projection.
        to_out: replaces the output linear (it must be an ``nn.Linear`` or contain them).
        fuse_qkv: one linear for queries, keys and values (self-attention: dim_context == dim).
    """

    def __init__(
        self,
        dim: int,
        dim_context: int,
        shapes: HeadShapes,
        *,
        qkv_bias: bool = False,
        out_bias: bool = False,
        to_out: nn.Module | None = None,
        fuse_qkv: bool = False,
    ):
        super().__init__()
        if fuse_qkv and dim_context != dim:
            raise ValueError(
                f"a fused q/k/v projection needs dim_context == dim, got {dim_context}"
            )
        self.widths = (shapes.q_width, shapes.k_width, shapes.v_width)
        self.fused = fuse_qkv
        # with one width for every head, to_qkv's rows are whole heads [q...; k...; v...]: one
        # reshape + transpose + split gives the per-head views (see project_heads)
        self.head_dim = shapes.dim_qk
        self.fused_heads = (
            tuple(width // shapes.dim_qk for width in self.widths)
            if fuse_qkv and shapes.dim_qk == shapes.dim_v
            else None
        )
        if fuse_qkv:
            self.to_qkv = linear(dim, sum(self.widths), bias=qkv_bias)
        else:
            self.to_q = linear(dim, shapes.q_width, bias=qkv_bias)
            self.to_kv = linear(dim_context, shapes.k_width + shapes.v_width, bias=qkv_bias)
        self.to_out = linear(shapes.out_width, dim, bias=out_bias) if to_out is None else to_out
        register_load_state_dict_pre_hook(self, _fuse_split_layout)

    def __getattr__(self, name: str):
        """With a fused projection, ``to_q`` and ``to_kv`` are :class:`SplitView` row views of
        ``to_qkv`` (``.weight``, ``.bias``), for code written against the split layout."""
        if name in ("to_q", "to_kv") and "to_qkv" in self._modules:
            (w_q, b_q), (w_k, b_k), (w_v, b_v) = self._split()
            if name == "to_q":
                return SplitView(w_q, b_q)
            rows = slice(self.widths[0], None)
            return SplitView(
                self.to_qkv.weight[rows], _cat(b_k, b_v) if b_k is None else self.to_qkv.bias[rows]
            )
        return super().__getattr__(name)

    def project(
        self, q_input: Tensor, k_input: Tensor, v_input: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Queries (b, i, q_width), keys (b, j, k_width) and values (b, j, v_width) of their
        inputs; one matrix product (and one split) when the projection is fused and the three
        inputs are one tensor."""
        if self.fused and q_input is k_input and k_input is v_input:
            return self.to_qkv(q_input).split(self.widths, -1)
        keys, values = self.keys_values(k_input, v_input).split(self.widths[1:], -1)
        return self.queries(q_input), keys, values

    def project_heads(
        self, q_input: Tensor, k_input: Tensor, v_input: Tensor, shapes: HeadShapes
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per-head queries (b, h|1, i, dim_qk), keys (b, k|1, j, dim_qk) and values
        (b, k, j, dim_v): :meth:`project` then :func:`~.heads.split_heads`, in three view
        operations when the projection is fused, its inputs are one tensor and every head has
        one width (seven otherwise; this runs in every block of every decoding step)."""
        if self.fused_heads is not None and q_input is k_input and k_input is v_input:
            batch, length = q_input.shape[:2]
            heads = self.to_qkv(q_input).reshape(
                batch, length, sum(self.fused_heads), self.head_dim
            )
            return heads.transpose(1, 2).split(self.fused_heads, 1)
        return split_heads(*self.project(q_input, k_input, v_input), shapes)

    def queries(self, x: Tensor) -> Tensor:
        """(b, i, dim) -> (b, i, q_width)."""
        if not self.fused:
            return self.to_q(x)
        (w_q, b_q), _, _ = self._split()
        return F.linear(x, w_q, b_q)

    def keys_values(self, k_input: Tensor, v_input: Tensor) -> Tensor:
        """(b, j, k_width + v_width) keys and values of their inputs (the same tensor, or two)."""
        if k_input is v_input and not self.fused:
            return self.to_kv(v_input)
        _, (w_k, b_k), (w_v, b_v) = self._split()
        if k_input is v_input:
            return F.linear(v_input, torch.cat((w_k, w_v)), _cat(b_k, b_v))
        return torch.cat((F.linear(k_input, w_k, b_k), F.linear(v_input, w_v, b_v)), dim=-1)

    def output(self, out: Tensor) -> Tensor:
        """(b, i, out_width) -> (b, i, dim)."""
        return self.to_out(out)

    def role_parameters(self) -> dict[str, tuple[Tensor, Tensor | None]]:
        """``{'q' | 'k' | 'v' | 'out': (weight, bias or None)}``; k and v are views of the fused
        key/value linear, so writing into them (under ``torch.no_grad()``) sets the model's
        parameters. ``out`` is the output linear (the whole GLU linear for attention on
        attention)."""
        (w_q, b_q), (w_k, b_k), (w_v, b_v) = self._split()
        out = self.to_out
        return {
            "q": (w_q, b_q),
            "k": (w_k, b_k),
            "v": (w_v, b_v),
            "out": (out.weight, out.bias),
        }

    @torch.no_grad()
    def initialize(self, init: Callable[[str, Tensor, Tensor | None], None]) -> None:
        """Call ``init(role, weight, bias)`` on each role's writable views (see
        :meth:`role_parameters`), e.g. for DeepNorm's per-role gains."""
        for role, (weight, bias) in self.role_parameters().items():
            init(role, weight, bias)

    def _split(self) -> tuple[tuple[Tensor, Tensor | None], ...]:
        """(weight, bias) of the queries, keys and values: row views of the fused linear(s)."""
        if self.fused:
            return _split_rows(self.to_qkv, self.widths)
        return (self.to_q.weight, self.to_q.bias), *_split_rows(self.to_kv, self.widths[1:])


@dataclass(frozen=True)
class SplitView:
    """Writable row views of a fused linear: the weight (out, in) and bias (out,) of one part."""

    weight: Tensor
    bias: Tensor | None = None


def _split_rows(linear: nn.Linear, widths) -> tuple[tuple[Tensor, Tensor | None], ...]:
    weights = linear.weight.split(tuple(widths))
    biases = (None,) * len(widths) if linear.bias is None else linear.bias.split(tuple(widths))
    return tuple(zip(weights, biases))


def _cat(*biases: Tensor | None) -> Tensor | None:
    return None if biases[0] is None else torch.cat(biases)


def _fuse_split_layout(module, state_dict, prefix, *args) -> None:
    """Load a split-layout state dict (``to_q`` + ``to_kv``) into a fused ``to_qkv``."""
    if not module.fused or prefix + "to_q.weight" not in state_dict:
        return
    for name in ("weight", "bias"):
        parts = [state_dict.pop(prefix + f"to_{p}.{name}", None) for p in ("q", "kv")]
        if all(part is not None for part in parts):
            state_dict[prefix + f"to_qkv.{name}"] = torch.cat(parts)
