"""The weights' fingerprint that keeps a frozen compiled decode step (generate(compile=True))
from outliving the weights it was compiled with."""

from __future__ import annotations

import copy

import torch

from x_transformers import Decoder, TransformerWrapper
from x_transformers.generation.compiled import CompileChoice, resolve_compile, weights_fingerprint


def model() -> TransformerWrapper:
    torch.manual_seed(0)
    return TransformerWrapper(
        num_tokens=17, max_seq_len=8, attn_layers=Decoder(dim=16, depth=1, heads=2)
    )


def test_the_fingerprint_is_stable_while_nothing_touches_the_weights():
    net = model()
    before = weights_fingerprint(net)
    net(torch.randint(0, 17, (1, 4)))  # a forward reads, never writes
    assert weights_fingerprint(net) == before


def test_an_optimizer_step_changes_the_fingerprint():
    net = model()
    before = weights_fingerprint(net)
    net(torch.randint(0, 17, (1, 4))).sum().backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    assert weights_fingerprint(net) != before


def test_loading_weights_changes_the_fingerprint():
    net, other = model(), model()
    before = weights_fingerprint(net)
    net.load_state_dict(copy.deepcopy(other.state_dict()))
    assert weights_fingerprint(net) != before


def test_swapping_a_tensor_s_data_changes_the_fingerprint():
    net = model()
    before = weights_fingerprint(net)
    weight = net.token_emb.weight
    weight.data = weight.data.clone()  # same Parameter object, same version, new storage
    assert weights_fingerprint(net) != before


def test_weights_made_in_inference_mode_cannot_be_frozen():
    with torch.inference_mode():
        net = model()
    assert weights_fingerprint(net) is None


def test_compile_true_freezes_and_wraps_in_cpp_on_the_cpu_only_and_a_named_backend_never():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_compile(True, cpu) == CompileChoice("inductor", True, cpp_wrapper=True)
    assert resolve_compile(True, cpu).inductor_config() == {"freezing": True, "cpp_wrapper": True}
    assert resolve_compile(True, cuda) == CompileChoice("inductor")
    assert resolve_compile("inductor", cpu) == CompileChoice("inductor")
    assert resolve_compile("inductor", cpu).inductor_config() == {}
