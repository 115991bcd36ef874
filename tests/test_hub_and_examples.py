"""Hub publishing (offline: the upload folder loads back through every entry point) and the examples run as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyratok_hf import AutoencoderPyraTok, PyraTokConfig, PyraTokModel, bundled_model_path, bundled_pipeline_path
from pyratok_hf.configuration_pyratok import TINY_VAE_CONFIG
from pyratok_hf.hub import prepare_hub_folder

ROOT = Path(__file__).resolve().parents[1]
HAS_BUNDLE = os.path.isfile(os.path.join(bundled_model_path(), "config.json"))
HAS_PIPELINE = os.path.isfile(os.path.join(bundled_pipeline_path(), "model_index.json"))


def _env():
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    return env


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    torch.manual_seed(0)
    config = PyraTokConfig.from_preset("pyratok-tiny", backbone_config={**TINY_VAE_CONFIG, "base_dim": 8}, level_hidden_dim=16, codebook_bits=8)
    model = PyraTokModel(config).eval()
    folder = tmp_path_factory.mktemp("hub") / "pyratok-test"
    prepare_hub_folder(model, str(folder), repo_id="org/pyratok-test", metrics={"psnr": 20.0})
    return model, folder


def test_hub_folder_contents(hub_folder):
    _, folder = hub_folder
    names = set(os.listdir(folder))
    assert {"config.json", "model.safetensors", "README.md", "modeling_pyratok.py", "configuration_pyratok.py", "lapq.py", "inference.py"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pth")) for n in names)
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0") and "trust_remote_code=True" in card and "| psnr |" in card
    config = (folder / "config.json").read_text()
    assert '"AutoModel": "modeling_pyratok.PyraTokModel"' in config


def test_hub_folder_loads_through_every_entry_point(hub_folder):
    from transformers import AutoModel

    model, folder = hub_folder
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        reference = model.encode(video).token_ids
        for loader in (PyraTokModel.from_pretrained, AutoModel.from_pretrained, AutoencoderPyraTok.from_pretrained):
            loaded = loader(str(folder)).eval()
            for a, b in zip(reference, loaded.encode(video).token_ids):
                assert torch.equal(a, b), loader


def test_hub_folder_loads_with_remote_code_without_the_package(hub_folder, tmp_path):
    """A user without pyratok-hf: AutoModel + trust_remote_code runs the code shipped in the folder."""
    _, folder = hub_folder
    script = (
        "import sys, torch\n"
        "from transformers import AutoModel\n"
        f"m = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()\n"
        "assert 'pyratok_hf' not in sys.modules, 'the package must not be imported'\n"
        "enc = m.encode(torch.rand(1, 3, 5, 32, 32) * 2 - 1)\n"
        "print(type(m).__module__, [tuple(i.shape) for i in enc.token_ids])\n"
    )
    env = _env()
    env["HF_MODULES_CACHE"] = str(tmp_path / "modules")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "transformers_modules" in done.stdout


@pytest.mark.skipif(not HAS_BUNDLE, reason="the bundled pyratok-tiny is not built yet")
@pytest.mark.parametrize(
    "script, args",
    [
        ("reconstruct_video.py", ["--output", "{tmp}/recon.mp4"]),
        ("zero_shot_classify.py", ["--plot", "{tmp}/classify.png"]),
        ("prepare_hub_folder.py", ["--output", "{tmp}/hub"]),
        ("finetune_lora_trainer.py", ["--steps", "2", "--output", "{tmp}/lora"]),
    ],
)
def test_examples_run_as_written(script, args, tmp_path):
    cmd = [sys.executable, str(ROOT / "examples" / script), *[a.format(tmp=tmp_path) for a in args]]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.skipif(not HAS_PIPELINE, reason="the bundled T2V pipeline is not built yet")
def test_generate_example(tmp_path):
    cmd = [sys.executable, str(ROOT / "examples" / "generate_from_text.py"), "a blue square moves left", "--output", str(tmp_path / "gen.mp4")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "gen.mp4").stat().st_size > 0


def test_convert_release_example(tmp_path):
    from test_convert_release import write_release  # noqa: PLC0415

    src = write_release(tmp_path / "release")
    cmd = [sys.executable, str(ROOT / "examples" / "convert_release_checkpoint.py"), str(src), str(tmp_path / "converted")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "converted" / "model.safetensors").is_file()
