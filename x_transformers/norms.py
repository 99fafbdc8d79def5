"""Normalisation layers and the builder that picks one from the options."""

from __future__ import annotations

from torch import nn

from .options import BlockOptions


def build_norm(dim: int, blocks: BlockOptions) -> nn.Module:
    """The norm used throughout a layer stack (LayerNorm by default)."""
    return nn.LayerNorm(dim)
