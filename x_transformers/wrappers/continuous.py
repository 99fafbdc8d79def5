"""``ContinuousTransformerWrapper``: real-valued vectors in and out.

Shape letters: b batch, n sequence.
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor, nn

from ..options import parse_wrapper_kwargs
from ..options.wrapper import check_size
from ..weight_layout import linear
from .sequence import SequenceWrapper
from .token import check_attn_layers


class ContinuousTransformerWrapper(SequenceWrapper):
    """A layer stack on vectors: ``Linear(dim_in, dim)`` in, ``Linear(dim, dim_out)`` out (each an
    identity when the widths are absent). The forward is :meth:`SequenceWrapper.forward`:
    ``model(x, mask=...)`` with x (b, n, dim_in) gives (b, n, dim_out); memory tokens, XL
    memories, ``prepend_embeds``, intermediates and the KV cache work as for
    ``TransformerWrapper``.

    With ``probabilistic=True`` the head gives a mean and a log-variance per output feature:
    the output is (b, n, dim_out, 2), ``[..., 0]`` the mean and ``[..., 1]`` the log-variance
    of a Gaussian (the loss and sampling of ``ContinuousAutoregressiveWrapper`` use them).

    Args:
        max_seq_len: longest sequence the learned absolute positions cover.
        attn_layers: the layer stack.
        dim_in / dim_out: input and output widths (default: the stack's ``dim``).
        **kwargs: wrapper keywords (``emb_dropout``, ``use_abs_pos_emb``, ...).
    """

    def __init__(
        self,
        *,
        max_seq_len: int,
        attn_layers,
        dim_in: int | None = None,
        dim_out: int | None = None,
        **kwargs,
    ):
        super().__init__()
        check_attn_layers(attn_layers, "ContinuousTransformerWrapper")
        max_seq_len = check_size(max_seq_len, "max_seq_len")
        for name, value in (("dim_in", dim_in), ("dim_out", dim_out)):
            if value is not None:  # None: the stack's dim; 0 is not a default
                check_size(value, name)
        options = parse_wrapper_kwargs(
            kwargs, "ContinuousTransformerWrapper", ("dim_in", "dim_out", "max_seq_len")
        )
        token_only = ("tie_embedding", "logits_dim", "emb_dim", "num_token_types", "pooler")
        for name in (*token_only, "logits_transform", "logits_bias", "logits_scale"):
            if getattr(options, name) not in (None, False):
                raise TypeError(f"'{name}' applies to token models, not continuous ones")
        dim = attn_layers.dim
        self.dim_in, self.dim_out = dim_in or dim, dim_out or dim
        self.project_in = linear(dim_in, dim) if dim_in is not None else nn.Identity()
        self._build_trunk(dim, max_seq_len, attn_layers, options)
        self.probabilistic = options.probabilistic
        if options.probabilistic:  # mean and log-variance heads, side by side
            self.project_out = linear(dim, self.dim_out * 2)
        else:
            self.project_out = linear(dim, dim_out) if dim_out is not None else nn.Identity()

    def check_inputs(self, x: Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != self.dim_in:
            raise ValueError(
                f"input must have shape (batch, seq_len, dim_in={self.dim_in}), "
                f"got {tuple(x.shape)}"
            )

    def embed(self, x: Tensor) -> Tensor:
        return self.project_in(x)

    def head(self, h: Tensor) -> Tensor:
        out = self.project_out(h)
        if self.probabilistic:  # (..., 2 * dim_out) -> (..., dim_out, 2): mean, log-variance
            return rearrange(out, "... (two d) -> ... d two", two=2)
        return out
