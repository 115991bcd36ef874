"""Start-up cost: ``import pyratok_hf`` and ``pyratok --help`` import no torch-heavy library, yet every public name
still resolves and ``AutoConfig``/``AutoModel`` still know PyraTok once the model code has been imported.

Each check runs in a fresh interpreter (``sys.modules`` of this pytest process is full of everything already).
The timing itself is ``benchmarks/bench_startup.py``; wall-clock asserts would be flaky on a shared machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

HEAVY = ["torch", "transformers", "diffusers", "gradio", "datasets", "matplotlib", "sklearn", "skimage", "evaluate", "peft", "accelerate"]


def run_python(code: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_pyratok_hf_imports_no_heavy_library():
    loaded = run_python(
        f"""
        import json, sys
        import pyratok_hf
        print(json.dumps({{"heavy": [m for m in {HEAVY!r} if m in sys.modules], "version": pyratok_hf.__version__,
                          "errors": pyratok_hf.PyraTokError.__name__}}))
        """
    )
    assert loaded["heavy"] == [], f"import pyratok_hf imported {loaded['heavy']}"
    assert loaded["version"] == "0.1.0" and loaded["errors"] == "PyraTokError"


@pytest.mark.parametrize("argv, allowed", [(["--help"], []), (["reconstruct", "--help"], []), (["space", "--help"], []), (["evaluate", "--help"], ["torch"])])
def test_help_imports_no_model_library(argv, allowed):
    loaded = run_python(
        f"""
        import contextlib, io, json, sys
        from pyratok_hf import cli
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                cli.main({argv!r})
            except SystemExit as stop:
                code = stop.code
        print(json.dumps({{"code": code, "usage": out.getvalue()[:200], "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
        """
    )
    assert loaded["code"] == 0 and loaded["usage"].startswith("usage: pyratok")
    assert [m for m in loaded["heavy"] if m not in allowed] == [], f"pyratok {' '.join(argv)} imported {loaded['heavy']}"


def test_lazy_names_resolve_and_auto_classes_are_registered_on_access():
    found = run_python(
        """
        import json, sys
        import pyratok_hf
        from transformers import AutoConfig, AutoModel
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING
        before = "pyratok" in CONFIG_MAPPING
        from pyratok_hf import PyraTokModel, PyraTokConfig, AutoencoderPyraTok, PRESETS
        model = AutoModel.from_pretrained(pyratok_hf.bundled_model_path())
        print(json.dumps({
            "before": before, "model": type(model).__name__, "same_class": type(model) is PyraTokModel,
            "config": type(AutoConfig.from_pretrained(pyratok_hf.bundled_model_path())).__name__,
            "prior": "pyratok_prior" in CONFIG_MAPPING, "presets": "pyratok-tiny" in PRESETS,
            "vae": AutoencoderPyraTok.__name__, "dir": all(n in dir(pyratok_hf) for n in pyratok_hf.__all__),
        }))
        """
    )
    assert found["before"] is False  # nothing is imported (or registered) by ``import pyratok_hf`` alone
    assert found["model"] == "PyraTokModel" and found["same_class"] and found["config"] == "PyraTokConfig"
    assert found["prior"] and found["presets"] and found["vae"] == "AutoencoderPyraTok" and found["dir"]


def test_importing_the_modeling_module_directly_registers_too():
    found = run_python(
        """
        import json
        import pyratok_hf.modeling_pyratok
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import MODEL_MAPPING
        config = AutoConfig.for_model("pyratok")
        import pyratok_hf.prior  # the prior registers "pyratok_prior" when its own package is imported
        print(json.dumps({"config": type(config).__name__, "model": MODEL_MAPPING[type(config)].__name__,
                          "prior": type(AutoConfig.for_model("pyratok_prior")).__name__}))
        """
    )
    assert found == {"config": "PyraTokConfig", "model": "PyraTokModel", "prior": "PyraTokPriorConfig"}


def test_unknown_attribute_is_an_attribute_error():
    import pyratok_hf

    with pytest.raises(AttributeError, match="no attribute 'NotAThing'"):
        pyratok_hf.NotAThing  # noqa: B018
