"""Training: run files, masking, a real Trainer run with LoRA, resume after a kill, 2-process gloo, bad data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from pyratok_hf.errors import ConfigError
from pyratok_hf.training.config import RunConfig
from pyratok_hf.training.masking import mask_video

TINY_MODEL = {
    "preset": "pyratok-tiny",
    "overrides": {
        "backbone_config": {"base_dim": 8, "z_dim": 16, "dim_mult": [1, 1, 1, 1], "num_res_blocks": 1,
                            "temperal_downsample": [False, True, True]},
        "level_hidden_dim": 16,
        "codebook_bits": 8,
        "text_embed_dim": 16,
        "projection_dim": 16,
    },
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from pyratok_hf.data import build_corpus

    out = tmp_path_factory.mktemp("corpus")
    build_corpus(out, seed=3, num_train=12, num_val=4, num_long_train=0, num_long_val=0, size=(32, 32), num_frames=9, progress=False)
    return out


def write_run(path, corpus, output_dir, **extra):
    run = {
        "task": "tokenizer",
        "stage": 2,
        "output_dir": str(output_dir),
        "model": TINY_MODEL,
        "lora": {"enabled": True, "rank": 4, "alpha": 8},
        "data": {"train": str(corpus / "train"), "num_frames": 5, "size": [32, 32]},
        "training": {"max_steps": 4, "per_device_train_batch_size": 2, "logging_steps": 1, "save_steps": 2,
                     "learning_rate": 1e-3, "warmup_steps": 0, "seed": 0, "data_seed": 0, "report_to": []},
        "sample_every": 0,
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(run.get(key), dict):
            run[key] = {**run[key], **value}
        else:
            run[key] = value
    path.write_text(yaml.safe_dump(run))
    return path


def pyratok_cmd(*args):
    return [sys.executable, "-m", "pyratok_hf.cli", *args]


def subprocess_env():
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
    return env


# ----------------------------------------------------------------------------- run files
def test_stage_defaults_and_overrides(tmp_path):
    stage1 = RunConfig.from_dict({"stage": 1, "data": {"train": "x"}})
    assert stage1.masking["frame_ratio"] == pytest.approx(0.3)
    assert stage1.loss_overrides["contrastive_weight"] == 0.0
    stage2 = RunConfig.from_dict({"stage": 2, "data": {"train": "x"}, "loss_overrides": {"entropy_weight": 0.2}})
    assert stage2.masking is None and stage2.loss_overrides == {"entropy_weight": 0.2}
    assert RunConfig.from_dict({"stage": 3, "data": {"train": "x"}}).train_backbone is True


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"data": {"train": "x"}, "bogus": 1}, "unknown run settings"),
        ({"data": {}}, "data.train is required"),
        ({"data": {"train": "x"}, "stage": 5}, "stage must be 1, 2 or 3"),
        ({"data": {"train": "x"}, "task": "gan"}, "task must be"),
        ({"data": {"train": "x"}, "stage": 1, "masking": {"frame_ratio": 1.5}}, "masking.frame_ratio"),
    ],
)
def test_bad_run_files(raw, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict(raw)


def test_unknown_training_argument_is_refused(tmp_path):
    from pyratok_hf.training.trainer import training_arguments

    run = RunConfig.from_dict({"data": {"train": "x"}, "output_dir": str(tmp_path), "training": {"max_stepz": 3}})
    with pytest.raises(ConfigError, match="max_stepz"):
        training_arguments(run)


def test_yaml_number_strings_become_numbers_and_words_are_refused(tmp_path):
    """YAML 1.1 reads 3e-4 as a string: it must reach AdamW as a float, and a word must be one ConfigError."""
    from pyratok_hf.training.trainer import training_arguments

    run = RunConfig.from_dict({"data": {"train": "x"}, "output_dir": str(tmp_path), "training": {"learning_rate": "3e-4", "max_steps": "20"}})
    args = training_arguments(run)
    assert args.learning_rate == pytest.approx(3e-4) and args.max_steps == 20 and isinstance(args.max_steps, int)
    run = RunConfig.from_dict({"data": {"train": "x"}, "output_dir": str(tmp_path), "training": {"learning_rate": "fast"}})
    with pytest.raises(ConfigError, match="learning_rate"):
        training_arguments(run)


# ----------------------------------------------------------------------------- masking
def test_masking_keeps_first_frame_and_masks_about_thirty_percent():
    torch.manual_seed(0)
    video = torch.rand(4, 3, 21, 32, 32) * 2 - 1
    masked, keep = mask_video(video, frame_ratio=0.3, spatial_ratio=0.0)
    frame_kept = keep[:, 0, :, 0, 0]
    assert torch.all(frame_kept[:, 0] == 1), "the causal first frame is never masked"
    assert torch.all((1 - frame_kept[:, 1:]).sum(1) == 6)  # round(0.3 * 20)
    assert torch.equal(masked, video * keep)
    _, keep_spatial = mask_video(video, frame_ratio=0.0, spatial_ratio=0.5, patch_size=8)
    dropped = 1 - keep_spatial.mean().item()
    assert 0.05 < dropped < 0.5  # cosine schedule: mean ratio = 0.5 * 2/pi ~ 0.32
    patches = keep_spatial[0, 0, 3].reshape(4, 8, 4, 8)
    assert torch.all(patches.amin(dim=(1, 3)) == patches.amax(dim=(1, 3))), "masking is patch-aligned"


# ----------------------------------------------------------------------------- end-to-end Trainer runs
def test_trainer_run_with_lora_saves_merged_model(tmp_path, corpus):
    from pyratok_hf import PyraTokModel
    from pyratok_hf.training.trainer import train

    run_file = write_run(tmp_path / "run.yaml", corpus, tmp_path / "out")
    summary = train(RunConfig.from_file(str(run_file)))
    assert summary["global_step"] == 4
    assert summary["trainable_parameters"] < summary["total_parameters"]
    losses = [h["loss"] for h in summary["log_history"] if "loss" in h]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert any("codebook/contrastive" in h for h in summary["log_history"]), "each loss term is logged"
    final = tmp_path / "out" / "final"
    assert (final / "model.safetensors").is_file() and (final / "backbone_lora.safetensors").is_file()
    model = PyraTokModel.from_pretrained(str(final))  # strict load: merged weights, no LoRA keys left
    assert not model.backbone.has_adapters()
    out = model(torch.rand(1, 3, 5, 32, 32) * 2 - 1, return_loss=False)
    assert out.reconstruction.shape == (1, 3, 5, 32, 32)


def test_stage2_run_with_a_prior_trains_with_l_ar(tmp_path, corpus):
    """`prior:` in a run file plugs the paper's L_AR in (it once crashed: the model was passed as the prior's mode)."""
    from pyratok_hf import PyraTokConfig
    from pyratok_hf.prior import PyraTokPriorConfig, PyraTokPriorModel
    from pyratok_hf.training.trainer import train

    tokenizer_config = PyraTokConfig.from_preset("pyratok-tiny", **TINY_MODEL["overrides"])
    lm = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4)
    torch.manual_seed(0)
    prior = PyraTokPriorModel(PyraTokPriorConfig.for_tokenizer(tokenizer_config, text_source="projected", lm_config=lm))
    prior.save_pretrained(tmp_path / "prior")
    before = {n: p.clone() for n, p in prior.named_parameters()}
    run_file = write_run(tmp_path / "run.yaml", corpus, tmp_path / "out", prior=str(tmp_path / "prior"), loss_overrides={"ar_weight": 1.5})
    summary = train(RunConfig.from_file(str(run_file)))
    ar = [h["ar_loss"] for h in summary["log_history"] if "ar_loss" in h]
    assert ar and all(v > 0 for v in ar), summary["log_history"]
    reloaded = PyraTokPriorModel.from_pretrained(tmp_path / "prior")
    assert all(torch.equal(p, before[n]) for n, p in reloaded.named_parameters())  # the prior stays frozen


def test_freeze_tokens_trains_the_decoder_and_keeps_every_token_id(tmp_path, corpus):
    """freeze_tokens: a decoder fine-tune after a prior was trained on the ids must not change any id."""
    from pyratok_hf import PyraTokModel
    from pyratok_hf.training.trainer import train

    first = write_run(tmp_path / "a.yaml", corpus, tmp_path / "a", training={"max_steps": 2, "save_steps": 2})
    train(RunConfig.from_file(str(first)))
    frozen = write_run(tmp_path / "b.yaml", corpus, tmp_path / "b", model={"init_from": str(tmp_path / "a" / "final")},
                       freeze_tokens=True, train_decoder=True, lora={"enabled": False}, training={"max_steps": 3, "learning_rate": 1e-2})
    summary = train(RunConfig.from_file(str(frozen)))
    before, after = PyraTokModel.from_pretrained(str(tmp_path / "a" / "final")), PyraTokModel.from_pretrained(str(tmp_path / "b" / "final"))
    changed = {n for n, p in after.state_dict().items() if not torch.equal(p, before.state_dict()[n])}
    assert changed and all(n.startswith(("backbone.vae.decoder.", "backbone.vae.post_quant_conv.")) for n in changed), sorted(changed)[:5]
    assert summary["trainable_parameters"] < summary["total_parameters"]
    torch.manual_seed(0)
    clip = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        ids_before, ids_after = before.encode(clip, text="a red circle").token_ids, after.encode(clip, text="a red circle").token_ids
    assert all(torch.equal(a, b) for a, b in zip(ids_before, ids_after))
    with pytest.raises(ConfigError, match="freeze_tokens"):
        RunConfig.from_dict({"data": {"train": "x"}, "freeze_tokens": True, "train_decoder": True})  # LoRA still on


def test_resuming_a_checkpoint_of_another_model_is_one_typed_error(tmp_path, corpus):
    from pyratok_hf.errors import CheckpointError
    from pyratok_hf.training.trainer import train

    first = write_run(tmp_path / "a.yaml", corpus, tmp_path / "a", training={"max_steps": 2, "save_steps": 2})
    train(RunConfig.from_file(str(first)))
    other_model = {**TINY_MODEL, "overrides": {**TINY_MODEL["overrides"], "video_projection_hidden_dim": 8}}  # other head
    other = write_run(tmp_path / "b.yaml", corpus, tmp_path / "b", model=other_model, training={"max_steps": 4})
    with pytest.raises(CheckpointError, match="other trainable parameters"):
        train(RunConfig.from_file(str(other)), resume=str(tmp_path / "a" / "checkpoint-2"))


def test_backbone_task_trains_wan_vae_and_stores_latent_statistics(tmp_path, corpus):
    from diffusers import AutoencoderKLWan

    from pyratok_hf.training.trainer import train

    run_file = write_run(tmp_path / "vae.yaml", corpus, tmp_path / "vae", task="backbone", training={"max_steps": 2})
    train(RunConfig.from_file(str(run_file)))
    vae = AutoencoderKLWan.from_pretrained(str(tmp_path / "vae" / "vae"))
    assert len(vae.config.latents_mean) == 16 and min(vae.config.latents_std) > 0


def test_resume_after_kill_continues_the_same_run(tmp_path, corpus):
    """Kill a run right after its step-4 checkpoint, resume, and compare with an uninterrupted run."""
    steps = {"max_steps": 6, "save_steps": 2}
    reference = write_run(tmp_path / "ref.yaml", corpus, tmp_path / "ref", training=steps)
    subprocess.run(pyratok_cmd("train", str(reference)), check=True, env=subprocess_env(), capture_output=True, timeout=600)
    interrupted = write_run(tmp_path / "int.yaml", corpus, tmp_path / "int", training=steps)
    proc = subprocess.Popen(pyratok_cmd("train", str(interrupted)), env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "int" / "checkpoint-4"
    deadline = time.time() + 600
    while not (checkpoint / "trainer_state.json").is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "int" / "final").exists(), "the run was killed before finishing"
    done = subprocess.run(pyratok_cmd("train", str(interrupted)), env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "int" / "train_summary.json").read_text())
    assert summary["resumed_from"] and summary["global_step"] == 6
    ref_log = json.loads((tmp_path / "ref" / "log_history.json").read_text())
    int_log = json.loads((tmp_path / "int" / "log_history.json").read_text())
    ref_losses = {h["step"]: h["loss"] for h in ref_log if "loss" in h}
    int_losses = {h["step"]: h["loss"] for h in int_log if "loss" in h}
    assert set(int_losses) >= {5, 6}
    for step in (5, 6):  # steps after the resume see the same data, RNG and optimizer state
        assert int_losses[step] == pytest.approx(ref_losses[step], rel=1e-4, abs=1e-5)


def test_two_process_cpu_run_with_accelerate(tmp_path, corpus):
    run_file = write_run(tmp_path / "ddp.yaml", corpus, tmp_path / "ddp", training={"max_steps": 2, "save_steps": 10})
    config = os.path.join(os.path.dirname(__file__), "..", "examples", "accelerate", "cpu_2proc.yaml")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config, "-m", "pyratok_hf.cli", "train", str(run_file)]
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "train_summary.json").read_text())
    assert summary["global_step"] == 2
    state = json.loads((tmp_path / "ddp" / "log_history.json").read_text())
    assert state and (tmp_path / "ddp" / "final" / "model.safetensors").is_file()


def test_bad_data_is_skipped_and_counted(tmp_path, corpus):
    import shutil

    from pyratok_hf.training.trainer import train

    data = tmp_path / "data"
    shutil.copytree(corpus / "train", data)
    rows = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines()]
    (data / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(200))
    (data / "notes.mp4").write_text("this is not a video")
    rows += [{"file_name": "corrupt.mp4", "text": "broken"}, {"file_name": "notes.mp4", "text": "text file"},
             {"file_name": rows[0]["file_name"]}]  # the last row has no caption
    (data / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    run_file = write_run(tmp_path / "bad.yaml", corpus, tmp_path / "bad", training={"max_steps": 8, "per_device_train_batch_size": 4})
    raw = yaml.safe_load(run_file.read_text())
    raw["data"]["train"] = str(data)
    run_file.write_text(yaml.safe_dump(raw))
    summary = train(RunConfig.from_file(str(run_file)))
    assert summary["global_step"] == 8
    assert sum(summary["skipped_samples"].values()) >= 2, summary["skipped_samples"]
