"""The fused (SDPA) and explicit paths of the attention kernel: the decision, the errors of
``attn_flash``, numerical agreement, and the cost of the default path.

Agreement is checked in float32 with rtol = atol = 1e-5 for every configuration the fused path
accepts, with and without masks, including a fully masked row (zeros on both paths).
"""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from x_transformers import CrossAttender, Decoder, Encoder, TransformerWrapper
from x_transformers.attention import Attend
from x_transformers.attention.masks import causal_mask

FP32 = {"rtol": 1e-5, "atol": 1e-5}

FUSED_CONFIGS = {
    "default": {},
    "mem_kv": {"attn_num_mem_kv": 3},
    "one_kv_head": {"attn_one_kv_head": True},
    "kv_heads": {"attn_kv_heads": 2},
    "collab_heads": {"attn_collab_heads": True},
    "qk_norm": {"attn_qk_norm": True, "attn_qk_norm_groups": 2, "attn_qk_norm_dim_scale": True},
    "gates": {"attn_on_attn": True, "attn_gate_values": True, "attn_head_scale": True},
    "dim_head": {"attn_dim_head": 5},
    "all_fused": {
        "attn_kv_heads": 2,
        "attn_num_mem_kv": 2,
        "attn_qk_norm": True,
        "attn_qk_norm_scale": 4.0,
        "attn_gate_values": True,
        "attn_head_scale": True,
        "attn_on_attn": True,
    },
}
MATRIX_FEATURES = {
    "attn_sparse_topk": {"attn_sparse_topk": 2},
    "attn_use_entmax15": {"attn_use_entmax15": True},
    "attn_talking_heads": {"attn_talking_heads": True},
    "residual_attn": {"residual_attn": True},
}


def token_model(stack, **kwargs):
    torch.manual_seed(0)
    layers = stack(dim=16, depth=2, heads=4, attn_dim_head=kwargs.pop("attn_dim_head", 4), **kwargs)
    return TransformerWrapper(num_tokens=20, max_seq_len=12, attn_layers=layers).eval()


def masks(batch=3, n=9):
    padding = torch.ones(batch, n, dtype=torch.bool)
    padding[0, -4:] = False
    padding[2] = False  # a fully masked sequence: every row of it has nothing to attend to
    return {"none": None, "padding": padding}


@pytest.mark.parametrize("stack", [Encoder, Decoder], ids=["encoder", "decoder"])
@pytest.mark.parametrize("name", list(FUSED_CONFIGS))
def test_fused_and_explicit_paths_agree(name, stack):
    model = token_model(stack, **FUSED_CONFIGS[name])
    assert all(b.branch.attend.fused for b in model.attn_layers.blocks[::2])
    x = torch.randint(0, 20, (3, 9))
    for mask_name, mask in masks().items():
        with torch.no_grad():
            fused = model(x, mask=mask)
            explicit, maps = model(x, mask=mask, return_attn=True)  # maps force the explicit path
        torch.testing.assert_close(fused, explicit, **FP32, msg=f"{name}, mask {mask_name}")
        assert len(maps) == 2


def test_attend_paths_agree_on_masks_biases_and_grouped_heads():
    torch.manual_seed(0)
    b, h, i, j, d = 2, 4, 5, 7, 8
    q = torch.randn(b, h, i, d)
    bias = torch.randn(1, h, i, j)
    full_mask = torch.rand(b, 1, i, j) > 0.4
    full_mask[0, :, 2] = False  # one fully masked query row
    for kv_heads in (4, 2, 1):
        k, v = torch.randn(b, kv_heads, j, d), torch.randn(b, kv_heads, j, d)
        for causal in (False, True):
            attend = Attend(causal=causal)
            for mask in (None, full_mask):
                for extra_bias in (None, bias):
                    fused, _ = attend(q, k, v, mask=mask, bias=extra_bias)
                    explicit, inter = attend(q, k, v, mask=mask, bias=extra_bias, need_weights=True)
                    torch.testing.assert_close(fused, explicit, **FP32)
                    if mask is not None:
                        assert (fused[0, :, 2] == 0).all() and (explicit[0, :, 2] == 0).all()
                        assert (inter.post_softmax_attn[0, :, 2] == 0).all()


def test_explicit_path_matches_the_textbook_formula():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 6, 5), torch.randn(2, 3, 6, 5)
    out, inter = Attend(causal=True)(q, k, v, need_weights=True)
    scores = q @ k.transpose(-1, -2) / 5**0.5
    scores = scores.masked_fill(~causal_mask(4, 6, q.device), float("-inf"))
    torch.testing.assert_close(inter.post_softmax_attn, scores.softmax(-1))
    torch.testing.assert_close(out, scores.softmax(-1) @ v)


@pytest.mark.parametrize("keyword", list(MATRIX_FEATURES))
def test_matrix_features_take_the_explicit_path_and_say_why(keyword):
    model = token_model(Decoder, **MATRIX_FEATURES[keyword])
    attend = model.attn_layers.blocks[0].branch.attend
    assert not attend.fused
    assert keyword in attend.fused_reason


@pytest.mark.parametrize("keyword", list(MATRIX_FEATURES))
def test_flash_with_a_matrix_feature_raises_naming_both(keyword):
    with pytest.raises(ValueError, match=f"'attn_flash=True'.*'{keyword}'"):
        Decoder(dim=16, depth=1, heads=2, attn_flash=True, **MATRIX_FEATURES[keyword])


def test_flash_errors_name_the_cross_attention_keywords():
    with pytest.raises(ValueError, match="'cross_attn_flash=True'.*'cross_attn_talking_heads'"):
        CrossAttender(dim=16, depth=1, heads=2, attn_flash=True, cross_attn_talking_heads=True)
    with pytest.raises(ValueError, match="'cross_attn_flash=True'.*'cross_residual_attn'"):
        CrossAttender(dim=16, depth=1, heads=2, cross_attn_flash=True, cross_residual_attn=True)
    # cross_attn_ options do not reach self-attention
    Decoder(
        dim=16,
        depth=1,
        heads=2,
        attn_flash=True,
        cross_attend=True,
        cross_attn_flash=False,
        cross_attn_sparse_topk=2,
    )


def test_flash_refuses_to_return_attention_maps():
    model = token_model(Decoder, attn_flash=True)
    with pytest.raises(ValueError, match="'attn_flash=True'.*'return_attn=True'"):
        model(torch.randint(0, 20, (1, 5)), return_attn=True)


def test_return_attn_gives_post_softmax_maps_of_every_layer():
    model = token_model(Encoder, attn_num_mem_kv=2)
    x = torch.randint(0, 20, (3, 9))
    mask = masks()["padding"]
    _, maps = model(x, mask=mask, return_attn=True)
    assert [m.shape for m in maps] == [(3, 4, 9, 2 + 9)] * 2
    for weights in maps:
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 9))
        assert (weights[0, ..., -4:] == 0).all()  # padded keys get no weight
    # without memory slots, a fully masked sequence has all-zero maps
    plain = token_model(Encoder)
    _, maps = plain(x, mask=mask, return_attn=True)
    assert all((m[2] == 0).all() for m in maps)


class OpRecorder(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("causal", [False, True])
def test_default_attention_is_one_sdpa_call_and_nothing_else(causal):
    """The disabled features cost no tensor operation: projections, head views, one fused
    kernel, the output projection."""
    stack = Decoder if causal else Encoder
    attention = stack(dim=16, depth=1, heads=2).blocks[0].branch
    x = torch.randn(2, 5, 16)
    with OpRecorder() as recorder:
        attention(x)
    ops = [name for name in recorder.names if name != "__get__"]
    allowed = {"linear", "split", "reshape", "unflatten", "transpose", "flatten"}
    assert ops.count("scaled_dot_product_attention") == 1
    assert set(ops) - {"scaled_dot_product_attention"} <= allowed, ops
    assert ops.count("linear") == 2  # one fused q/k/v projection, one output projection
