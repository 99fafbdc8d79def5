"""pd_x_transformers: x_transformers on PaddlePaddle (see docs/paddle.md)."""

from __future__ import annotations

try:
    import paddle  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised without paddle installed
    raise ImportError(
        "pd_x_transformers needs PaddlePaddle: install the extra with "
        "`pip install 'x-transformers[paddle]'` (from a checkout: `pip install -e '.[paddle]'`)"
    ) from error

from ._bridge import install as _install

_src = _install()

from ._src import *  # noqa: E402,F403
from ._src import __all__, __version__  # noqa: E402,F401
