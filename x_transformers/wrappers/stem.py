"""The part every sequence wrapper shares between "vectors of width dim" and the layer stack:
absolute positions, embedding norms, embedding dropout, projection to the stack's width,
prepended embeddings.

::

    embedded ── l2norm? ──(+)── post_emb_norm? ── dropout ── project ── prepend ──> stack
    positions ─ l2norm? ───┘

``l2norm_embed`` l2-normalises the embedded vectors and the absolute positions (fixnorm,
1710.01329; token models also get the small initialisation); for the continuous wrapper the
embedded vectors are its projected inputs. ``post_emb_norm`` is a LayerNorm on the sum.

Shape letters: b batch, n sequence, p prepended length, d width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..options import WrapperOptions
from ..positional import build_absolute_positions, embedding_init_std
from ..weight_layout import linear


class L2Norm(nn.Module):
    """Scale vectors to unit l2 norm along the last dimension."""

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1)


def init_token_embedding(embedding: nn.Embedding, options: WrapperOptions) -> None:
    """Normal init with std 0.02, or the small init (1e-5) that goes with ``l2norm_embed``."""
    nn.init.normal_(embedding.weight, std=embedding_init_std(options))


class SequenceStem(nn.Module):
    """``embedded (b, n, emb_dim) -> (b, p + n, dim)`` ready for the layer stack."""

    def __init__(self, emb_dim: int, dim: int, max_seq_len: int, options: WrapperOptions):
        super().__init__()
        self.dim = dim
        self.max_seq_len = max_seq_len
        self.pos_emb = build_absolute_positions(emb_dim, max_seq_len, options)
        # steps that are off are None, not Identity: a decoding step calls no module for them
        self.embed_norm = L2Norm() if options.l2norm_embed else None
        eps = 1e-5 if options.emb_norm_eps is None else options.emb_norm_eps  # 'emb_norm_eps'
        self.post_emb_norm = nn.LayerNorm(emb_dim, eps=eps) if options.post_emb_norm else None
        self.emb_dropout = nn.Dropout(options.emb_dropout) if options.emb_dropout > 0 else None
        self.project_emb = linear(emb_dim, dim) if emb_dim != dim else None

    def forward(
        self,
        embedded: Tensor,
        mask: Tensor | None = None,
        prepend_embeds: Tensor | None = None,
        offset: int | Tensor = 0,
        pos: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """``offset``: absolute position of the first vector (e.g. the length of a KV cache); a
        0-d tensor (static cache) or (b, 1) per-row starts (left-padded prompts) also work.
        ``pos`` (n,) or (b, n): custom positions of the vectors instead."""
        x = _optional(self.embed_norm, embedded)
        if self.pos_emb is not None:
            if pos is not None:  # positions arange(n) + offset = pos
                offset = custom_position_offset(self.pos_emb, pos, x.shape[1])
            positions = self.pos_emb(x.shape[1], offset=offset, device=x.device)  # (n, d)
            x = x + _optional(self.embed_norm, positions).to(x.dtype)
        x = _optional(self.post_emb_norm, x)
        x = _optional(self.project_emb, _optional(self.emb_dropout, x))
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


def custom_position_offset(pos_emb: nn.Module, pos: Tensor, seq_len: int) -> Tensor:
    """The (n,) or (b, n) offset that places ``arange(seq_len)`` at the custom positions
    ``pos``, after checking them against learned positions' ``max_seq_len``."""
    if not isinstance(pos, Tensor) or pos.is_floating_point() or pos.shape[-1:] != (seq_len,):
        shape = tuple(pos.shape) if isinstance(pos, Tensor) else pos
        raise ValueError(f"'pos' must be integer positions (n={seq_len},) or (b, n), got {shape}")
    max_seq_len = getattr(pos_emb, "max_seq_len", None)
    if max_seq_len is not None and pos.numel() and (pos.min() < 0 or pos.max() >= max_seq_len):
        raise ValueError(
            f"'pos' must lie in [0, max_seq_len={max_seq_len}) of the learned absolute positions, "
            f"got values in [{int(pos.min())}, {int(pos.max())}]"
        )
    return pos - torch.arange(seq_len, device=pos.device)


def package_outputs(
    out: Tensor,
    intermediates,
    return_intermediates: bool,
    return_attn: bool,
    return_mems: bool = False,
):
    """The return convention shared by the wrappers: ``out``, ``(out, intermediates)``,
    ``(out, Transformer-XL memories)`` or ``(out, attention maps)``."""
    if return_intermediates:
        return out, intermediates
    if return_mems:
        return out, intermediates.mems
    if return_attn:
        return out, intermediates.attn_maps
    return out


def _optional(module: nn.Module | None, x: Tensor) -> Tensor:
    return x if module is None else module(x)
