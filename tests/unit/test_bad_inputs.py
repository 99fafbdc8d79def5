"""One table of bad inputs over every public wrapper and every generate (issue 13, items 5, 7-10).

Each row must raise ``ValueError`` / ``TypeError`` with a message naming the argument; the rows
after the table check the defined results (``seq_len=0`` gives an empty result, an all-False mask
a zero loss). New features add rows here.
"""

from __future__ import annotations

import math

import pytest
import torch

from x_transformers import (
    AutoregressiveWrapper,
    ContinuousAutoregressiveWrapper,
    ContinuousTransformerWrapper,
    Decoder,
    Encoder,
    TransformerWrapper,
    ViTransformerWrapper,
    XLAutoregressiveWrapper,
    XTransformer,
)
from x_transformers.generation.kv_cache import StaticKVCache

VOCAB, DIM, MAX_LEN = 20, 16, 8


def decoder(**kwargs):
    return Decoder(dim=DIM, depth=1, heads=2, **kwargs)


def token_model(**kwargs):
    return TransformerWrapper(
        num_tokens=kwargs.pop("num_tokens", VOCAB),
        max_seq_len=kwargs.pop("max_seq_len", MAX_LEN),
        attn_layers=decoder(),
        **kwargs,
    )


def ar(**kwargs):
    return AutoregressiveWrapper(token_model(), **kwargs)


def xl(**kwargs):
    return XLAutoregressiveWrapper(token_model(max_mem_len=4), **kwargs)


def continuous(**kwargs):
    net = ContinuousTransformerWrapper(
        max_seq_len=kwargs.pop("max_seq_len", MAX_LEN),
        attn_layers=decoder(),
        **kwargs,
    )
    return net


def car():
    return ContinuousAutoregressiveWrapper(continuous(dim_in=4, dim_out=4))


def xtransformer(**kwargs):
    return XTransformer(
        dim=DIM,
        enc_num_tokens=VOCAB,
        enc_depth=1,
        enc_heads=2,
        enc_max_seq_len=MAX_LEN,
        dec_num_tokens=VOCAB,
        dec_depth=1,
        dec_heads=2,
        dec_max_seq_len=MAX_LEN,
        **kwargs,
    )


def vit(**kwargs):
    settings = dict(image_size=8, patch_size=4, attn_layers=Encoder(dim=DIM, depth=1, heads=2))
    return ViTransformerWrapper(**{**settings, **kwargs})


def tokens(*shape):
    return torch.randint(0, VOCAB, shape)


def static_cache_past_max_seq_len():
    net = token_model().eval()
    cache = StaticKVCache(2 * MAX_LEN)  # larger than the learned positions
    net(tokens(2, MAX_LEN), cache=cache)
    net(tokens(2, 1), cache=cache)


BAD_INPUTS = {
    # --- item 5: sampling settings, pad_value after eos ---
    "generate temperature nan": (
        lambda: ar().generate(tokens(2, 3), 4, temperature=float("nan")),
        ValueError,
        "temperature",
    ),
    "generate temperature str": (
        lambda: ar().generate(tokens(2, 3), 4, temperature="hot"),
        TypeError,
        "temperature",
    ),
    "xl generate temperature nan": (
        lambda: xl().generate(tokens(2, 3), 4, temperature=float("nan")),
        ValueError,
        "temperature",
    ),
    "xtransformer generate temperature nan": (
        lambda: xtransformer().generate(tokens(2, 3), tokens(2, 1), 4, temperature=math.nan),
        ValueError,
        "temperature",
    ),
    "generate pad_value outside vocab": (
        lambda: ar(pad_value=VOCAB).generate(tokens(2, 3), 4, eos_token=1),
        ValueError,
        "pad_value",
    ),
    "generate pad_value negative": (
        lambda: ar(pad_value=-1).generate(tokens(2, 3), 4, eos_token=1),
        ValueError,
        "pad_value",
    ),
    "beam_search pad_value outside vocab": (
        lambda: ar(pad_value=VOCAB + 5).beam_search(tokens(2, 3), 4, eos_token=1),
        ValueError,
        "pad_value",
    ),
    "xl generate pad_value outside vocab": (
        lambda: xl(pad_value=-3).generate(tokens(2, 3), 4, eos_token=1),
        ValueError,
        "pad_value",
    ),
    "top_k frac_num_tokens 0": (
        lambda: ar().generate(tokens(2, 3), 2, filter_kwargs={"frac_num_tokens": 0.0}),
        ValueError,
        "frac_num_tokens",
    ),
    "top_k frac_num_tokens 1.5": (
        lambda: ar().generate(tokens(2, 3), 2, filter_kwargs={"frac_num_tokens": 1.5}),
        ValueError,
        "frac_num_tokens",
    ),
    # --- item 7: generation lengths and prompts ---
    "generate seq_len -1": (lambda: ar().generate(tokens(2, 3), -1), ValueError, "seq_len"),
    "generate seq_len 2.5": (lambda: ar().generate(tokens(2, 3), 2.5), TypeError, "seq_len"),
    "beam_search seq_len -1": (lambda: ar().beam_search(tokens(2, 3), -1), ValueError, "seq_len"),
    "continuous generate seq_len -1": (
        lambda: car().generate(torch.randn(2, 3, 4), -1),
        ValueError,
        "seq_len",
    ),
    "xl generate seq_len -1": (lambda: xl().generate(tokens(2, 3), -1), ValueError, "seq_len"),
    "xtransformer generate seq_len -1": (
        lambda: xtransformer().generate(tokens(2, 3), tokens(2, 1), -1),
        ValueError,
        "seq_len",
    ),
    "generate empty 1-D prompt": (
        lambda: ar().generate(tokens(0), 3),
        ValueError,
        "prompt",
    ),
    "beam_search empty 1-D prompt": (
        lambda: ar().beam_search(tokens(0), 3),
        ValueError,
        "prompt",
    ),
    "continuous generate empty start": (
        lambda: car().generate(torch.randn(2, 0, 4), 3),
        ValueError,
        "start",
    ),
    "xtransformer generate empty seq_in": (
        lambda: xtransformer().generate(tokens(2, 0), tokens(2, 1), 3),
        ValueError,
        "seq_in",
    ),
    "xtransformer generate empty 1-D start": (
        lambda: xtransformer().generate(tokens(1, 3), tokens(0), 3),
        ValueError,
        "prompt",
    ),
    # --- item 8: the training forward's mask ---
    "ar forward int mask": (
        lambda: ar()(tokens(2, 5), mask=torch.ones(2, 5, dtype=torch.long)),
        TypeError,
        "mask",
    ),
    "ar forward mask wrong length": (
        lambda: ar()(tokens(2, 5), mask=torch.ones(2, 4, dtype=torch.bool)),
        ValueError,
        "mask",
    ),
    # --- item 9: constructor values ---
    "num_tokens 0": (lambda: token_model(num_tokens=0), ValueError, "num_tokens"),
    "num_tokens float": (lambda: token_model(num_tokens=20.0), TypeError, "num_tokens"),
    "max_seq_len negative": (
        lambda: token_model(max_seq_len=-1, use_abs_pos_emb=False),
        ValueError,
        "max_seq_len",
    ),
    "num_memory_tokens -1": (
        lambda: token_model(num_memory_tokens=-1),
        ValueError,
        "num_memory_tokens",
    ),
    "max_mem_len -1": (lambda: token_model(max_mem_len=-1), ValueError, "max_mem_len"),
    "shift_mem_down -1": (lambda: token_model(shift_mem_down=-1), ValueError, "shift_mem_down"),
    "emb_dim 0": (lambda: token_model(emb_dim=0), ValueError, "emb_dim"),
    "logits_dim 0": (lambda: token_model(logits_dim=0), ValueError, "logits_dim"),
    "continuous num_memory_tokens -1": (
        lambda: continuous(num_memory_tokens=-1),
        ValueError,
        "num_memory_tokens",
    ),
    "continuous dim_in 0": (lambda: continuous(dim_in=0), ValueError, "dim_in"),
    "continuous dim_out -2": (lambda: continuous(dim_out=-2), ValueError, "dim_out"),
    "continuous max_seq_len 0": (
        lambda: continuous(max_seq_len=0, use_abs_pos_emb=False),
        ValueError,
        "max_seq_len",
    ),
    "vit patch_size 0": (lambda: vit(patch_size=0), ValueError, "patch_size"),
    "vit image_size negative": (lambda: vit(image_size=-8), ValueError, "image_size"),
    "vit num_classes 0": (lambda: vit(num_classes=0), ValueError, "num_classes"),
    "xtransformer dec_num_memory_tokens -1": (
        lambda: xtransformer(dec_num_memory_tokens=-1),
        ValueError,
        "num_memory_tokens",
    ),
    "static cache past max_seq_len": (
        static_cache_past_max_seq_len,
        ValueError,
        "max_seq_len",
    ),
    "cross_attn_ keyword without cross_attend": (
        lambda: decoder(cross_attn_dim_head=8),
        ValueError,
        "cross_attn_dim_head.*cross_attend",
    ),
    "cross_residual_attn without cross_attend": (
        lambda: decoder(cross_residual_attn=True),
        ValueError,
        "cross_residual_attn.*cross_attend",
    ),
    "xtransformer encoder cross_attn_ keyword": (
        lambda: xtransformer(enc_cross_attn_dim_head=8),
        ValueError,
        "enc_cross_attn_dim_head.*cross_attend",
    ),
    "xtransformer encoder dim_context": (
        lambda: xtransformer(enc_dim_context=8),
        ValueError,
        "enc_dim_context.*cross_attend",
    ),
    # --- item 10: images ---
    "vit uint8 images": (
        lambda: vit()(torch.zeros(1, 3, 8, 8, dtype=torch.uint8)),
        TypeError,
        "float",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_a_clear_error(case):
    call, error, pattern = BAD_INPUTS[case]
    with pytest.raises(error, match=pattern):
        call()


ZERO_LENGTH = {
    "generate": (lambda: ar().generate(tokens(2, 3), 0), (2, 0)),
    "generate 1-D": (lambda: ar().generate(tokens(3), 0), (0,)),
    "generate static cache": (lambda: ar().generate(tokens(2, 3), 0, cache_kind="static"), (2, 0)),
    "continuous generate": (lambda: car().generate(torch.randn(2, 3, 4), 0), (2, 0, 4)),
    "continuous generate unbatched": (lambda: car().generate(torch.randn(3, 4), 0), (0, 4)),
    "xl generate": (lambda: xl().generate(tokens(2, 3), 0), (2, 0)),
    "xtransformer generate": (
        lambda: xtransformer().generate(tokens(2, 3), tokens(2, 1), 0),
        (2, 0),
    ),
}


@pytest.mark.parametrize("case", list(ZERO_LENGTH))
def test_generating_zero_tokens_gives_an_empty_result(case):
    call, shape = ZERO_LENGTH[case]
    out = call()
    assert tuple(out.shape) == shape


def test_all_false_mask_gives_zero_loss_like_the_continuous_wrapper():
    torch.manual_seed(0)
    wrapper = ar()
    loss = wrapper(tokens(2, 5), mask=torch.zeros(2, 5, dtype=torch.bool))
    assert torch.isfinite(loss) and float(loss) == 0.0
    loss.backward()  # still differentiable
    continuous_loss = car()(torch.randn(2, 5, 4), mask=torch.zeros(2, 5, dtype=torch.bool))
    assert float(continuous_loss) == 0.0
    # a partly masked batch still gives the mean over the counted targets
    wrapper.eval()
    x = tokens(2, 6)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    loss, logits = wrapper(x, mask=mask, return_outputs=True)
    target = x[:, 1:].masked_fill(~mask[:, 1:], -100)
    expected = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target)
    torch.testing.assert_close(loss, expected)


def test_dim_context_without_cross_attention_is_refused():
    with pytest.raises(ValueError, match="'dim_context' only acts on cross-attention"):
        Decoder(dim=8, depth=1, dim_context=8)
    Decoder(dim=8, depth=1, dim_context=8, cross_attend=True)  # fine with cross-attention
