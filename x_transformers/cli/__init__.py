"""The training, evaluation and sampling command line (``xtransformers train|sample|eval``).

This package is never imported by :mod:`x_transformers` itself: the library needs torch, einops
and safetensors, while the command line also needs numpy and, for plots, matplotlib
(``pip install 'x-transformers[cli]'``).
See ``docs/cli.md``.
"""
