"""Declared attention stages (issue 10): known values of the new variants, the fused / explicit
choice derived from declarations, explicit projections, and the per-forward state."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from x_transformers import Decoder, Encoder
from x_transformers.attention import Attend, Attention, AttentionStage, ForwardState, StageList
from x_transformers.attention.l2_distance import L2DistanceScores
from x_transformers.attention.sigmoid import SigmoidAttention
from x_transformers.attention.softclamp import SoftclampScores
from x_transformers.attention.stages import MASKED, SIMILARITY
from x_transformers.options import AttentionOptions
from x_transformers.positional import PositionSpan
from x_transformers.positional.infused import PositionInfusion

F64 = torch.float64


def attention(**options) -> Attention:
    torch.manual_seed(0)
    return Attention(16, 2, AttentionOptions(dim_head=4, **options)).double()


def test_softclamped_scores_never_exceed_the_cap():
    attn = attention(softclamp_logits=True, logit_softclamp_value=1.5)
    x = 50 * torch.randn(2, 6, 16, dtype=F64)
    _, inter = attn(x, need_weights=True)
    assert inter.pre_softmax_scores.abs().max() <= 1.5
    raw = attention()(x, need_weights=True)[1].pre_softmax_scores
    assert raw.abs().max() > 1.5  # the cap did something
    torch.testing.assert_close(inter.pre_softmax_scores, 1.5 * torch.tanh(raw / 1.5))


def test_sigmoid_attention_equals_its_formula_on_a_3x3_example():
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]], dtype=F64)[None, None]
    k = torch.tensor([[0.5, 1.0], [-1.0, 0.0], [2.0, 1.0]], dtype=F64)[None, None]
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=F64)[None, None]
    bias = -math.log(3)
    attend = Attend(stages=StageList([SigmoidAttention(bias)]))
    out, inter = attend(q, k, v, need_weights=True)
    weights = torch.sigmoid(q[0, 0] @ k[0, 0].T / math.sqrt(2) + bias)
    torch.testing.assert_close(inter.post_softmax_attn[0, 0], weights)
    torch.testing.assert_close(out[0, 0], weights @ v[0, 0])
    assert not attend.fused and "attn_sigmoid" in attend.fused_reason


def test_l2_distance_scores_on_a_hand_example():
    q = torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=F64)[None, None]
    k = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, -1.0]], dtype=F64)[None, None]
    v = torch.randn(1, 1, 3, 5, dtype=F64)
    attend = Attend(stages=StageList([L2DistanceScores()]))
    assert attend.fused  # expressible as a dot product of augmented heads
    out, inter = attend(q, k, v, need_weights=True)
    squared = torch.tensor([[4.0, 4.0, 10.0], [1.0, 13.0, 1.0]], dtype=F64)
    torch.testing.assert_close(inter.pre_softmax_scores[0, 0], -squared * 2**-0.5)
    torch.testing.assert_close(attend(q, k, v)[0], out)  # the fused path agrees


class NotExpressible(AttentionStage):
    point, fused = SIMILARITY, False

    def forward(self, q, k, state=None):
        return q, k


def test_the_fused_choice_is_derived_from_the_declarations():
    assert Attend(stages=StageList([L2DistanceScores()])).fused
    attend = Attend(stages=StageList([L2DistanceScores(), NotExpressible("my_fake_stage")]))
    assert not attend.fused
    assert "my_fake_stage" in attend.fused_reason and "l2" not in attend.fused_reason
    with pytest.raises(ValueError, match="'attn_flash=True'.*'my_fake_stage'"):
        Attend(flash=True, stages=StageList([NotExpressible("my_fake_stage")]))


def test_flash_with_a_matrix_stage_names_both_keywords():
    with pytest.raises(ValueError, match="'attn_flash=True'.*'attn_softclamp_logits'"):
        Decoder(dim=16, depth=1, heads=2, attn_flash=True, attn_softclamp_logits=True)
    with pytest.raises(ValueError, match="'cross_attn_flash=True'.*'cross_attn_sigmoid'"):
        Decoder(
            dim=16,
            depth=1,
            heads=2,
            cross_attend=True,
            cross_attn_flash=True,
            cross_attn_sigmoid=True,
        )


def test_default_paths_of_the_new_variants():
    fused = ("l2_distance", "qk_rmsnorm", "value_rmsnorm", "add_zero_kv", "gate_value_heads")
    for name in fused:
        assert attention(**{name: True}).attend.fused, name
    assert not attention(softclamp_logits=True).attend.fused
    assert not attention(sigmoid=True).attend.fused
    assert Decoder(dim=16, depth=2, heads=2, add_value_residual=True).blocks[2].branch.attend.fused


def test_stage_declarations_are_checked():
    class ClaimsFusedOnScores(AttentionStage):
        point = MASKED

    with pytest.raises(ValueError, match="must declare fused = False"):
        ClaimsFusedOnScores("bad")
    with pytest.raises(ValueError, match="'attn_use_entmax15' and 'attn_sigmoid'"):
        attention(use_entmax15=True, sigmoid=True)
    with pytest.raises(ValueError, match="'attn_logit_softclamp_value=3.0' has no effect"):
        attention(logit_softclamp_value=3.0)
    with pytest.raises(ValueError, match="'attn_sublayer_dropout' must lie in"):
        Decoder(dim=16, depth=1, attn_sublayer_dropout=1.0)
    with pytest.raises(ValueError, match="soft-clamp value must be > 0"):
        SoftclampScores(0.0)


def test_value_residual_carries_the_first_layers_values_to_layer_three():
    """With the first block's output projection at zero, the first block's value projection can
    only reach the output through value residual learning."""

    def value_weight_grad(value_residual: bool) -> torch.Tensor:
        torch.manual_seed(0)
        stack = Encoder(
            dim=16, depth=3, heads=2, attn_dim_head=4, add_value_residual=value_residual
        )
        first = stack.blocks[0].branch
        with torch.no_grad():
            first.proj.to_out.weight.zero_()
        third_attention = stack.blocks[4]
        captured = {}
        third_attention.register_forward_hook(lambda m, a, out: captured.update(out=out[0]))
        stack(torch.randn(2, 5, 16))
        captured["out"].sum().backward()
        grad = first.proj.to_qkv.weight.grad
        value_rows = sum(first.proj.widths[:2])
        return None if grad is None else grad[value_rows:]

    grad = value_weight_grad(True)
    assert grad is not None and grad.abs().sum() > 0
    without = value_weight_grad(False)
    assert without is None or without.abs().sum() == 0


def test_value_residual_state_holds_the_first_values():
    stack = Decoder(dim=16, depth=2, heads=2, attn_dim_head=4, add_value_residual=True)
    _, inter = stack(torch.randn(1, 3, 16), return_hiddens=True)
    assert inter.state.keys() == ("add_value_residual",)
    assert inter.state.get("add_value_residual").shape == (1, 2, 3, 4)
    assert stack.blocks[0].branch.stages.at("projected")[0].mix is None  # the first only records


def test_projection_biases_reach_keys_and_values_on_the_position_infused_path():
    attn = attention(qkv_bias=True)
    with torch.no_grad():
        for parameter in attn.parameters():
            parameter.normal_()
    positions = Decoder(dim=16, depth=1, position_infused_attn=True).positions
    x = torch.randn(1, 4, 16, dtype=F64)
    span_positions = positions(4, device=x.device, dtype=F64)
    roles = attn.proj.role_parameters()
    infused = x + PositionInfusion(16)(PositionSpan.for_lengths(4), x.device, F64).key
    w_k, b_k = roles["k"]
    w_v, b_v = roles["v"]
    assert b_k is not None and b_v is not None
    kv = attn.proj.keys_values(*span_positions.infuse(x, x)[1:], x)
    torch.testing.assert_close(kv, torch.cat((infused @ w_k.T + b_k, x @ w_v.T + b_v), dim=-1))


def test_role_parameters_are_writable_views():
    attn = attention(qkv_bias=True, out_bias=True)
    attn.proj.initialize(lambda role, weight, bias: weight.fill_(ROLE_VALUE[role]))
    k_width = attn.shapes.k_width
    assert (attn.proj.to_kv.weight[:k_width] == 2.0).all()
    assert (attn.proj.to_kv.weight[k_width:] == 3.0).all()
    assert (attn.proj.to_q.weight == 1.0).all() and (attn.proj.to_out.weight == 4.0).all()
    assert attn.proj.to_out.bias is not None


ROLE_VALUE = {"q": 1.0, "k": 2.0, "v": 3.0, "out": 4.0}


def test_qk_and_value_rmsnorm_normalise_each_head():
    attn = attention(qk_rmsnorm=True, value_rmsnorm=True)
    q, k, v = (torch.randn(1, 2, 3, 4, dtype=F64) * 7 for _ in range(3))
    q, k, v = attn.stages.run("projected", q, k, v)
    for t in (q, k, v):
        torch.testing.assert_close(t.pow(2).mean(-1), torch.ones(1, 2, 3, dtype=F64))


def test_a_zero_key_value_lets_a_head_attend_to_nothing():
    attn = attention(add_zero_kv=True)
    _, inter = attn(torch.randn(1, 3, 16, dtype=F64), need_weights=True)
    assert inter.post_softmax_attn.shape[-1] == 4  # the zero slot in front
    torch.testing.assert_close(inter.pre_softmax_scores[..., 0], torch.zeros(1, 2, 3, dtype=F64))


def test_head_gates_are_one_scalar_per_head_and_token():
    attn = attention(gate_value_heads=True)
    gate = attn.stages.at("output")[0]
    assert gate.to_gates.weight.shape == (2, 16)
    out = torch.ones(1, 2, 3, 4, dtype=F64)
    x = torch.randn(1, 3, 16, dtype=F64)
    gated = gate(out, x)
    expected = torch.sigmoid(x @ gate.to_gates.weight.T + gate.to_gates.bias)  # (b, n, h)
    torch.testing.assert_close(gated[..., 0], expected.transpose(1, 2))


def test_sublayer_dropout_only_acts_in_training():
    torch.manual_seed(0)
    stack = Decoder(dim=16, depth=1, heads=2, attn_sublayer_dropout=0.5, ff_sublayer_dropout=0.5)
    assert all(block.branch_dropout is not None for block in stack.blocks)
    assert Decoder(dim=16, depth=1).blocks[0].branch_dropout is None
    x = torch.randn(1, 4, 16)
    stack.train()
    assert not torch.allclose(stack(x), stack(x))
    stack.eval()
    torch.testing.assert_close(stack(x), stack(x))


def test_forward_state_is_keyed_by_feature():
    state = ForwardState()
    assert "residual_attn" not in state and state.get("residual_attn") is None
    state.put("residual_attn", 1)
    assert state.keys() == ("residual_attn",) and state.get("residual_attn") == 1


def test_attention_builds_on_its_own():
    out, _ = Attention(dim=32, heads=4, causal=True)(torch.randn(1, 5, 32))
    assert out.shape == (1, 5, 32)


def test_the_layer_stack_does_not_import_generation():
    code = (
        "import sys, x_transformers.layers; "
        "assert 'x_transformers.generation' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_top_k_breaks_exact_ties_towards_the_earliest_keys():
    """Saturated scores (soft-capping) tie exactly; a cached step must keep the same keys as the
    full forward, so ties go to the earliest keys whatever the row length."""
    from x_transformers.attention.sparse_topk import SparseTopK

    kept = SparseTopK(2)(torch.zeros(1, 5)) > torch.finfo(torch.float32).min
    assert kept.tolist() == [[True, True, False, False, False]]
    longer = torch.cat((torch.zeros(1, 3), torch.full((1, 4), torch.finfo(torch.float32).min)), -1)
    assert (SparseTopK(2)(longer) > torch.finfo(torch.float32).min).tolist()[0][:3] == [
        True,
        True,
        False,
    ]


def test_the_fused_projection_loads_a_split_layout_state_dict():
    """Self-attention fuses q/k/v into one linear; a state dict of the split layout (to_q, to_kv)
    loads into it and gives identical outputs; cross-attention keeps the split layout."""
    torch.manual_seed(0)
    fused = Attention(16, 2, AttentionOptions(dim_head=4, qkv_bias=True)).double()
    split = Attention(16, 2, AttentionOptions(dim_head=4, qkv_bias=True), dim_context=16)
    split = split.double()
    assert fused.proj.fused and not split.proj.fused
    with torch.no_grad():
        for parameter in split.parameters():
            parameter.normal_()
    fused.load_state_dict(split.state_dict())
    x = torch.randn(2, 5, 16, dtype=F64)
    torch.testing.assert_close(fused(x)[0], split(x)[0], rtol=0, atol=1e-12)
    assert (
        "proj.to_qkv.weight" in fused.state_dict() and "proj.to_q.weight" not in fused.state_dict()
    )
    # the split-layout names still read (as row views) on the fused module
    torch.testing.assert_close(fused.proj.to_q.weight, split.proj.to_q.weight)
    torch.testing.assert_close(fused.proj.to_kv.bias, split.proj.to_kv.bias)
