"""The portable subset of the shared model source, enforced (docs/paddle.md, "The portable
subset"; issue 16).

``pd_x_transformers`` runs the files of ``x_transformers`` under PaddlePaddle's torch-compatible
namespace, so the model code keeps to spellings that mean the same in both frameworks. Each rule
below is a trap that was measured (a wrong number without an error, or an error only Paddle
raises) with its portable spelling. The parity suite (tests/paddle/test_parity.py) catches what
slips through when Paddle is installed; this test needs no Paddle, so it runs in the torch suite
and a torch-only contributor sees the rule at once.

The framework-specific spellings live in ``x_transformers/backend.py`` (exempt); the command
line and the Hugging Face converters / graph export are torch-only and not loaded under Paddle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "x_transformers"
TORCH_ONLY = {
    "backend.py",  # the one place where the frameworks are spelled differently
    "cli",
    "hub/bert.py",
    "hub/families.py",
    "hub/gpt2.py",
    "hub/llama.py",
    "hub/t5.py",
    "hub/vit.py",
    "hub/export.py",
    "hub/runs.py",
}


def shared_files() -> list[Path]:
    files = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).as_posix()
        if any(relative == skip or relative.startswith(skip + "/") for skip in TORCH_ONLY):
            continue
        files.append(path)
    return files


def _keywords(call: ast.Call) -> dict[str, ast.expr]:
    return {k.arg: k.value for k in call.keywords if k.arg}


def _is_bool(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, bool)


def _method(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else ""


def _name(call: ast.Call) -> str:
    return ast.unparse(call.func)


# (rule id, check(call) -> bool, the portable spelling)
CALL_RULES = [
    (
        "sort",
        lambda c: _method(c) == "sort" and _name(c) != "sorted",
        "torch.sort / Tensor.sort return values only under Paddle and reject dim=: use "
        "backend.sort_descending (or argsort + gather)",
    ),
    (
        "max-min-dim",
        lambda c: _method(c) in ("max", "min") and ("dim" in _keywords(c) or len(c.args) >= 1),
        "max(dim=) / min(dim=) have no Paddle counterpart: amax / amin for values, argmax / "
        "argmin for indices",
    ),
    (
        "split-dim",
        lambda c: _method(c) == "split" and "dim" in _keywords(c),
        "split(..., dim=) is rejected by Paddle: pass the dimension positionally",
    ),
    (
        "split-int",
        lambda c: (
            _method(c) == "split"
            and c.args
            and isinstance(c.args[0], ast.Constant)
            and isinstance(c.args[0].value, int)
        ),
        "split(int) is a chunk size in torch but a number of sections in Paddle (silently "
        "different): pass the list of sizes",
    ),
    (
        "bool-pad",
        lambda c: _name(c).endswith("pad") and _is_bool(_keywords(c).get("value")),
        "Paddle has no bool kernel for pad: torch.full + torch.cat (attention.masks.prepend_keys)",
    ),
    (
        "bool-scatter",
        lambda c: (
            _method(c) in ("scatter", "scatter_") and len(c.args) >= 3 and _is_bool(c.args[2])
        ),
        "Paddle has no bool scatter kernel: scatter numbers and compare (> 0)",
    ),
    (
        "index-copy",
        lambda c: _method(c) == "index_copy_",
        "Paddle has no index_copy_: backend.index_copy_",
    ),
    (
        "movedim",
        lambda c: _method(c) in ("movedim", "moveaxis", "aminmax"),
        "no movedim / aminmax under Paddle: einops.rearrange, min() / max()",
    ),
    (
        "promote-types",
        lambda c: _name(c) == "torch.promote_types",
        "Paddle has no promote_types: spell the result dtype out",
    ),
    (
        "rms-norm",
        lambda c: _name(c) in ("F.rms_norm", "torch.rms_norm", "torch.nn.functional.rms_norm"),
        "Paddle 3.3 has no CPU rms_norm kernel: backend.rms_norm",
    ),
    (
        "device-call",
        lambda c: _name(c) == "torch.device",
        "torch.device is a module under Paddle: backend.as_device / backend.empty_weights",
    ),
    (
        "generator-keyword",
        lambda c: (
            _name(c) in ("torch.rand", "torch.randn", "torch.randint", "torch.multinomial")
            and "generator" in _keywords(c)
        ),
        "Paddle's samplers take no generator=: pass it only when given "
        "(**backend.seeded(generator))",
    ),
    (
        "cross-entropy-layout",
        lambda c: (
            _name(c).endswith("cross_entropy") and c.args and "transpose" in ast.unparse(c.args[0])
        ),
        "torch's cross_entropy takes classes on dim 1, Paddle's on the last axis: flatten to "
        "(N, C) logits and (N,) targets",
    ),
    (
        "ignore-index-mean",
        lambda c: (
            _name(c).endswith("cross_entropy")
            and "ignore_index" in _keywords(c)
            and ast.unparse(_keywords(c).get("reduction", ast.Constant("mean"))) != "'sum'"
        ),
        "with ignore_index, Paddle's mean divides by all targets: reduction='sum' and divide by "
        "the count of counted targets",
    ),
    (
        "next-parameters",
        lambda c: _name(c) == "next" and c.args and ast.unparse(c.args[0]).endswith("parameters()"),
        "Paddle's parameters() is a list: next(iter(module.parameters()))",
    ),
    (
        "state-dict-hook",
        lambda c: _method(c) == "_register_load_state_dict_pre_hook",
        "Paddle layers have no load-state-dict pre-hooks: "
        "backend.register_load_state_dict_pre_hook",
    ),
]

# (rule id, check(node) -> bool, the portable spelling) on attributes, subscripts and imports
NODE_RULES = [
    (
        "saved-tensors",
        lambda n: isinstance(n, ast.Attribute) and ast.unparse(n) == "ctx.saved_tensors",
        "Paddle's PyLayer has ctx.saved_tensor(): backend.saved_tensors(ctx)",
    ),
    (
        "torch-internals",
        lambda n: (
            (
                isinstance(n, ast.Attribute)
                and re.match(r"torch\.(torch_version|amp\.is_autocast_available)$", ast.unparse(n))
            )
            or (isinstance(n, ast.ImportFrom) and (n.module or "").startswith("torch.utils"))
        ),
        "no Paddle counterpart: backend.SDPA_SUPPORTS_GQA / backend.autocast_disabled / "
        "backend.checkpoint",
    ),
    (
        "import-paddle",
        lambda n: (
            (isinstance(n, ast.Import) and any(a.name.startswith("paddle") for a in n.names))
            or (isinstance(n, ast.ImportFrom) and (n.module or "").startswith("paddle"))
        ),
        "the shared source never imports paddle (only x_transformers/backend.py does)",
    ),
    (
        "package-name",
        lambda n: (
            isinstance(n, ast.Subscript)
            and ast.unparse(n).startswith("sys.modules['x_transformers")
        ),
        "under Paddle the package is pd_x_transformers._src: relative imports / __file__",
    ),
]


def violations(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    found = []
    for node in ast.walk(ast.parse(text)):
        rules = CALL_RULES if isinstance(node, ast.Call) else NODE_RULES
        for rule, check, advice in rules:
            if check(node):
                found.append(f"{path.name}:{node.lineno} [{rule}] {advice}")
    return found


@pytest.mark.parametrize("path", shared_files(), ids=lambda p: p.relative_to(SOURCE).as_posix())
def test_shared_source_is_portable(path):
    found = violations(path)
    assert not found, "not portable to PaddlePaddle (docs/paddle.md):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "code, rule",
    [
        ("x.sort(dim=-1, descending=True)", "sort"),
        ("x.max(dim=-1)", "max-min-dim"),
        ("x.split((2, 3), dim=-1)", "split-dim"),
        ("x.split(1, -1)", "split-int"),
        ("F.pad(mask, (1, 0), value=True)", "bool-pad"),
        ("keep.scatter(1, idx, False)", "bool-scatter"),
        ("t.index_copy_(1, i, s)", "index-copy"),
        ("t.movedim(-1, -3)", "movedim"),
        ("torch.promote_types(a, b)", "promote-types"),
        ("F.rms_norm(x, (4,))", "rms-norm"),
        ("torch.device('cpu')", "device-call"),
        ("torch.rand(3, generator=g)", "generator-keyword"),
        ("F.cross_entropy(logits.transpose(1, 2), t, reduction='sum')", "cross-entropy-layout"),
        ("F.cross_entropy(logits, t, ignore_index=-1)", "ignore-index-mean"),
        ("next(model.parameters())", "next-parameters"),
        ("(p,) = ctx.saved_tensors", "saved-tensors"),
        ("import paddle", "import-paddle"),
        ("from torch.utils.checkpoint import checkpoint", "torch-internals"),
        ("ok = torch.torch_version.TorchVersion(v)", "torch-internals"),
        ("m = sys.modules['x_transformers']", "package-name"),
    ],
)
def test_each_rule_can_fail(tmp_path, code, rule):
    path = tmp_path / "example.py"
    path.write_text(code + "\n")
    assert any(f"[{rule}]" in v for v in violations(path)), violations(path)


def test_portable_spellings_pass(tmp_path):
    path = tmp_path / "example.py"
    path.write_text(
        "x.split((2, 3), -1)\nx.amax(dim=-1)\nx.argmax(dim=-1)\nsorted(xs)\n"
        "F.cross_entropy(logits.flatten(0, 1), t.flatten(), ignore_index=-1, reduction='sum')\n"
        "next(iter(model.parameters()))\ntext.split('/', 1)[0]\n"
    )
    assert violations(path) == []
