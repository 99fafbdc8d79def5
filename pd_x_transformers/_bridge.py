"""The one bridge between the frameworks (see docs/paddle.md).

``pd_x_transformers`` has no model code of its own: it executes the very files of the
``x_transformers`` package a second time, as the modules ``pd_x_transformers._src.*``, with two
differences confined to those modules:

- their ``import torch`` / ``from torch import nn`` / ``import torch.nn.functional as F``
  statements (at import time and inside functions alike) resolve to PaddlePaddle's
  torch-compatible namespace (``paddle.compat``'s proxy modules), so ``nn.Module`` is
  ``paddle.nn.Layer`` and the tensors are paddle tensors;
- their absolute ``x_transformers`` imports resolve to ``pd_x_transformers._src``.

Both are done with a per-module ``__builtins__`` whose ``__import__`` does the mapping; nothing
else in the process changes: ``sys.modules["torch"]`` stays the real torch (if installed),
``paddle.Tensor`` is not patched, Paddle's global torch proxy (``paddle.enable_compat``) is not
switched on.  The places where the two frameworks must be spelled differently live in
``x_transformers/backend.py``.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

import paddle
from paddle.compat import proxy as _proxy

SOURCE_PACKAGE = "x_transformers"
PREFIX = "pd_x_transformers._src"
SOURCE_DIR = Path(__file__).resolve().parent.parent / SOURCE_PACKAGE

# torch-only parts of the shared source: importing them under Paddle says so.
TORCH_ONLY = {
    f"{PREFIX}.cli": "the command line (xtransformers) is torch-only",
    f"{PREFIX}.hub.export": "graph export (torch.export / ONNX) is torch-only",
    f"{PREFIX}.hub.runs": "command-line run folders are torch-only",
    **{
        f"{PREFIX}.hub.{family}": "the Hugging Face converters are torch-only"
        for family in ("bert", "families", "gpt2", "llama", "t5", "vit")
    },
}

# ---------------------------------------------------------------------- the torch namespace

_TORCH_MODULES: dict[str, types.ModuleType] = {}


def _compiler_module() -> types.ModuleType:
    module = types.ModuleType("torch.compiler")
    module.__doc__ = "torch.compiler under Paddle: nothing is ever compiled (torch-only)."
    module.is_compiling = lambda: False
    return module


def _inference_mode(mode: bool = True):
    """Paddle has no inference mode: ``inference_mode(False)`` (leave it) changes nothing,
    ``inference_mode()`` is ``no_grad``."""
    return paddle.no_grad() if mode else contextlib.nullcontext()


# torch names that Paddle's compat namespace lacks, with the same meaning under Paddle
EXTRA_MODULES = {"torch.compiler": _compiler_module}
EXTRA_ATTRIBUTES = {"torch": {"inference_mode": _inference_mode}}


def torch_module(fullname: str) -> types.ModuleType:
    """Paddle's torch-compatible module for ``fullname`` ('torch', 'torch.nn', ...), built from
    ``paddle.compat``'s proxy without registering it in ``sys.modules``; each submodule is also
    set as an attribute of its parent, as the import system would."""
    if fullname in _TORCH_MODULES:
        return _TORCH_MODULES[fullname]
    parent_name, _, child = fullname.rpartition(".")
    parent = torch_module(parent_name) if parent_name else None
    if fullname in EXTRA_MODULES:
        module = EXTRA_MODULES[fullname]()
        _TORCH_MODULES[fullname] = module
        parent.__dict__[child] = module
        return module
    # paddle.compat's own proxy machinery (private in 3.3: hence the extra's pin to 3.3.x),
    # used to build the module object only; its meta-path finder is never installed
    _proxy._register_compat_override()
    try:
        spec = _proxy.TORCH_PROXY_FINDER._find_spec_for_torch_module(fullname)
    except ImportError as error:
        raise ImportError(
            f"{fullname} has no PaddlePaddle counterpart (pd_x_transformers, paddle "
            f"{paddle.__version__}): this part of x_transformers is torch-only"
        ) from error
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _TORCH_MODULES[fullname] = module
    if parent is not None:
        parent.__dict__[child] = module
    for extra in EXTRA_MODULES:
        if extra.rpartition(".")[0] == fullname:
            torch_module(extra)
    module.__dict__.update(EXTRA_ATTRIBUTES.get(fullname, {}))
    return module


def _scoped_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0:
        if name == "torch" or name.startswith("torch."):
            module = torch_module(name)
            return module if fromlist else torch_module("torch")
        if name == SOURCE_PACKAGE or name.startswith(SOURCE_PACKAGE + "."):
            mapped = PREFIX + name[len(SOURCE_PACKAGE) :]
            module = importlib.import_module(mapped)
            return module if fromlist else importlib.import_module(PREFIX)
    return builtins.__import__(name, globals, locals, fromlist, level)


SCOPED_BUILTINS = dict(builtins.__dict__, __import__=_scoped_import)

# ---------------------------------------------------------------------- the second loading


class _SourceLoader(importlib.machinery.SourceFileLoader):
    def exec_module(self, module):
        module.__dict__["__builtins__"] = SCOPED_BUILTINS
        super().exec_module(module)


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds ``pd_x_transformers._src[.*]`` in the directory of ``x_transformers``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != PREFIX and not fullname.startswith(PREFIX + "."):
            return None
        for torch_only, reason in TORCH_ONLY.items():
            if fullname == torch_only or fullname.startswith(torch_only + "."):
                raise ImportError(f"{fullname}: {reason}; use x_transformers with torch")
        relative = fullname[len(PREFIX) :].lstrip(".").split(".") if fullname != PREFIX else []
        base = SOURCE_DIR.joinpath(*relative)
        if base.is_dir():
            origin = base / "__init__.py"
            search = [str(base)]
        else:
            origin = base.with_suffix(".py")
            search = None
        if not origin.is_file():
            return None
        loader = _SourceLoader(fullname, str(origin))
        return importlib.util.spec_from_file_location(
            fullname, str(origin), loader=loader, submodule_search_locations=search
        )


_FINDER = _SourceFinder()


def install() -> types.ModuleType:
    """Register the finder (once) and import ``pd_x_transformers._src``."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    return importlib.import_module(PREFIX)
