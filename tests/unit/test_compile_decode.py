"""A single decode step with the static cache compiles as one graph (no graph break, no
recompilation from step to step) and gives the eager logits."""

from __future__ import annotations

import pytest
import torch

from x_transformers import Decoder, TransformerWrapper
from x_transformers.generation import DynamicKVCache, StaticKVCache, decode_step

pytestmark = pytest.mark.slow  # compilation takes seconds

CONFIGS = [
    pytest.param({}, {}, "inductor", id="default"),
    pytest.param(  # dynamo's view (graph breaks, guards) does not depend on the backend
        {"rotary_pos_emb": True, "alibi_pos_bias": True, "attn_num_mem_kv": 2},
        {"use_abs_pos_emb": False, "num_memory_tokens": 2},
        "aot_eager",
        id="rotary_alibi_memory",
    ),
]


def model(layer_kwargs, wrapper_kwargs):
    torch.manual_seed(0)
    return TransformerWrapper(
        num_tokens=31,
        max_seq_len=16,
        attn_layers=Decoder(dim=32, depth=2, heads=4, attn_dim_head=8, **layer_kwargs),
        **wrapper_kwargs,
    ).eval()


def prefilled(net, prompt, capacity=16):
    cache = StaticKVCache(capacity)
    with torch.no_grad():
        net(prompt, cache=cache)
    return cache


@pytest.mark.parametrize("layer_kwargs, wrapper_kwargs, backend", CONFIGS)
def test_the_decode_step_has_no_graph_break(layer_kwargs, wrapper_kwargs, backend):
    net = model(layer_kwargs, wrapper_kwargs)
    prompt = torch.randint(0, 31, (2, 5))
    cache = prefilled(net, prompt)
    torch._dynamo.reset()
    with torch.no_grad():
        explanation = torch._dynamo.explain(decode_step)(net, prompt[:, -1:], cache)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("layer_kwargs, wrapper_kwargs, backend", CONFIGS)
def test_compiled_steps_match_eager_without_recompiling(layer_kwargs, wrapper_kwargs, backend):
    net = model(layer_kwargs, wrapper_kwargs)
    sequence = torch.randint(0, 31, (2, 9))
    torch._dynamo.reset()
    step = torch.compile(decode_step, fullgraph=True, backend=backend)
    static = prefilled(net, sequence[:, :5])
    eager = DynamicKVCache()
    compiled_logits, eager_logits = [], []
    with torch.no_grad():
        net(sequence[:, :5], cache=eager)
        for t in range(5, 9):
            token = sequence[:, t : t + 1]
            if t == 6:  # the first compiled call is done; later steps must reuse its graph
                torch._dynamo.config.error_on_recompile = True
            compiled_logits.append(step(net, token, static))
            eager_logits.append(decode_step(net, token, eager))
    torch._dynamo.config.error_on_recompile = False
    torch.testing.assert_close(torch.stack(compiled_logits), torch.stack(eager_logits))
