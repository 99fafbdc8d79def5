"""No host synchronisation in the training forward of the common configurations (issue 12).

A host sync on an accelerator is a device -> host read: on CPU it shows in a ``torch.profiler``
census as ``aten::item`` / ``aten::_local_scalar_dense`` (``int(t)``, ``float(t)``, ``bool(t)``,
``if t:`` via ``aten::is_nonzero``), ``aten::nonzero`` (data-dependent output shape) or
``aten::equal``. (``.tolist()`` / ``.numpy()`` of a CPU tensor dispatch no operator, so the census
cannot see them; ``tests/unit/test_compile_forward.py`` covers those: a host read is a graph break
under ``fullgraph=True``.)

The one documented host read on CPU is the token-id range check of ``TransformerWrapper``
(``x_transformers/wrappers/token.py``): ``aminmax`` then ``int(low), int(high)``, so a bad id
raises ``ValueError`` at once. On an accelerator the same check is ``torch._assert_async``, a
device kernel. ``test_accelerator_branch_reads_nothing_on_the_host`` runs that branch on CPU
(by emptying ``HOST_CHECKED_DEVICES``) and finds no host read outside ``aten::_assert_async``.
On a CUDA machine ``test_cuda_forward_has_no_sync`` runs the forward under
``torch.cuda.set_sync_debug_mode('error')``.
"""

from __future__ import annotations

import collections

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from x_transformers import Decoder, Encoder, TransformerWrapper
from x_transformers.wrappers import token as token_module

SYNC_OPS = frozenset(
    {"aten::item", "aten::_local_scalar_dense", "aten::is_nonzero", "aten::nonzero", "aten::equal"}
)
MODERN = {
    "rotary_pos_emb": True,
    "use_rmsnorm": True,
    "ff_swish": True,
    "ff_glu": True,
    "attn_qk_norm": True,
}
CONFIGS = {
    "gpt_features_off": (Decoder, {}, {}),
    "gpt_modern": (Decoder, MODERN, {"use_abs_pos_emb": False}),
    "bert_features_off": (Encoder, {}, {}),
}
# the token-id range check on CPU: int(low) and int(high), each an item -> _local_scalar_dense
DOCUMENTED_CPU_SYNCS = collections.Counter({"aten::item": 2, "aten::_local_scalar_dense": 2})


def build(name):
    stack, layer_kwargs, wrapper_kwargs = CONFIGS[name]
    torch.manual_seed(0)
    model = TransformerWrapper(
        num_tokens=64,
        max_seq_len=32,
        attn_layers=stack(dim=32, depth=2, heads=4, **layer_kwargs),
        **wrapper_kwargs,
    )
    return model.train()


def inputs(padded: bool):
    x = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    if not padded:
        return x, {}
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[1, -5:] = False
    return x, {"mask": mask}


def sync_census(fn) -> collections.Counter:
    """{op name: count} of host-reading operators run by ``fn()``, leaving out those inside
    ``aten::_assert_async`` (a device kernel on accelerators, a host check only on CPU)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    counts = collections.Counter()
    for event in prof.events():
        if event.name not in SYNC_OPS:
            continue
        parent = event.cpu_parent
        while parent is not None and parent.name != "aten::_assert_async":
            parent = parent.cpu_parent
        if parent is None:
            counts[event.name] += 1
    return counts


def test_census_sees_a_host_read():
    """The census is not blind: ``int(t)`` and ``if t:`` are counted."""
    t = torch.ones(3)

    def reads():
        if (t > 0).all():
            int(t.sum())

    counts = sync_census(reads)
    assert counts["aten::item"] >= 1 and counts["aten::is_nonzero"] == 1, counts


@pytest.mark.parametrize("padded", [False, True], ids=["no_mask", "padding_mask"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_training_forward_reads_only_the_documented_token_check(name, padded):
    model = build(name)
    x, kwargs = inputs(padded)
    model(x, **kwargs)  # first call: lazy initialisation stays out of the census
    counts = sync_census(lambda: model(x, **kwargs))
    assert counts == DOCUMENTED_CPU_SYNCS, dict(counts)


@pytest.mark.parametrize("padded", [False, True], ids=["no_mask", "padding_mask"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_accelerator_branch_reads_nothing_on_the_host(name, padded, monkeypatch):
    monkeypatch.setattr(token_module, "HOST_CHECKED_DEVICES", ())
    model = build(name)
    x, kwargs = inputs(padded)
    model(x, **kwargs)
    assert sync_census(lambda: model(x, **kwargs)) == collections.Counter()
    # and that branch still catches a bad id (on CPU the assertion fails right away)
    with pytest.raises(RuntimeError, match="token ids must lie in"):
        model(x + 64, **kwargs)


def test_backward_reads_nothing_on_the_host(monkeypatch):
    """The backward of the modern configuration (and the loss) reads nothing either."""
    monkeypatch.setattr(token_module, "HOST_CHECKED_DEVICES", ())
    model = build("gpt_modern")
    x, kwargs = inputs(True)

    def step():
        logits = model(x, **kwargs)
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x)
        loss.backward()

    step()
    assert sync_census(step) == collections.Counter()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(CONFIGS))
def test_cuda_forward_has_no_sync(name):
    model = build(name).cuda()
    x, kwargs = inputs(True)
    x, kwargs = x.cuda(), {k: v.cuda() for k, v in kwargs.items()}
    model(x, **kwargs)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        logits = model(x, **kwargs)
        torch.nn.functional.cross_entropy(logits.transpose(1, 2), x).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
