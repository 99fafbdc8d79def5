"""One residual block: where the norm goes, the branch, and the residual connection.

Every layout below is the same recipe with some stages switched off (``None``)::

    pre-norm (default)            x ──┬── norm ── branch ─────────────(+)──>
                                      └────────────────────────────────┘

    post-norm (pre_norm=False)    x ──┬── branch ──(+)── norm ──>
                                      └────────────┘

    sandwich norm (2105.13290)    x ──┬── norm ── branch ── norm ─────(+)──>
                                      └────────────────────────────────┘

    ReZero (2003.04887)           x ──┬── branch ── * g ──(+)──>        g = 0 at init
                                      └───────────────────┘

    DeepNorm (2203.00555)         x ──┬── branch ──────(+)── norm ──>
                                      └── * alpha ──────┘

    macaron (1906.02762): a unit is  ½ff ──> attention ──> ½ff,  each ½ff block being
                                  x ──┬── norm ── ff ── * 0.5 ──(+)──>
                                      └─────────────────────────┘

Scaled (NormFormer) and gated (GTrXL) residuals replace the ``(+)``; token shift acts on the
branch input, right after the pre-branch norm; sublayer dropout (``attn_sublayer_dropout``,
``ff_sublayer_dropout``) drops elements of the branch output right before the residual.

Conditioning (DiT, 2212.09748; layers/conditioning.py): with ``condition`` (b, c) the norms may
be adaptive and a gate from the condition (adaLN-Zero) multiplies the branch output after the
branch scale. Hyper-connections (2409.19606; layers/hyper_connections.py) replace the ``(+)``: x
holds several streams, the block's input is a learned mix of them and its output joins each.
"""

from __future__ import annotations

from torch import Tensor, nn

from .conditioning import apply_norm


class Sublayer(nn.Module):
    """``post_residual_norm(residual(dropout(branch_scale(post_branch_norm(branch(h)))), x))``
    with ``h = token_shift(pre_branch_norm(x))``.

    Every stage but the branch is ``None`` when its feature is off (``residual=None`` is the
    plain addition): a ``None`` attribute is read without ``nn.Module.__getattr__`` and costs one
    ``if``, which matters on every block of every decoding step. A branch may return a tensor or
    ``(tensor, intermediates)``; the block always returns ``(x, intermediates)``.
    ``padding_mask`` (b, n), True = keep, is only read by the token shift.
    """

    def __init__(
        self,
        branch: nn.Module,
        *,
        pre_branch_norm: nn.Module | None = None,
        token_shift: nn.Module | None = None,
        post_branch_norm: nn.Module | None = None,
        branch_scale: nn.Module | None = None,
        branch_dropout: nn.Module | None = None,
        residual: nn.Module | None = None,
        post_residual_norm: nn.Module | None = None,
        branch_gate: nn.Module | None = None,
        hyper_connection: nn.Module | None = None,
    ):
        super().__init__()
        self.pre_branch_norm = pre_branch_norm
        self.token_shift = token_shift
        self.branch = branch
        self.post_branch_norm = post_branch_norm
        self.branch_scale = branch_scale
        self.branch_dropout = branch_dropout
        self.residual = residual
        self.post_residual_norm = post_residual_norm
        self.branch_gate = branch_gate  # adaLN-Zero gate from the condition, or None
        self.hyper_connection = hyper_connection  # x holds residual streams, or None

    def forward(
        self,
        x: Tensor,
        padding_mask: Tensor | None = None,
        condition: Tensor | None = None,
        **branch_inputs,
    ):
        if self.hyper_connection is not None:  # x (b, n, s, d): hyper-connections
            h, mixed = self.hyper_connection.width(x)
            out, intermediates = self._branch_path(h, padding_mask, condition, branch_inputs)
            return self.hyper_connection.depth(out, mixed), intermediates
        out, intermediates = self._branch_path(x, padding_mask, condition, branch_inputs)
        out = out + x if self.residual is None else self.residual(out, x)
        return apply_norm(self.post_residual_norm, out, condition), intermediates

    def block_input(self, x: Tensor) -> Tensor:
        """What the branch path receives from the stream x: x itself, or with hyper-connections
        the mix of the streams (what Transformer-XL memories are made of)."""
        return x if self.hyper_connection is None else self.hyper_connection.width(x)[0]

    def normalize_input(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        """The pre-branch norm (with the condition when it is adaptive)."""
        return apply_norm(self.pre_branch_norm, x, condition)

    def branch_path(
        self,
        x: Tensor,
        padding_mask: Tensor | None = None,
        condition: Tensor | None = None,
        **branch_inputs,
    ):
        """Everything but the residual: ``(dropout(gate(branch_scale(post_branch_norm(
        branch(h))))), intermediates)``; the F and G of a reversible coupling
        (layers/reversible.py)."""
        return self._branch_path(x, padding_mask, condition, branch_inputs)

    def _branch_path(self, x: Tensor, padding_mask, condition, branch_inputs: dict):
        # the branch inputs travel as one dict: every ** hop would copy it (each block, each step)
        h = apply_norm(self.pre_branch_norm, x, condition)
        if self.token_shift is not None:
            h = self.token_shift(h, padding_mask)
        out = self.branch(h, **branch_inputs)
        out, intermediates = out if isinstance(out, tuple) else (out, None)
        out = apply_norm(self.post_branch_norm, out, condition)
        if self.branch_scale is not None:
            out = self.branch_scale(out)
        if self.branch_gate is not None:
            out = self.branch_gate(out, condition)
        if self.branch_dropout is not None:
            out = self.branch_dropout(out)
        return out, intermediates
