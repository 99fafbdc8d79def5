"""Declaring options: one typed, documented field per keyword.

Every option group is a frozen dataclass whose fields are built with :func:`option`. The field's
metadata records what the keyword does and the paper it comes from; the README feature table is
rendered from it (:mod:`.table`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, field
from typing import Any


def option(default: Any, doc: str, paper: str | None = None) -> Any:
    """A dataclass field for one user-facing keyword: its default, what it does, its paper."""
    metadata = {"doc": doc, "paper": paper}
    if isinstance(default, (list, dict, set)):
        raise TypeError("option defaults must be immutable")
    return field(default=default, metadata=metadata)


def option_names(options_cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(options_cls))


def default_of(options_cls: type, name: str) -> Any:
    for f in dataclasses.fields(options_cls):
        if f.name == name:
            return f.default if f.default is not MISSING else None
    raise KeyError(name)


def describe(options_cls: type) -> list[dict[str, Any]]:
    """Rows of (name, default, doc, paper): the README feature table is rendered from them."""
    return [
        {
            "name": f.name,
            "default": f.default,
            "doc": f.metadata.get("doc", ""),
            "paper": f.metadata.get("paper"),
        }
        for f in dataclasses.fields(options_cls)
    ]
