"""The README's acceptance command succeeds on a fresh clone, where ``../shared/seeds`` is absent
(a unit test: it runs that command in a child process with the seeds pointed elsewhere)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_acceptance_command() -> list[str]:
    """The last pytest call of the README's test command, run with this interpreter."""
    readme = (ROOT / "README.md").read_text("utf-8")
    [command] = [
        line
        for line in readme.splitlines()
        if line.startswith("pip install") and "-m acceptance" in line
    ]
    last = command.split("&&")[-1].strip()
    words = shlex.split(last)
    assert words[:3] == ["python", "-m", "pytest"], last
    return [sys.executable, *words[1:]]


def test_the_acceptance_command_passes_without_seeds(tmp_path):
    env = {
        **os.environ,
        "XT_SEEDS_DIR": str(tmp_path / "no-seeds-here"),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        readme_acceptance_command(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, summary  # 5 would be pytest's "no tests ran"
    assert "passed" in summary and "failed" not in summary, summary
