"""The README feature table, rendered from the option declarations so that it cannot drift.

``python -m x_transformers.options.table README.md`` rewrites the table between the markers.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .attention import AttentionOptions
from .blocks import BlockOptions
from .feedforward import FeedForwardOptions
from .positions import PositionOptions
from .routing import LEGACY_ALIASES
from .spec import describe
from .vit import ViTOptions
from .wrapper import WrapperOptions

START, END = "<!-- feature-table:start -->", "<!-- feature-table:end -->"

GROUPS = (
    # (options class, keyword prefix, where the keyword goes)
    (WrapperOptions, "", "wrapper"),
    (AttentionOptions, "attn_", "layers (cross-attention only: `cross_attn_`)"),
    (FeedForwardOptions, "ff_", "layers"),
    (BlockOptions, "", "layers"),
    (PositionOptions, "", "layers"),
    (ViTOptions, "", "ViTransformerWrapper"),
)


def feature_rows() -> list[tuple[str, str, str, str]]:
    """(keyword, where, what, paper) for every user-facing keyword."""
    old_spellings: dict[str, list[str]] = {}
    for old, (new, _) in LEGACY_ALIASES.items():
        old_spellings.setdefault(new, []).append(old)
    rows = []
    for cls, prefix, where in GROUPS:
        for row in describe(cls):
            keyword = prefix + row["name"]
            also = "".join(f" (also `{old}`)" for old in old_spellings.get(keyword, []))
            rows.append((f"`{keyword}`{also}", where, row["doc"], row["paper"] or ""))
    return rows


def render_feature_table() -> str:
    lines = ["| keyword | where | what | paper |", "|---|---|---|---|"]
    for keyword, where, what, paper in feature_rows():
        link = f"[{paper}](https://arxiv.org/abs/{paper})" if paper else ""
        lines.append(f"| {keyword} | {where} | {what} | {link} |")
    return "\n".join(lines)


def replace_table(text: str) -> str:
    if START not in text or END not in text:
        raise ValueError(f"the README has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{render_feature_table()}\n{END}{tail}"


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    path.write_text(replace_table(path.read_text()))
