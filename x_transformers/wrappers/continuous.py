"""``ContinuousTransformerWrapper``: real-valued vectors in and out.

Shape letters: b batch, n sequence.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..layers.validation import check_mask
from ..options import parse_wrapper_kwargs
from .memory_tokens import build_memory_tokens, embed_and_run_layers
from .stem import SequenceStem, package_outputs
from .token import check_attn_layers


class ContinuousTransformerWrapper(nn.Module):
    """A layer stack on vectors: ``Linear(dim_in, dim)`` in, ``Linear(dim, dim_out)`` out (each an
    identity when the widths are absent).

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
        options = parse_wrapper_kwargs(
            kwargs, "ContinuousTransformerWrapper", ("dim_in", "dim_out", "max_seq_len")
        )
        for name in ("tie_embedding", "logits_dim", "emb_dim"):
            if getattr(options, name) not in (None, False):
                raise TypeError(f"'{name}' applies to token models, not continuous ones")
        dim = attn_layers.dim
        self.dim_in, self.dim_out, self.max_seq_len = dim_in or dim, dim_out or dim, max_seq_len
        self.project_in = nn.Linear(dim_in, dim) if dim_in is not None else nn.Identity()
        self.stem = SequenceStem(dim, dim, max_seq_len, options)
        # memory: memory tokens, Transformer-XL memories (x_transformers.wrappers.memory_tokens)
        self.num_memory_tokens = options.num_memory_tokens
        self.memory_tokens = build_memory_tokens(options.num_memory_tokens, dim)
        self.max_mem_len, self.shift_mem_down = options.max_mem_len, options.shift_mem_down
        self.attn_layers = attn_layers
        self.project_out = nn.Linear(dim, dim_out) if dim_out is not None else nn.Identity()

    def forward(
        self,
        x: Tensor,
        return_embeddings: bool = False,
        return_intermediates: bool = False,
        return_attn: bool = False,
        mask: Tensor | None = None,
        prepend_embeds: Tensor | None = None,
        mems: list[Tensor] | None = None,
        return_mems: bool = False,
        cache=None,
        seq_start_pos: Tensor | None = None,
        **layer_inputs,
    ):
        """x (b, n, dim_in) -> (b, n, dim_out); ``mask`` (b, n) True = keep. ``mems``,
        ``return_mems``, ``cache`` and ``seq_start_pos`` as for ``TransformerWrapper``."""
        if x.ndim != 3 or x.shape[-1] != self.dim_in:
            raise ValueError(
                f"input must have shape (batch, seq_len, dim_in={self.dim_in}), "
                f"got {tuple(x.shape)}"
            )
        check_mask(x, mask, "mask")
        h, intermediates = embed_and_run_layers(
            self,
            self.project_in(x),
            mask=mask,
            prepend_embeds=prepend_embeds,
            mems=mems,
            return_mems=return_mems,
            cache=cache,
            seq_start_pos=seq_start_pos,
            return_intermediates=return_intermediates,
            return_attn=return_attn,
            layer_inputs=layer_inputs,
        )
        out = h if return_embeddings else self.project_out(h)
        return package_outputs(out, intermediates, return_intermediates, return_attn, return_mems)
