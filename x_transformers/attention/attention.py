"""Multi-head attention: projections, heads, and the kernel of :mod:`.attend`.

Shape letters: b batch, n / i queries, j keys, h heads, d head dimension.
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor, nn

from ..options import AttentionOptions
from .attend import Attend, AttentionIntermediates


def features_needing_matrix(options: AttentionOptions, prefix: str = "attn_") -> tuple[str, ...]:
    """Active keywords that need the attention matrix (the fused kernel cannot run them)."""
    wanted = ("sparse_topk", "use_entmax15", "talking_heads")
    return tuple(prefix + name for name in wanted if getattr(options, name))


class Attention(nn.Module):
    """Multi-head (self or cross) attention ("Attention Is All You Need", 1706.03762).

    Queries come from ``x``; keys and values from ``context`` when given (cross-attention), else
    from ``x``. ``dim_context`` is the width of the context when it differs from ``dim``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        options: AttentionOptions,
        *,
        causal: bool = False,
        dim_context: int | None = None,
        option_prefix: str = "attn_",
    ):
        super().__init__()
        if options.dim_head < 1:
            raise ValueError(f"'{option_prefix}dim_head' must be >= 1, got {options.dim_head}")
        self.heads = heads
        self.dim_context = dim_context or dim
        inner_dim = heads * options.dim_head
        self.to_q = nn.Linear(dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(self.dim_context, 2 * inner_dim, bias=False)
        self.attend = Attend(
            causal=causal,
            dropout=options.dropout,
            flash=options.flash,
            needs_matrix=features_needing_matrix(options, option_prefix),
        )
        self.to_out = nn.Linear(inner_dim, dim, bias=False)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, AttentionIntermediates]:
        kv_input = x if context is None else context
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(self.to_kv(kv_input), "b j (kv h d) -> kv b h j d", kv=2, h=self.heads)
        out, intermediates = self.attend(q, k, v, mask=mask, bias=bias, need_weights=need_weights)
        out = rearrange(out, "b h n d -> b n (h d)")
        return self.to_out(out), intermediates
