"""``XTransformer``: an encoder-decoder (T5 / "Attention Is All You Need" style) whose forward
returns the decoder's language-model loss.

Keywords with ``enc_`` go to the encoder side and ``dec_`` to the decoder side, where they are
routed like the keywords of ``TransformerWrapper`` (``num_tokens``, ``max_seq_len``, wrapper
options) and ``Encoder``/``Decoder`` (``depth``, ``heads``, feature keywords).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..generation import AutoregressiveWrapper
from ..generation.decode import eval_mode
from ..generation.loop import check_num_new
from ..hub.mixin import PretrainedMixin
from ..layers import Decoder, Encoder
from ..options import (
    layer_keyword_names,
    parse_layer_kwargs,
    unknown_keyword_error,
    wrapper_keyword_names,
)
from .token import TransformerWrapper

SIDES = ("enc_", "dec_")
WRAPPER_KEYS = ("num_tokens", "max_seq_len", *wrapper_keyword_names())
STACK_KEYS = ("depth", "heads", "dim_context")


def split_sides(kwargs: dict) -> dict[str, dict]:
    """{'enc_depth': 6, 'dec_heads': 8} -> {'enc_': {'depth': 6}, 'dec_': {'heads': 8}}."""
    sides: dict[str, dict] = {side: {} for side in SIDES}
    valid = ["dim", "tie_token_emb", "ignore_index", "pad_value"]
    valid += [s + k for s in SIDES for k in (*WRAPPER_KEYS, *STACK_KEYS, *layer_keyword_names())]
    for key, value in kwargs.items():
        side = next((s for s in SIDES if key.startswith(s)), None)
        if side is None:
            raise unknown_keyword_error(key, valid, "XTransformer")
        sides[side][key[len(side) :]] = value
    return sides


def build_side(side: str, dim: int, causal: bool, keywords: dict) -> TransformerWrapper:
    wrapper_kwargs = {k: v for k, v in keywords.items() if k in WRAPPER_KEYS}
    stack_kwargs = {k: v for k, v in keywords.items() if k not in WRAPPER_KEYS}
    layer_keywords = {k: v for k, v in stack_kwargs.items() if k not in STACK_KEYS}
    parse_layer_kwargs(  # validate with the spelling the user typed (enc_/dec_ prefix)
        dim=dim,
        depth=stack_kwargs.get("depth", 1),
        heads=stack_kwargs.get("heads", 8),
        causal=causal,
        cross_attend=causal,
        only_cross=False,
        kwargs=layer_keywords,
        where="XTransformer",
        shown_prefix=side,
        dim_context=stack_kwargs.get("dim_context"),
    )
    for required in ("num_tokens", "max_seq_len", "depth"):
        if required not in keywords:
            raise TypeError(f"XTransformer needs '{side}{required}'")
    stack_cls = Decoder if causal else Encoder
    extra = {"cross_attend": True} if causal else {}
    attn_layers = stack_cls(dim=dim, **stack_kwargs, **extra)
    if not causal:
        wrapper_kwargs.setdefault("return_only_embed", True)
    return TransformerWrapper(attn_layers=attn_layers, **wrapper_kwargs)


class XTransformer(PretrainedMixin, nn.Module):
    """Encoder-decoder transformer.

    Args:
        dim: width shared by encoder and decoder.
        tie_token_emb: share the token embedding of encoder and decoder (same vocabulary).
        ignore_index / pad_value: passed to the decoder's :class:`AutoregressiveWrapper`.
        **kwargs: ``enc_*`` and ``dec_*`` keywords, e.g. ``enc_num_tokens``, ``enc_depth``,
            ``dec_max_seq_len``, ``dec_cross_residual_attn``.
    """

    def __init__(
        self,
        *,
        dim: int,
        tie_token_emb: bool = False,
        ignore_index: int = -100,
        pad_value: int = 0,
        **kwargs,
    ):
        super().__init__()
        sides = split_sides(kwargs)
        if sides["enc_"].get("deepnorm") and "depth" in sides["dec_"]:
            # DeepNet's encoder constants of an encoder-decoder depend on the decoder's depth
            sides["enc_"].setdefault("deepnorm_decoder_depth", sides["dec_"]["depth"])
        self.encoder = build_side("enc_", dim, False, sides["enc_"])
        decoder = build_side("dec_", dim, True, sides["dec_"])
        if tie_token_emb:
            if self.encoder.num_tokens != decoder.num_tokens:
                raise ValueError(
                    "tie_token_emb needs enc_num_tokens == dec_num_tokens, got "
                    f"{self.encoder.num_tokens} and {decoder.num_tokens}"
                )
            decoder.token_emb = self.encoder.token_emb
        self.decoder = AutoregressiveWrapper(
            decoder, ignore_index=ignore_index, pad_value=pad_value
        )

    def encode(
        self,
        src: Tensor,
        mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        src_prepend_embeds: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """src (b, n) -> (encodings (b, p + n, dim), context mask (b, p + n) or None)."""
        encoded = self.encoder(
            src,
            mask=mask,
            attn_mask=attn_mask,
            return_embeddings=True,
            prepend_embeds=src_prepend_embeds,
        )
        if mask is not None and src_prepend_embeds is not None:
            visible = mask.new_ones(mask.shape[0], src_prepend_embeds.shape[1])
            mask = torch.cat((visible, mask), dim=1)
        return encoded, mask

    def forward(
        self,
        src: Tensor,
        tgt: Tensor,
        mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        src_prepend_embeds: Tensor | None = None,
        src_mask: Tensor | None = None,
        tgt_mask: Tensor | None = None,
    ) -> Tensor:
        """Decoder LM loss of ``tgt`` given ``src``. ``mask`` (alias ``src_mask``) is the source
        key-padding mask; ``tgt_mask`` the target's."""
        mask = _one_of(mask, src_mask, "mask", "src_mask")
        context, context_mask = self.encode(src, mask, attn_mask, src_prepend_embeds)
        return self.decoder(tgt, context=context, context_mask=context_mask, mask=tgt_mask)

    @torch.no_grad()
    def generate(
        self,
        seq_in: Tensor,
        seq_out_start: Tensor,
        seq_len: int,
        mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        src_prepend_embeds: Tensor | None = None,
        **kwargs,
    ) -> Tensor:
        """Encode ``seq_in`` once, then sample ``seq_len`` target tokens after ``seq_out_start``
        (keywords as for :meth:`AutoregressiveWrapper.generate`). Encoder and decoder run in
        eval mode; the train / eval mode is restored afterwards, also on an error.
        ``seq_len=0`` gives an empty (b, 0) result; a negative one raises ``ValueError``."""
        check_num_new(seq_len)
        if not isinstance(seq_in, Tensor) or seq_in.ndim != 2 or seq_in.shape[1] < 1:
            shape = tuple(seq_in.shape) if isinstance(seq_in, Tensor) else type(seq_in).__name__
            raise ValueError(f"seq_in must have shape (batch, len >= 1), got {shape}")
        with eval_mode(self):
            context, context_mask = self.encode(seq_in, mask, attn_mask, src_prepend_embeds)
            return self.decoder.generate(
                seq_out_start, seq_len, context=context, context_mask=context_mask, **kwargs
            )


def _one_of(value, alias_value, name: str, alias: str):
    if value is not None and alias_value is not None:
        raise TypeError(f"pass either '{name}' or '{alias}', not both")
    return value if value is not None else alias_value
