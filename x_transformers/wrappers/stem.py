"""The part every sequence wrapper shares between "vectors of width dim" and the layer stack:
absolute positions, embedding dropout, projection to the stack's width, prepended embeddings.

Shape letters: b batch, n sequence, p prepended length, d width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..options import WrapperOptions
from ..positional import AbsolutePositionalEmbedding


class SequenceStem(nn.Module):
    """``embedded (b, n, emb_dim) -> (b, p + n, dim)`` ready for the layer stack."""

    def __init__(self, emb_dim: int, dim: int, max_seq_len: int, options: WrapperOptions):
        super().__init__()
        self.dim = dim
        self.max_seq_len = max_seq_len
        self.pos_emb = (
            AbsolutePositionalEmbedding(emb_dim, max_seq_len) if options.use_abs_pos_emb else None
        )
        self.emb_dropout = nn.Dropout(options.emb_dropout)
        self.project_emb = nn.Linear(emb_dim, dim) if emb_dim != dim else nn.Identity()

    def forward(
        self,
        embedded: Tensor,
        mask: Tensor | None = None,
        prepend_embeds: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        x = embedded
        if self.pos_emb is not None:
            x = x + self.pos_emb(x.shape[1], device=x.device)
        x = self.project_emb(self.emb_dropout(x))
        if prepend_embeds is not None:
            x, mask = self._prepend(x, mask, prepend_embeds)
        return x, mask

    def _prepend(self, x: Tensor, mask: Tensor | None, prepend_embeds: Tensor):
        """Put extra embeddings (b, p, dim), e.g. image patches, before the sequence; they get no
        absolute position and are always visible."""
        if prepend_embeds.ndim != 3 or prepend_embeds.shape[0] != x.shape[0]:
            raise ValueError(
                f"'prepend_embeds' must have shape (batch={x.shape[0]}, length, {self.dim}), "
                f"got {tuple(prepend_embeds.shape)}"
            )
        if prepend_embeds.shape[-1] != self.dim:
            raise ValueError(
                f"'prepend_embeds' must have width {self.dim}, got {prepend_embeds.shape[-1]}"
            )
        x = torch.cat((prepend_embeds.to(x.dtype), x), dim=1)
        if mask is not None:
            visible = mask.new_ones(mask.shape[0], prepend_embeds.shape[1])
            mask = torch.cat((visible, mask), dim=1)
        return x, mask


def package_outputs(out: Tensor, intermediates, return_intermediates: bool, return_attn: bool):
    """The return convention shared by the wrappers: ``out``, ``(out, intermediates)`` or
    ``(out, attention maps)``."""
    if return_intermediates:
        return out, intermediates
    if return_attn:
        return out, intermediates.attn_maps
    return out
