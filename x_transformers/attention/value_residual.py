"""Value residual learning ("Value Residual Learning For Alleviating Attention Concentration In
Transformers", Zhou et al., 2410.17897): every self-attention block after the first mixes the
values of the first block into its own,

    v_l = (1 - g) * v_l + g * v_1,    g = sigmoid(w), one learned w per block, 0 at init (g = 1/2),

which is ResFormer's ``lambda_1 = lambda_2 = 1/2`` start with a learned mix. The first block's
values travel through the forward's state under ``add_value_residual``; they are the values of
the new positions (before the KV cache), so cached decoding mixes exactly what a full forward
mixes. The first block only records its values.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .stages import PROJECTED, AttentionStage, ForwardState

VALUE_RESIDUAL_KEY = "add_value_residual"


class ValueResidual(AttentionStage):
    """Records (first block) or mixes in (later blocks) the first block's values."""

    point = PROJECTED

    def __init__(self, *, first: bool, keyword: str = VALUE_RESIDUAL_KEY):
        super().__init__(keyword, state_key=VALUE_RESIDUAL_KEY)
        self.first = first
        self.mix = None if first else nn.Parameter(torch.zeros(()))

    def forward(self, q: Tensor, k: Tensor, v: Tensor, state: ForwardState | None = None):
        if state is None:
            return q, k, v
        first_values = state.get(self.state_key)
        if self.first or first_values is None:  # the first block (or the first one not dropped)
            state.put(self.state_key, v)
            return q, k, v
        if first_values.shape != v.shape:
            raise ValueError(
                f"'add_value_residual': the first block's values have shape "
                f"{tuple(first_values.shape)}, this block's {tuple(v.shape)}; every self-attention "
                "block must have the same key/value heads and head width"
            )
        gate = self.mix.sigmoid().to(v.dtype)
        return q, k, v + gate * (first_values - v)

    def extra_repr(self) -> str:
        return f"first={self.first}, {super().extra_repr()}"
