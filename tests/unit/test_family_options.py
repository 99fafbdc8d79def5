"""The options the reference families need (issue 11, item 2): each does what it says, and
contradictory combinations are refused by name."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from x_transformers import Decoder, Encoder, TransformerWrapper


def model(wrapper=None, **layers):
    torch.manual_seed(0)
    stack = Decoder(dim=16, depth=1, heads=2, attn_dim_head=8, **layers)
    return TransformerWrapper(num_tokens=11, max_seq_len=8, attn_layers=stack, **(wrapper or {}))


@pytest.mark.parametrize(
    "name, reference",
    [
        ("gelu", lambda t: F.gelu(t)),
        ("gelu_tanh", lambda t: F.gelu(t, approximate="tanh")),
        ("relu", F.relu),
        ("silu", F.silu),
        ("relu_squared", lambda t: F.relu(t) ** 2),
    ],
)
def test_ff_activation_by_name(name, reference):
    ff = model(ff_activation=name).attn_layers.blocks[1].branch
    x = torch.randn(2, 3, 16)
    linear = ff.proj_in[0]
    torch.testing.assert_close(ff(x), ff.proj_out(reference(linear(x))))


def test_ff_inner_dim_sets_the_exact_width():
    ff = model(ff_inner_dim=37, ff_glu=True).attn_layers.blocks[1].branch
    assert ff.proj_in.proj.out_features == 74 and ff.proj_out.in_features == 37


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ff_activation": "gelu", "ff_swish": True}, "'ff_activation' and 'ff_swish'"),
        ({"ff_activation": "relu", "ff_relu_squared": True}, "'ff_activation' and"),
        ({"ff_activation": "tanh"}, "'ff_activation' must be one of"),
        ({"ff_inner_dim": 8, "ff_mult": 2}, "'ff_inner_dim'=8 and 'ff_mult'=2"),
        ({"norm_eps": 0.0}, "'norm_eps' must be > 0"),
        ({"norm_eps": 1e-6, "use_rezero": True}, "'norm_eps' has no effect"),
        ({"attn_scale": 1.0, "attn_qk_norm": True}, "'attn_scale' and 'attn_qk_norm'"),
        ({"attn_scale": -1.0}, "'attn_scale' must be > 0"),
    ],
)
def test_contradictions_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        model(**kwargs)


def test_norm_eps_reaches_every_norm():
    stack = model(norm_eps=1e-3, use_rmsnorm=True).attn_layers
    norms = [m for m in stack.modules() if hasattr(m, "eps")]
    assert norms and all(m.eps == 1e-3 for m in norms)


def test_attn_scale_is_the_multiplier_of_the_scores():
    base, scaled = model(), model(attn_scale=1.0)
    scaled.load_state_dict(base.state_dict())
    x = torch.randint(0, 11, (1, 5))
    assert not torch.allclose(base(x), scaled(x))
    attention = scaled.attn_layers.blocks[0].branch
    assert attention.attend.scale == 1.0


def test_token_types_default_to_type_zero_and_are_checked():
    m = model({"num_token_types": 2})
    x = torch.randint(0, 11, (2, 5))
    torch.testing.assert_close(m(x), m(x, token_type_ids=torch.zeros_like(x)))
    assert not torch.allclose(m(x), m(x, token_type_ids=torch.ones_like(x)))
    with pytest.raises(ValueError, match="token_type_ids' must lie in"):
        m(x, token_type_ids=torch.full_like(x, 2))
    with pytest.raises(ValueError, match="needs a TransformerWrapper with num_token_types"):
        model()(x, token_type_ids=torch.zeros_like(x))


def test_logits_head_transform_scale_and_bias():
    m = model(
        {
            "logits_transform": "gelu",
            "logits_bias": True,
            "logits_scale": 0.5,
            "tie_embedding": True,
            "post_emb_norm": True,
            "emb_norm_eps": 1e-12,
        }
    )
    with torch.no_grad():
        m.logits_bias.normal_()
    h = torch.randn(2, 3, 16)
    t = m.logits_transform
    expected = t.norm(F.gelu(t.dense(h))) * 0.5 @ m.token_emb.weight.t() + m.logits_bias
    torch.testing.assert_close(m.logits(h), expected)
    assert t.norm.eps == 1e-12 and m.stem.post_emb_norm.eps == 1e-12


def test_pooler_is_dense_tanh_of_the_first_position():
    m = model({"pooler": True})
    h = torch.randn(2, 3, 16)
    torch.testing.assert_close(m.pool(h), torch.tanh(m.pooler.dense(h[:, 0])))
    with pytest.raises(ValueError, match="no pooler"):
        model().pool(h)


@pytest.mark.parametrize(
    "wrapper, message",
    [
        ({"emb_norm_eps": 1e-6}, "'emb_norm_eps' needs a wrapper norm"),
        ({"logits_transform": "tanh"}, "'logits_transform' must be one of"),
        ({"logits_scale": 0.0}, "'logits_scale' must be > 0"),
        ({"return_only_embed": True, "logits_bias": True}, "'logits_bias' acts on the logits"),
    ],
)
def test_wrapper_contradictions_are_refused(wrapper, message):
    with pytest.raises(ValueError, match=message):
        model(wrapper)


def test_continuous_wrapper_refuses_token_only_keywords():
    from x_transformers import ContinuousTransformerWrapper

    for keyword, value in (("num_token_types", 2), ("pooler", True), ("logits_bias", True)):
        with pytest.raises(TypeError, match=keyword):
            ContinuousTransformerWrapper(
                max_seq_len=8, attn_layers=Encoder(dim=16, depth=1, heads=2), **{keyword: value}
            )


def vit(**kwargs):
    from x_transformers import ViTransformerWrapper

    torch.manual_seed(0)
    return ViTransformerWrapper(
        image_size=8,
        patch_size=4,
        num_classes=3,
        attn_layers=Encoder(dim=16, depth=1, heads=2, attn_dim_head=8),
        **kwargs,
    )


def test_vit_class_token_and_pooling():
    img = torch.randn(2, 3, 8, 8)
    model = vit(cls_token=True, pool="cls", patch_norms=False, pooler=True)
    hidden = model(img, return_embeddings=True)
    assert hidden.shape == (2, 5, 16) and model.pos_embedding.shape == (5, 16)
    torch.testing.assert_close(model(img), model.mlp_head(hidden[:, 0]))
    torch.testing.assert_close(model.pool(hidden), torch.tanh(model.pooler.dense(hidden[:, 0])))
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in model.patch_to_embedding)
    mean = vit(cls_token=True)
    hidden = mean(img, return_embeddings=True)
    torch.testing.assert_close(mean(img), mean.mlp_head(hidden.mean(dim=1)))
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in mean.patch_to_embedding) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [({"pool": "cls"}, "'pool'='cls' needs 'cls_token'=True"), ({"pool": "max"}, "'pool' must")],
)
def test_vit_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        vit(**kwargs)
