"""``python -m x_transformers.cli`` is the same as the ``xtransformers`` console command."""

from .main import main

raise SystemExit(main())
