"""The bridge is scoped to pd_x_transformers: nothing else in the process changes (issue 16)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("paddle")

pytestmark = pytest.mark.paddle

ROOT = Path(__file__).resolve().parents[2]


def test_importing_changes_nothing_outside_the_package():
    code = (
        "import sys, paddle\n"
        "before = (set(dir(paddle.Tensor)), list(sys.meta_path)[1:])\n"
        "import torch\n"
        "real_torch = torch\n"
        "import pd_x_transformers as pdx\n"
        "import torch\n"
        "assert torch is real_torch and sys.modules['torch'] is real_torch\n"
        "assert set(dir(paddle.Tensor)) == before[0], 'paddle.Tensor was patched'\n"
        "from paddle.compat import proxy\n"
        "assert proxy.TORCH_PROXY_FINDER not in sys.meta_path, 'global torch proxy on'\n"
        "m = pdx.TransformerWrapper(num_tokens=8, max_seq_len=4,\n"
        "    attn_layers=pdx.Decoder(dim=8, depth=1, heads=2))\n"
        "assert isinstance(m, paddle.nn.Layer) and not isinstance(m, torch.nn.Module)\n"
        "out = m(paddle.randint(0, 8, (1, 4)))\n"
        "assert isinstance(out, paddle.Tensor)\n"
        "import x_transformers as xt\n"
        "assert issubclass(xt.TransformerWrapper, torch.nn.Module)\n"
        "assert xt.TransformerWrapper is not pdx.TransformerWrapper\n"
        "assert 'pd_x_transformers._src.cli' not in sys.modules\n"
        "try:\n"
        "    import pd_x_transformers._src.cli\n"
        "except ImportError as error:\n"
        "    assert 'torch-only' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('the command line imported under Paddle')\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
