"""Run Hugging Face's own common test mixins against our classes (not part of ``make test``).

The upstream test code is not in this repository: point these variables at checkouts and run
``make upstream-tests`` (see docs/reliability.md, "Upstream test suites"):

    PYRATOK_UPSTREAM_DIFFUSERS=/path/to/diffusers     (its ``tests/models/testing_utils`` mixins)
    PYRATOK_UPSTREAM_TRANSFORMERS=/path/to/transformers (its ``tests/test_modeling_common.py``)

Each harness skips itself when its variable is unset.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.dirname(HERE))  # our tests/ (conftest helpers: make_tiny_config)
