"""The query, key, value and output projections of one attention block, with their bias flags.

Keys and values share one fused ``(k_width + v_width, dim_context)`` linear, so the usual case
(keys and values computed from the same input) is one matrix product. When their inputs differ
(position-infused attention adds positions to the key input only) the fused weight *and* bias
are split, so both paths compute the same function.

Code that needs to set or re-initialise the projections by what they are (DeepNorm's gains,
checkpoint converters) goes through :meth:`AttentionProjections.role_parameters`, which names
the four roles ``'q'``, ``'k'``, ``'v'``, ``'out'`` and hands out writable views, instead of
slicing weights by attribute name.

Shape letters: b batch, i queries, j keys.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .heads import HeadShapes

ROLES = ("q", "k", "v", "out")


class AttentionProjections(nn.Module):
    """``to_q``: dim -> q_width; ``to_kv``: dim_context -> k_width + v_width (rows [keys;
    values]); ``to_out``: out_width -> dim, or the given output module (attention on attention).

    Args:
        qkv_bias: a bias on the query, key and value projections (GPT-2, BERT, ViT).
        out_bias: a bias on the output projection.
        to_out: replaces the output linear (it must be an ``nn.Linear`` or contain them).
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
    ):
        super().__init__()
        self.k_width, self.v_width = shapes.k_width, shapes.v_width
        self.to_q = nn.Linear(dim, shapes.q_width, bias=qkv_bias)
        self.to_kv = nn.Linear(dim_context, shapes.k_width + shapes.v_width, bias=qkv_bias)
        self.to_out = nn.Linear(shapes.out_width, dim, bias=out_bias) if to_out is None else to_out

    def queries(self, x: Tensor) -> Tensor:
        """(b, i, dim) -> (b, i, q_width)."""
        return self.to_q(x)

    def keys_values(self, k_input: Tensor, v_input: Tensor) -> Tensor:
        """(b, j, k_width + v_width) keys and values of their inputs (the same tensor, or two)."""
        if k_input is v_input:
            return self.to_kv(v_input)
        (w_k, b_k), (w_v, b_v) = self._split_kv()
        return torch.cat((F.linear(k_input, w_k, b_k), F.linear(v_input, w_v, b_v)), dim=-1)

    def output(self, out: Tensor) -> Tensor:
        """(b, i, out_width) -> (b, i, dim)."""
        return self.to_out(out)

    def role_parameters(self) -> dict[str, tuple[Tensor, Tensor | None]]:
        """``{'q' | 'k' | 'v' | 'out': (weight, bias or None)}``; k and v are views of the fused
        key/value linear, so writing into them (under ``torch.no_grad()``) sets the model's
        parameters. ``out`` is the output linear (the whole GLU linear for attention on
        attention)."""
        (w_k, b_k), (w_v, b_v) = self._split_kv()
        out = self.to_out
        return {
            "q": (self.to_q.weight, self.to_q.bias),
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

    def _split_kv(self):
        weights = self.to_kv.weight.split((self.k_width, self.v_width))
        bias = self.to_kv.bias
        biases = (None, None) if bias is None else bias.split((self.k_width, self.v_width))
        return tuple(zip(weights, biases))
