"""U-Net long skip connections (``unet_skips=True``).

"All are Worth Words: A ViT Backbone for Diffusion Models" (U-ViT, Bao et al., 2209.12152):
the blocks of the second half of the stack also see the inputs of the mirrored blocks of the
first half. With L blocks in the plan, block j >= L - L // 2 takes::

    x_j  <-  Linear(concat(x_{L-1-j}, x_j))        Linear: (2 d) -> d

where x_i is the input of block i (x_0 the embeddings); the middle block of an odd plan has no
skip. Every combination acts per position (causality, padding, the KV cache and memories are
unaffected) and on any leading shape (hyper-connection streams too).

Shape letters: b batch, n sequence, d width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..weight_layout import linear


class UNetSkips(nn.Module):
    """The long skips of a stack of ``num_blocks`` blocks (U-ViT, 2209.12152)."""

    def __init__(self, dim: int, num_blocks: int):
        super().__init__()
        self.num_blocks, self.half = num_blocks, num_blocks // 2
        if self.half < 1:
            raise ValueError(f"'unet_skips' needs a plan of at least 2 blocks, got {num_blocks}")
        self.combines = nn.ModuleList(linear(2 * dim, dim) for _ in range(self.half))

    def forward(self, index: int, x: Tensor, saved: list[Tensor]) -> Tensor:
        """The input of block ``index``: saved in the first half, combined with its mirror's
        saved input in the second half. ``saved`` is one forward's list, empty at the start."""
        if index < self.half:
            saved.append(x)
            return x
        target = index - (self.num_blocks - self.half)  # 0 .. half - 1, negative: no skip
        if target < 0:
            return x
        skip = saved[self.num_blocks - 1 - index]
        return self.combines[target](torch.cat((skip, x), dim=-1))


def build_unet_skips(dim: int, num_blocks: int, enabled: bool) -> UNetSkips | None:
    return UNetSkips(dim, num_blocks) if enabled else None
