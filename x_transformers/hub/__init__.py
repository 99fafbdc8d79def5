"""Models that leave the process: ``save_pretrained`` / ``from_pretrained`` (``config.json`` +
``model.safetensors``), loading command-line runs, and graph export.

The names below are imported on first use (PEP 562): the layer stacks and wrappers import
``hub.mixin`` while they are being defined, so this package must not import model code eagerly.
Add new public names to ``_LAZY`` (name -> submodule).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ConfigError": ".config",
    "DecodeStep": ".export",
    "ExportError": ".export",
    "export_decode_step": ".export",
    "export_decode_step_onnx": ".export",
    "export_forward": ".export",
    "export_onnx": ".export",
    "PretrainedMixin": ".mixin",
    "WeightsError": ".serialization",
    "from_pretrained": ".serialization",
    "load_pretrained": ".serialization",
    "save_pretrained": ".serialization",
    # converters of the reference families (Hugging Face model objects)
    "UnsupportedConfigError": ".families",
    "from_hf_bert": ".bert",
    "from_hf_gpt2": ".gpt2",
    "from_hf_llama": ".llama",
    "from_hf_t5": ".t5",
    "from_hf_vit": ".vit",
    "to_hf_gpt2": ".gpt2",
    "to_hf_llama": ".llama",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'x_transformers.hub' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
