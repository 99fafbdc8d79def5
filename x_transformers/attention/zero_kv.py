"""A zero key / value pair in front of the keys, so that a head can attend to nothing.

With a softmax every query must spread weight 1 over the keys; a key of zeros (score 0 whatever
the query) with a value of zeros gives a head a place to put weight that contributes nothing,
one of the remedies for attention sinks and outlier activations (e.g. "Quantizable Transformers:
Removing Outliers by Helping Attention Heads Do Nothing", 2306.12929, and the ``add_zero_attn``
option of PyTorch's ``nn.MultiheadAttention``). The slot carries no position, is visible to every
query and is never masked by padding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .masks import prepend_keys
from .stages import KEYS, AttentionStage


class ZeroKeyValue(AttentionStage):
    """Prepends one zero key and one zero value; the mask and bias grow with a visible slot."""

    point = KEYS

    def __init__(self, keyword: str = "attn_add_zero_kv"):
        super().__init__(keyword)

    def forward(self, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None, state=None):
        k = torch.cat((k.new_zeros(*k.shape[:-2], 1, k.shape[-1]), k), dim=-2)
        v = torch.cat((v.new_zeros(*v.shape[:-2], 1, v.shape[-1]), v), dim=-2)
        return k, v, prepend_keys(mask, 1, True), prepend_keys(bias, 1, 0.0)
