"""Without PaddlePaddle, ``import pd_x_transformers`` says which extra to install (issue 16).
Runs in every environment: the child process hides paddle whether it is installed or not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_without_paddle_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['paddle'] = None  # as if not installed\n"
        "try:\n"
        "    import pd_x_transformers\n"
        "except ImportError as error:\n"
        "    print('ImportError:', error)\n"
        "else:\n"
        "    print('imported')\n"
        "import x_transformers  # the torch edition is unaffected\n"
        "print('torch edition ok', 'torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "ImportError:" in result.stdout, result.stdout
    assert "pip install 'x-transformers[paddle]'" in result.stdout
    assert "torch edition ok True" in result.stdout
