"""``PretrainedMixin``: ``save_pretrained`` and ``from_pretrained`` on every public model.

The model classes inherit it (one base class each); it records their constructor keywords (see
:class:`.config.Configurable`) and hands saving and loading to :mod:`.serialization`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import Configurable


class PretrainedMixin(Configurable):
    """Adds ``model.save_pretrained(folder)`` and ``Class.from_pretrained(folder)``."""

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``config.json`` (the constructor call) and ``model.safetensors`` (the weights,
        tied ones stored once) into the folder ``path``."""
        from .serialization import save_pretrained

        return save_pretrained(self, path)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device=None, dtype=None):
        """The model saved in ``path`` (a ``save_pretrained`` folder, or a command-line run or
        checkpoint folder), built on the meta device and loaded straight onto ``device``
        (default CPU), floating weights cast to ``dtype`` (default: as stored); in eval mode.
        Anything that does not fit raises an error naming the file and the key or tensor."""
        from .serialization import from_pretrained

        return from_pretrained(cls, path, device=device, dtype=dtype)
