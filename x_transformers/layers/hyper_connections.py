"""Hyper-connections (``num_residual_streams`` > 1): several residual streams per position.

"Hyper-Connections" (Zhu et al., 2409.19606). The stack copies x into s streams
H = (h_1 .. h_s) at the start and sums them at the end. Around each block, with
``Hn = norm(H)`` (per stream, no learned affine)::

    A = A_static + s_a * tanh(Hn W_a)        (s, s + 1)  width connection
    B = B_static + s_b * tanh(Hn W_b)        (s,)        depth connection
    [h_in, H'] = A^T H                        h_in: the block's input, H': the mixed streams
    H_next = H' + B * block(h_in)

The static weights start as the plain residual (A_static = [e_k | I] with k = block index mod s,
B_static = 1), the dynamic projections W at zero and the scales s_a = s_b = 0.01, so with one
stream a block is exactly ``x + block(x)``. Everything acts per position: causality, padding,
the KV cache and Transformer-XL memories (the memories are the blocks' mixed inputs h_in) are
unaffected.

Shape letters: b batch, n sequence, s streams, d width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ResidualStreams(nn.Module):
    """Expand x into ``num_streams`` copies at the start of the stack and sum them at the end
    (Hyper-Connections, 2409.19606)."""

    def __init__(self, num_streams: int):
        super().__init__()
        self.num_streams = num_streams

    def expand(self, x: Tensor) -> Tensor:
        """(b, n, d) -> (b, n, s, d)."""
        return x.unsqueeze(-2).expand(*x.shape[:-1], self.num_streams, x.shape[-1])

    def reduce(self, streams: Tensor) -> Tensor:
        """(b, n, s, d) -> (b, n, d)."""
        return streams.sum(dim=-2)

    def extra_repr(self) -> str:
        return f"num_streams={self.num_streams}"


class HyperConnection(nn.Module):
    """The width and depth connections of one block (Hyper-Connections, 2409.19606)."""

    def __init__(self, dim: int, num_streams: int, block_index: int, dynamic_scale: float = 1e-2):
        super().__init__()
        self.dim = dim
        first = torch.zeros(num_streams, 1)
        first[block_index % num_streams, 0] = 1.0
        self.static_alpha = nn.Parameter(torch.cat((first, torch.eye(num_streams)), dim=1))
        self.static_beta = nn.Parameter(torch.ones(num_streams))
        self.dynamic_alpha = nn.Parameter(torch.zeros(dim, num_streams + 1))
        self.dynamic_beta = nn.Parameter(torch.zeros(dim))
        self.dynamic_alpha_scale = nn.Parameter(torch.tensor(dynamic_scale))
        self.dynamic_beta_scale = nn.Parameter(torch.tensor(dynamic_scale))

    def width(self, streams: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """streams (b, n, s, d) -> (the block's input (b, n, d), (mixed streams, beta))."""
        normed = F.layer_norm(streams, (self.dim,))  # (b, n, s, d)
        alpha = self.static_alpha + self.dynamic_alpha_scale * torch.tanh(
            normed @ self.dynamic_alpha
        )  # (b, n, s, s + 1)
        beta = self.static_beta + self.dynamic_beta_scale * torch.tanh(
            normed @ self.dynamic_beta
        )  # (b, n, s)
        mixed = torch.einsum("...st,...sd->...td", alpha, streams)  # (b, n, s + 1, d)
        return mixed[..., 0, :], (mixed[..., 1:, :], beta)

    def depth(self, out: Tensor, mixed: tuple[Tensor, Tensor]) -> Tensor:
        """The block's output (b, n, d) joins the mixed streams (b, n, s, d), weighted by beta."""
        streams, beta = mixed
        return streams + beta.unsqueeze(-1) * out.unsqueeze(-2)


def build_residual_streams(num_streams: int) -> ResidualStreams | None:
    return ResidualStreams(num_streams) if num_streams > 1 else None


def build_hyper_connection(dim: int, num_streams: int, block_index: int):
    return HyperConnection(dim, num_streams, block_index) if num_streams > 1 else None
