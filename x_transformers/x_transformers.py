"""Old import path: ``from x_transformers.x_transformers import ...`` keeps working."""

from . import *  # noqa: F401,F403
from . import __all__  # noqa: F401
