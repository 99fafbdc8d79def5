"""``torch.compile(model, fullgraph=True)`` traces the training forward of common configurations
without a graph break (SPEC: "what users expect beyond the seeds")."""

from __future__ import annotations

import pytest
import torch

from x_transformers import Decoder, Encoder, TransformerWrapper

pytestmark = pytest.mark.slow  # tracing takes seconds

CONFIGS = {
    "gpt": (Decoder, {}),
    "bert_masked": (Encoder, {}),
    "rotary_glu_rmsnorm": (Decoder, {"rotary_pos_emb": True, "ff_glu": True, "use_rmsnorm": True}),
    "modern_rotary_rmsnorm_swiglu_qknorm": (
        Decoder,
        {
            "rotary_pos_emb": True,
            "use_rmsnorm": True,
            "ff_swish": True,
            "ff_glu": True,
            "attn_qk_norm": True,
        },
    ),
    "alibi_gqa_qknorm": (
        Decoder,
        {"alibi_pos_bias": True, "attn_kv_heads": 2, "attn_qk_norm": True},
    ),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_training_forward_has_no_graph_break(name):
    stack, kwargs = CONFIGS[name]
    torch.manual_seed(0)
    model = TransformerWrapper(
        num_tokens=32, max_seq_len=16, attn_layers=stack(dim=32, depth=2, heads=4, **kwargs)
    )
    x = torch.randint(0, 32, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, -3:] = False
    explanation = torch._dynamo.explain(model)(x, mask=mask)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x, mask=mask), model(x, mask=mask))
