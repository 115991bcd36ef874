"""Stage 2a alignment: the per-token video head, head training on cached tokens, the motion-weighted loss,
the L_AR prior's projected text, and the prior's evaluation callback. Tiny models, few steps."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_config, make_tiny_model, random_video

from pyratok_hf import PyraTokModel
from pyratok_hf.cli import main as cli_main
from pyratok_hf.data.corpus import build_corpus
from pyratok_hf.errors import ConfigError
from pyratok_hf.losses import motion_weighted_l1, reconstruction_loss
from pyratok_hf.training.alignment import TokenizedSplit, evaluate_retrieval, reset_video_projection, tokenize_split, train_alignment_heads

TINY_CORPUS = dict(num_train=12, num_val=6, num_long_train=0, num_long_val=0, size=(32, 32), num_frames=9, progress=False)


# Tiny matmuls on two shared, busy cores are far faster single-threaded (conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    build_corpus(root, seed=5, city_clip=None, **TINY_CORPUS)
    return root


# ----------------------------------------------------------------------------- the per-token video head
@pytest.mark.parametrize("value", [0, -3, 2.5, True, "64"])
def test_video_projection_hidden_dim_is_validated(value):
    with pytest.raises(ConfigError, match="video_projection_hidden_dim"):
        make_tiny_config(video_projection_hidden_dim=value)


def test_mlp_head_features_round_trip(tmp_path):
    model = make_tiny_model(video_projection_hidden_dim=16)
    assert isinstance(model.video_projection, torch.nn.Sequential)
    video = random_video(1, 3, 5, 32, 32)
    clip = model.get_video_features(pixel_values=video).pooler_output
    tokens = model.get_video_features(pixel_values=video, pooling="token", level=1, normalize=False).pooler_output
    frames = model.get_video_features(pixel_values=video, pooling="frame", level=1, normalize=False).pooler_output
    assert clip.shape == (1, model.config.projection_dim)
    assert torch.allclose(frames, tokens.mean(dim=(2, 3)), atol=1e-6)  # frame features average the token features
    model.save_pretrained(tmp_path)
    again = PyraTokModel.from_pretrained(tmp_path).eval()
    assert again.config.video_projection_hidden_dim == 16
    assert torch.equal(again.get_video_features(pixel_values=video).pooler_output, clip)


def test_linear_head_stays_the_default():
    model = make_tiny_model()
    assert model.config.video_projection_hidden_dim is None and isinstance(model.video_projection, torch.nn.Linear)


# ----------------------------------------------------------------------------- head training
def test_tokenize_split_and_head_training(corpus, tmp_path):
    model = make_tiny_model()
    train = tokenize_split(model, corpus / "train", num_frames=5, progress=False)
    val = tokenize_split(model, corpus / "val", num_frames=5, progress=False)
    assert len(train) > 4 and len(train.token_ids[0]) == model.config.num_levels
    train.save(tmp_path / "t.pt")
    again = TokenizedSplit.load(tmp_path / "t.pt")
    assert again.texts == train.texts and all(torch.equal(a, b) for a, b in zip(again.token_ids[0], train.token_ids[0]))

    reset_video_projection(model, 16, seed=0)
    frozen = {n: p.clone() for n, p in model.named_parameters() if n.startswith(("lapq.", "backbone.", "text_proj."))}
    before = evaluate_retrieval(model, train)
    history = train_alignment_heads(model, train, val, steps=60, batch_size=6, lr=5e-3, warmup_steps=5, eval_every=30, progress=False, token_weight=0.5)
    assert [h["step"] for h in history if "t2v_R@1" in h] == [30, 60]
    assert history[-1]["loss"] < history[0]["loss"]
    after = evaluate_retrieval(model, train)
    assert after["t2v_R@1"] > before["t2v_R@1"]  # the heads learned the training captions
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)  # only the heads moved
    assert not any(p.requires_grad for p in model.parameters())


def test_tokenize_split_needs_a_corpus_folder(tmp_path):
    from pyratok_hf.errors import DatasetError

    with pytest.raises(DatasetError, match="build-corpus"):
        tokenize_split(make_tiny_model(), tmp_path, progress=False)


# ----------------------------------------------------------------------------- motion-weighted reconstruction
def test_motion_weighted_l1_only_sees_moving_pixels():
    static = torch.zeros(1, 3, 5, 16, 16)
    assert float(motion_weighted_l1(static + 0.3, static)) == 0.0  # nothing moves: no motion term
    moving = static.clone()
    for t in range(5):
        moving[:, :, t, 4:8, 2 + 2 * t : 6 + 2 * t] = 0.9
    blurred = torch.zeros_like(moving, requires_grad=True)
    value = motion_weighted_l1(blurred, moving)
    assert 0.3 < float(value.detach()) < 0.9  # the mean error over the object's pixels, not diluted by the background
    value.backward()
    assert blurred.grad.abs().sum() > 0
    plain = reconstruction_loss(blurred, moving, motion_weight=0.0)
    weighted = reconstruction_loss(blurred, moving, motion_weight=4.0)
    assert "motion_l1" not in plain and torch.allclose(weighted["total"], plain["total"] + 4.0 * weighted["motion_l1"])


# ----------------------------------------------------------------------------- the L_AR prior and its training curve
def test_train_prior_reads_projected_text_for_the_ar_hook_and_reports_evaluations():
    from pyratok_hf.prior import PriorARLoss, PyraTokPriorConfig
    from pyratok_hf.prior.training import load_text_encoder, train_prior

    tok = make_tiny_model()
    config = PyraTokPriorConfig.for_tokenizer(
        tok.config, text_source="projected",
        lm_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4),
    )  # fmt: skip
    assert config.text_dim == tok.config.text_embed_dim
    text_tokenizer, text_encoder = load_text_encoder(tok.config.text_encoder_name_or_path)

    class Clips(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"pixel_values": random_video(3, 5, 32, 32, seed=i), "text": ["a red ball moves left", "a blue square"][i]}

    calls = []
    prior = train_prior(tok, Clips(), None, steps=4, batch_size=2, prior_config=config, text_encoder=text_encoder,
                        text_tokenizer=text_tokenizer, warmup_steps=1, progress=False,
                        eval_fn=lambda p: calls.append(p.training) or {"probe": 1.0}, eval_every=2)  # fmt: skip
    assert calls == [False, False]  # called in eval mode at steps 2 and 4
    tok.set_ar_loss_hook(PriorARLoss(prior))
    out = tok(random_video(1, 3, 5, 32, 32), text=["a red ball moves left"])
    assert torch.isfinite(out.ar_loss) and float(out.ar_loss) > 0


# ----------------------------------------------------------------------------- pyratok evaluate --task classification
def test_classification_task_needs_a_video_and_labels(tmp_path, capsys):
    assert cli_main(["-q", "evaluate", "--task", "classification", "--output", str(tmp_path)]) == 2
    assert "--video" in capsys.readouterr().err
    assert cli_main(["-q", "evaluate", "--task", "retrieval", "--output", str(tmp_path)]) == 2
    assert "--data" in capsys.readouterr().err


# ----------------------------------------------------------------------------- stage 2b (the recipe)
def test_frame_alignment_recipe_switches_the_fuse_grid_and_trains_only_lapq_and_the_video_head(tmp_path):
    """examples/recipes/train_frame_alignment.py end to end on a tiny corpus: 2 steps, every output written."""
    import importlib.util
    import json
    from pathlib import Path

    data = tmp_path / "corpus"
    build_corpus(data, seed=9, city_clip=None, num_train=4, num_val=2, num_long_train=2, num_long_val=2,
                 size=(32, 32), num_frames=9, long_num_frames=(25,), progress=False)
    start = make_tiny_model(codebook_bits=8, causal_window_frames=9)
    start.save_pretrained(tmp_path / "tokenizer")
    recipe = Path(__file__).resolve().parents[1] / "examples" / "recipes" / "train_frame_alignment.py"
    spec = importlib.util.spec_from_file_location("train_frame_alignment", recipe)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "run"
    args = ["--tokenizer", str(tmp_path / "tokenizer"), "--data", str(data), "--select", str(data), "--output", str(out),
            "--steps", "2", "--eval-every", "1", "--short-batch", "2", "--long-batch", "2", "--rank-weight", "1",
            "--cache", str(tmp_path / "cache.pt")]
    assert module.main(args) == 0
    history = json.loads((out / "history.json").read_text())
    assert [row["step"] for row in history["eval"]] == [1, 2]
    assert all(0.0 <= row["localization_mAP"] <= 1.0 and row["latent_mse_to_old"] >= 0 for row in history["eval"])
    assert all(row["rank"] > 0 for row in history["train"])  # the within-clip term was on
    trained = PyraTokModel.from_pretrained(out / "model")
    assert trained.config.level_fuse_grid == "latent"
    before, after = start.state_dict(), trained.state_dict()
    changed = {name.split(".")[0] for name in before if not torch.equal(before[name], after[name])}
    assert changed and changed <= {"lapq", "video_projection", "level_embedding"}
    assert (tmp_path / "cache.pt").is_file()  # a second run starts from the cache
    assert module.main(args[:-2] + ["--output", str(tmp_path / "run2"), "--cache", str(tmp_path / "cache.pt")]) == 0
