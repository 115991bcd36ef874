"""transformers' ModelTesterMixin and ConfigTester on PyraTokModel.

transformers' test files are not importable as shipped (the PyPI sdist carries ``tests/test_modeling_common.py``
and ``tests/test_configuration_common.py`` but not the three helper modules they import), so this harness builds
a throwaway package at run time: the two upstream files, untouched, next to three stand-ins written here --
``ExportTesterMixin`` and ``GenerationTesterMixin`` as empty mixins (a tokenizer is neither exported with
torch.export nor a generator) and a short ``config_common_kwargs``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
import unittest

import pytest

UPSTREAM = os.environ.get("PYRATOK_UPSTREAM_TRANSFORMERS")
if not UPSTREAM:
    pytest.skip("set PYRATOK_UPSTREAM_TRANSFORMERS to a transformers checkout or unpacked sdist", allow_module_level=True)

_SHIM = tempfile.mkdtemp(prefix="tf_upstream_")
_PKG = os.path.join(_SHIM, "tf_upstream_tests")
for sub in ("", "exporters", "generation", "utils"):
    os.makedirs(os.path.join(_PKG, sub), exist_ok=True)
    open(os.path.join(_PKG, sub, "__init__.py"), "w").close()
for name in ("test_modeling_common.py", "test_configuration_common.py"):
    shutil.copy(os.path.join(UPSTREAM, "tests", name), os.path.join(_PKG, name))
with open(os.path.join(_PKG, "exporters", "test_export.py"), "w") as f:
    f.write("class ExportTesterMixin:\n    pass\n")
with open(os.path.join(_PKG, "generation", "test_utils.py"), "w") as f:
    f.write("class GenerationTesterMixin:\n    pass\n")
with open(os.path.join(_PKG, "utils", "test_configuration_utils.py"), "w") as f:
    f.write("config_common_kwargs = {'return_dict': False, 'output_hidden_states': True, 'output_attentions': True, "
            "'dtype': 'float16', 'chunk_size_feed_forward': 5, 'id2label': {0: 'label'}, 'label2id': {'label': '0'}}\n")
sys.path.insert(0, _SHIM)

import torch  # noqa: E402

common = importlib.import_module("tf_upstream_tests.test_modeling_common")
config_common = importlib.import_module("tf_upstream_tests.test_configuration_common")

from conftest_helpers import tiny_config  # noqa: E402
from pyratok_hf import PyraTokConfig, PyraTokModel  # noqa: E402


class PyraTokModelTester:
    def __init__(self, parent, batch_size: int = 2):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = 5  # frames
        self.num_hidden_layers = 2
        self.hidden_size = 32
        self.is_training = True

    def get_config(self) -> PyraTokConfig:
        # 3 levels: get_video_features' hidden states (one per level) are num_hidden_layers + 1, as the mixin counts
        return tiny_config(num_levels=3)

    def prepare_config_and_inputs(self):
        generator = torch.Generator().manual_seed(0)
        pixel_values = torch.rand(self.batch_size, 3, 5, 32, 32, generator=generator) * 2 - 1
        return self.get_config(), pixel_values

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values = self.prepare_config_and_inputs()
        return config, {"pixel_values": pixel_values}


class PyraTokModelTest(common.ModelTesterMixin, unittest.TestCase):
    all_model_classes = (PyraTokModel,)
    has_attentions = False  # a tokenizer: no attention maps or hidden states (deliberate, docs/reliability.md)
    test_resize_embeddings = False
    test_torch_exportable = False
    test_all_params_have_gradient = False  # unused alignment heads get no gradient from a reconstruction step

    def setUp(self):
        self.model_tester = PyraTokModelTester(self)
        self.config_tester = config_common.ConfigTester(
            self, config_class=PyraTokConfig, has_text_modality=False, common_properties=["num_attention_heads", "num_levels", "codebook_bits"]
        )

    def test_config(self):
        self.config_tester.run_common_tests()
