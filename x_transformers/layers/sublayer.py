"""One residual block: where the norm goes, the branch, and the residual connection.

Pre-norm (the default)::

    x ──┬── norm ── branch ──(+)──>
        └───────────────────┘
"""

from __future__ import annotations

from torch import Tensor, nn


class Residual(nn.Module):
    """The plain residual connection ``branch_out + residual``."""

    def forward(self, branch_out: Tensor, residual: Tensor) -> Tensor:
        return branch_out + residual


class Sublayer(nn.Module):
    """``post_residual_norm(residual(post_branch_norm(branch(pre_branch_norm(x))), x))``.

    Every stage but the branch is ``nn.Identity`` when its feature is off. A branch may return a
    tensor or ``(tensor, intermediates)``; the block always returns ``(x, intermediates)``.
    """

    def __init__(
        self,
        branch: nn.Module,
        *,
        pre_branch_norm: nn.Module | None = None,
        post_branch_norm: nn.Module | None = None,
        residual: nn.Module | None = None,
        post_residual_norm: nn.Module | None = None,
    ):
        super().__init__()
        self.pre_branch_norm = pre_branch_norm or nn.Identity()
        self.branch = branch
        self.post_branch_norm = post_branch_norm or nn.Identity()
        self.residual = residual or Residual()
        self.post_residual_norm = post_residual_norm or nn.Identity()

    def forward(self, x: Tensor, **branch_inputs):
        out = self.branch(self.pre_branch_norm(x), **branch_inputs)
        out, intermediates = out if isinstance(out, tuple) else (out, None)
        out = self.residual(self.post_branch_norm(out), x)
        return self.post_residual_norm(out), intermediates
