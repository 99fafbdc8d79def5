"""Every refused combination listed in docs/combinations.md raises a ``ValueError`` naming its
keywords, and the residual combinations the page calls valid build."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from x_transformers import CrossAttender, Decoder, Encoder, TransformerWrapper

PAGE = Path(__file__).resolve().parents[1] / "docs" / "combinations.md"


def refused_rows() -> list[tuple[str, str]]:
    text = PAGE.read_text(encoding="utf-8")
    table = text.split("<!-- refused:start -->")[1].split("<!-- refused:end -->")[0]
    rows = re.findall(r"^\| `([^`]+)` \| `(\w+)` \|", table, flags=re.MULTILINE)
    assert len(rows) >= 20, "the refused table lost its rows"
    return rows


def keywords(spelled: str) -> dict:
    call = ast.parse(f"f({spelled})", mode="eval").body
    return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}


def build(where: str, kwargs: dict):
    if where == "TransformerWrapper":
        stack = Encoder(dim=32, depth=1, heads=2)
        return TransformerWrapper(num_tokens=16, max_seq_len=8, attn_layers=stack, **kwargs)
    stack_cls = {"Encoder": Encoder, "Decoder": Decoder, "CrossAttender": CrossAttender}[where]
    return stack_cls(dim=32, depth=2, heads=2, **kwargs)


@pytest.mark.parametrize("spelled, where", refused_rows())
def test_refused_combination_raises_naming_its_keywords(spelled, where):
    kwargs = keywords(spelled)
    with pytest.raises(ValueError) as error:
        build(where, kwargs)
    message = str(error.value)
    named = [name for name in kwargs if name in message]
    assert len(named) >= min(2, len(kwargs)), f"{message!r} names only {named}"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scale_residual": True, "gate_residual": True},
        {"deepnorm": True, "scale_residual": True},
        {"scale_residual": True, "gate_residual": True, "pre_norm": False},
    ],
)
def test_residual_combinations_the_page_calls_valid_build(kwargs):
    build("Decoder", kwargs)
