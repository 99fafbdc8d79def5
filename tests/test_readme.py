"""The README stays true: its feature table matches the option declarations, and its two
top-level commands are the ones CI runs."""

from __future__ import annotations

from pathlib import Path

from x_transformers.options.table import END, START, render_feature_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_feature_table_is_current():
    table = README.split(START, 1)[1].split(END, 1)[0].strip()
    assert table == render_feature_table(), (
        "README feature table is stale: run `python -m x_transformers.options.table README.md`"
    )


def test_ci_runs_the_readme_test_command():
    commands = [
        line for line in README.splitlines() if line.startswith("pip install torch==2.13.0")
    ]
    assert len(commands) == 2, "the README starts with exactly two runnable commands"
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
