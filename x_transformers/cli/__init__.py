"""The training, evaluation and sampling command line (``xtransformers train|sample|eval``).

This package is never imported by :mod:`x_transformers` itself: the library needs only torch and
einops, while the command line also needs ``safetensors`` (``pip install 'x-transformers[cli]'``).
See ``docs/cli.md``.
"""
