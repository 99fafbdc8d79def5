"""The layer stack: ``AttentionLayers`` and its three faces ``Encoder``, ``Decoder`` and
``CrossAttender``.

Shape letters: b batch, n sequence, d model width, j context length.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..attention.masks import combine_masks, full_to_attention_mask, key_padding_to_attention_mask
from ..options import parse_layer_kwargs
from .builders import build_block, build_final_norm
from .intermediates import LayerIntermediates
from .layout import CROSS_ATTENTION, SELF_ATTENTION, plan_layers
from .validation import check_attn_mask, check_context, check_mask


class AttentionLayers(nn.Module):
    """A stack of residual attention / feedforward blocks on ``(b, n, dim)`` tensors.

    Args:
        dim: model width.
        depth: number of (attention, feedforward) units.
        heads: attention heads.
        causal: each position sees only itself and earlier positions.
        cross_attend: add a cross-attention block to every unit (``context=`` in forward).
        only_cross: cross-attention and feedforward only (no self-attention).
        dim_context: width of the cross-attention context when it differs from ``dim``.
        **kwargs: feature keywords (``attn_*``, ``cross_attn_*``, ``ff_*`` and the stack keywords
            of the README); routed by :mod:`x_transformers.options`.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int = 8,
        causal: bool = False,
        cross_attend: bool = False,
        only_cross: bool = False,
        dim_context: int | None = None,
        **kwargs,
    ):
        super().__init__()
        name = type(self).__name__
        self.config = parse_layer_kwargs(
            dim=dim,
            depth=depth,
            heads=heads,
            causal=causal,
            cross_attend=cross_attend,
            only_cross=only_cross,
            kwargs=kwargs,
            where=name,
        )
        self.dim, self.depth, self.heads, self.causal = dim, depth, heads, causal
        self.dim_context = dim_context or dim
        self.layer_kinds = plan_layers(self.config)
        self.has_cross_attention = CROSS_ATTENTION in self.layer_kinds
        self.blocks = nn.ModuleList(
            build_block(kind, self.config, self.dim_context) for kind in self.layer_kinds
        )
        self.final_norm = build_final_norm(self.config)
        self.layer_dropout = self.config.blocks.layer_dropout

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        return_hiddens: bool = False,
        return_attn: bool = False,
    ):
        """x (b, n, dim); mask (b, n) key padding, True = keep; context (b, j, dim_context);
        context_mask (b, j); attn_mask (n, n) or (b, n, n), True = may attend."""
        check_mask(x, mask, "mask")
        check_attn_mask(x, attn_mask)
        check_context(self, x, context, context_mask)
        inputs = {
            SELF_ATTENTION: {
                "mask": combine_masks(
                    key_padding_to_attention_mask(mask), full_to_attention_mask(attn_mask)
                ),
                "need_weights": return_attn,
            },
            CROSS_ATTENTION: {
                "context": context,
                "mask": key_padding_to_attention_mask(context_mask),
                "need_weights": return_attn,
            },
        }
        intermediates = LayerIntermediates()
        for kind, block in zip(self.layer_kinds, self.blocks):
            if self._skip_block():
                continue
            intermediates.hiddens.append(x)
            x, attention_intermediates = block(x, **inputs.get(kind, {}))
            if attention_intermediates is not None:
                intermediates.attn_intermediates.append(attention_intermediates)
        x = self.final_norm(x)
        return (x, intermediates) if return_hiddens else x

    def _skip_block(self) -> bool:
        """Stochastic depth ("Deep Networks with Stochastic Depth", 1603.09382): training only."""
        if not self.training or self.layer_dropout <= 0:
            return False
        return torch.rand(()).item() < self.layer_dropout


class Encoder(AttentionLayers):
    """A bidirectional stack: every position sees every other (BERT-like)."""

    def __init__(self, dim: int, depth: int, **kwargs):
        if "causal" in kwargs:
            raise TypeError("Encoder is never causal; use Decoder for a causal stack")
        super().__init__(dim, depth, causal=False, **kwargs)


class Decoder(AttentionLayers):
    """A causal stack: position t sees positions <= t (GPT-like)."""

    def __init__(self, dim: int, depth: int, **kwargs):
        if "causal" in kwargs:
            raise TypeError("Decoder is always causal; use Encoder for a bidirectional stack")
        super().__init__(dim, depth, causal=True, **kwargs)


class CrossAttender(AttentionLayers):
    """Cross-attention and feedforward blocks only: ``model(x, context=..., context_mask=...)``."""

    def __init__(self, dim: int, depth: int, **kwargs):
        if "only_cross" in kwargs:
            raise TypeError("CrossAttender always has only_cross=True")
        super().__init__(dim, depth, only_cross=True, **kwargs)
