"""Absolute positions added to the embeddings by the wrappers, indexed by explicit positions.

``use_abs_pos_emb=True`` (the default) learns one vector per position up to ``max_seq_len``;
``sinusoidal_pos_emb=True`` uses fixed sinusoids instead (any length); ``use_abs_pos_emb=False``
turns absolute positions off ("Transformer Language Models without Positional Encodings Still
Learn Positional Information", 2203.16634), so that a model with relative positions only (or none)
accepts sequences longer than ``max_seq_len``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..options import WrapperOptions
from .sinusoidal import SinusoidalPositionalEmbedding

EMBEDDING_INIT_STD = 0.02
SMALL_INIT_STD = 1e-5  # with l2norm_embed (small init, as proposed by BlinkDL)


class AbsolutePositionalEmbedding(nn.Module):
    """Learned absolute positions (one vector per position up to ``max_seq_len``)."""

    def __init__(self, dim: int, max_seq_len: int, init_std: float = EMBEDDING_INIT_STD):
        super().__init__()
        if max_seq_len < 1:
            raise ValueError(
                f"learned absolute positions need max_seq_len >= 1, got {max_seq_len}; "
                "use use_abs_pos_emb=False for a model without absolute positions"
            )
        self.max_seq_len = max_seq_len
        self.emb = nn.Embedding(max_seq_len, dim)
        nn.init.normal_(self.emb.weight, std=init_std)

    def forward(
        self, seq_len: int, offset: int | Tensor = 0, device: torch.device | None = None
    ) -> Tensor:
        """(seq_len, dim) embeddings of positions ``offset .. offset + seq_len - 1``.

        A tensor offset is read on the device, without a host sync: 0-d (a static KV cache's
        write position) or (b, 1) per-row starts (left-padded prompts: positions before a row's
        start are clamped to 0, they are padding), giving (seq_len, dim) or (b, seq_len, dim)."""
        if isinstance(offset, Tensor):
            positions = torch.arange(seq_len, device=offset.device) + offset
            return self.emb(positions.clamp(min=0))
        end = offset + seq_len
        if end > self.max_seq_len:
            raise ValueError(
                f"sequence of length {end} is longer than max_seq_len={self.max_seq_len} of the "
                "learned absolute positions; shorten it, raise max_seq_len, or use a relative "
                "scheme (e.g. rotary_pos_emb, alibi_pos_bias) with use_abs_pos_emb=False"
            )
        positions = torch.arange(offset, end, device=device or self.emb.weight.device)
        return self.emb(positions)


def embedding_init_std(options: WrapperOptions) -> float:
    """Initial std of token and learned position embeddings: tiny with ``l2norm_embed``."""
    return SMALL_INIT_STD if options.l2norm_embed else EMBEDDING_INIT_STD


def build_absolute_positions(
    dim: int, max_seq_len: int, options: WrapperOptions
) -> nn.Module | None:
    """The wrapper's absolute positions, or None when ``use_abs_pos_emb=False``."""
    if options.sinusoidal_pos_emb and not options.use_abs_pos_emb:
        raise ValueError(
            "'sinusoidal_pos_emb=True' chooses the kind of absolute positions but "
            "'use_abs_pos_emb=False' turns absolute positions off; set only one of them"
        )
    if not options.use_abs_pos_emb:
        return None
    if options.sinusoidal_pos_emb:
        return SinusoidalPositionalEmbedding(dim)
    return AbsolutePositionalEmbedding(dim, max_seq_len, init_std=embedding_init_std(options))
