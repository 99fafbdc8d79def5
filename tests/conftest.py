"""Suite-wide settings.

The unit and property tests use tiny models, where intra-op threading costs far more than it
saves (and oversubscribes a busy 2-core CI machine), so they run single-threaded. The
full-size acceptance examples keep every core.
"""

from __future__ import annotations

import os

import pytest
import torch

ALL_THREADS = torch.get_num_threads()


@pytest.fixture(autouse=True)
def _threads_for_test_size(request):
    full_size = request.node.get_closest_marker("acceptance") is not None
    torch.set_num_threads(ALL_THREADS if full_size else int(os.environ.get("XT_TEST_THREADS", 1)))
    yield
