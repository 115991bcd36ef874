"""The diffusers text-to-video pipeline: outputs, reproducibility, save/load, export, bad inputs, CLI."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import make_tiny_config

from pyratok_hf import AutoencoderPyraTok, PyraTokT2VPipeline, PyraTokT2VPipelineOutput
from pyratok_hf.errors import ConfigError, InvalidInputError, PyraTokError
from pyratok_hf.prior import PyraTokPriorConfig, PyraTokPriorModel

TEXT_WIDTH = 32
SIZE = dict(num_frames=5, height=32, width=32)


# Tiny matmuls on two shared, busy cores are far faster single-threaded (conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_text_model():
    from transformers import AutoTokenizer, BertConfig, BertModel

    from pyratok_hf.text_encoder import resolve_text_encoder_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_text_encoder_path("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=TEXT_WIDTH, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    return tokenizer, BertModel(config).eval()


def tiny_pipeline() -> PyraTokT2VPipeline:
    tokenizer, text_encoder = tiny_text_model()
    torch.manual_seed(0)
    vae = AutoencoderPyraTok(make_tiny_config()).eval()
    lm = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4)
    config = PyraTokPriorConfig.for_tokenizer(vae.pyratok_config, text_dim=TEXT_WIDTH, text_max_length=16, lm_config=lm, initializer_range=0.2)
    prior = PyraTokPriorModel(config).eval()
    pipe = PyraTokT2VPipeline(tokenizer=tokenizer, text_encoder=text_encoder, prior=prior, vae=vae)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def run(pipe, prompt="a red ball rolls to the left", seed=0, **kwargs):
    return pipe(prompt, generator=torch.Generator().manual_seed(seed), **{**SIZE, **kwargs})


# ----------------------------------------------------------------------------- outputs
def test_numpy_output(pipe):
    out = run(pipe)
    assert isinstance(out, PyraTokT2VPipelineOutput)
    assert out.frames.shape == (1, 5, 32, 32, 3) and out.frames.dtype == np.float32
    assert 0.0 <= out.frames.min() and out.frames.max() <= 1.0
    assert [tuple(x.shape) for x in out.token_ids] == [(1, 2, 1, 1), (1, 2, 1, 1), (1, 2, 2, 2), (1, 2, 4, 4)]


def test_pil_and_torch_outputs(pipe):
    pil = run(pipe, output_type="pil").frames
    assert len(pil) == 1 and len(pil[0]) == 5 and all(isinstance(f, PIL.Image.Image) and f.size == (32, 32) for f in pil[0])
    pt = run(pipe, output_type="pt").frames
    assert torch.is_tensor(pt) and pt.shape == (1, 5, 3, 32, 32) and float(pt.min()) >= 0 and float(pt.max()) <= 1
    np_frames = run(pipe).frames
    assert np.allclose(pt.permute(0, 1, 3, 4, 2).numpy(), np_frames, atol=1e-6)
    (frames,) = run(pipe, return_dict=False)
    assert np.array_equal(frames, np_frames)


def test_batch_of_prompts_and_videos_per_prompt(pipe):
    out = pipe(["a cat", "a dog"], num_videos_per_prompt=2, generator=torch.Generator().manual_seed(0), **SIZE)
    assert out.frames.shape[0] == 4


def test_token_mode(pipe):
    out = run(pipe, mode="token", guidance_scale=1.0)
    assert out.frames.shape == (1, 5, 32, 32, 3)


# ----------------------------------------------------------------------------- reproducibility
def test_seed_prompt_and_guidance_control_the_video(pipe):
    reference = run(pipe).frames
    assert np.array_equal(reference, run(pipe).frames)
    assert not np.array_equal(reference, run(pipe, seed=1).frames)
    assert not np.array_equal(reference, run(pipe, prompt="a green cube spins slowly").frames)
    assert not np.array_equal(reference, run(pipe, guidance_scale=1.0).frames)
    assert not np.array_equal(reference, run(pipe, negative_prompt="blurry").frames)


def test_default_guidance_is_the_priors_own(pipe, monkeypatch):
    """``pipe(prompt)`` guides with ``prior.config.guidance_scale`` (the scale the prior was measured best at)."""
    monkeypatch.setattr(pipe.prior.config, "guidance_scale", 5.0)
    assert np.array_equal(run(pipe).frames, run(pipe, guidance_scale=5.0).frames)
    assert not np.array_equal(run(pipe).frames, run(pipe, guidance_scale=3.0).frames)
    with pytest.raises(ConfigError, match="guidance_scale"):
        PyraTokPriorConfig(guidance_scale=-1.0)


def test_kv_cache_does_not_change_the_video(pipe):
    assert np.array_equal(run(pipe).frames, run(pipe, use_cache=False).frames)


def test_callback_after_each_level(pipe):
    calls = []

    def callback(p, level, timestep, kwargs):
        calls.append((level, timestep, len(kwargs["token_ids"])))
        return {}

    run(pipe, callback_on_step_end=callback)
    assert calls == [(0, None, 1), (1, None, 2), (2, None, 3), (3, None, 4)]


# ----------------------------------------------------------------------------- saving and loading
def test_save_and_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "pipe")
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["prior"][1] == "PyraTokPriorModel" and index["vae"][1] == "AutoencoderPyraTok"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]
    loaded = PyraTokT2VPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.prior, PyraTokPriorModel) and isinstance(loaded.vae, AutoencoderPyraTok)
    assert np.array_equal(run(pipe).frames, run(loaded).frames)
    pipe.save_pretrained(tmp_path / "pipe")  # overwriting an existing folder works too


def test_build_pipeline_without_bundled_text_encoder(pipe, tmp_path):
    from pyratok_hf.prior.training import build_t2v_pipeline

    pipe.vae.save_pretrained(tmp_path / "tokenizer")
    pipe.prior.save_pretrained(tmp_path / "prior")
    pipe.text_encoder.save_pretrained(tmp_path / "text")
    pipe.tokenizer.save_pretrained(tmp_path / "text")
    built = build_t2v_pipeline(tmp_path / "tokenizer", tmp_path / "prior", text_encoder_path=str(tmp_path / "text"), output_dir=tmp_path / "t2v")
    assert sorted(os.listdir(tmp_path / "t2v")) == ["model_index.json", "prior", "vae"]
    loaded = PyraTokT2VPipeline.from_pretrained(tmp_path / "t2v")
    loaded.set_progress_bar_config(disable=True)
    built.set_progress_bar_config(disable=True)
    expected = run(pipe).frames
    assert np.array_equal(expected, run(built).frames)
    assert np.array_equal(expected, run(loaded).frames)


def test_export_to_video(pipe, tmp_path):
    from diffusers.utils import export_to_video

    out = run(pipe, num_frames=9, height=48, width=48)
    path = export_to_video(out.frames[0], str(tmp_path / "video.mp4"), fps=8)
    assert os.path.getsize(path) > 0


# ----------------------------------------------------------------------------- bad inputs
def test_empty_prompt_is_unconditional(pipe):
    out = run(pipe, prompt="")
    assert out.frames.shape == (1, 5, 32, 32, 3)
    # An empty prompt and "no text" are the same condition, so guidance has nothing to amplify.
    assert np.array_equal(out.frames, run(pipe, prompt="", guidance_scale=1.0).frames)


@pytest.mark.parametrize("prompt", [42, None, ["ok", 3], [], {"text": "x"}])
def test_non_string_prompt_raises(pipe, prompt):
    with pytest.raises(InvalidInputError):
        run(pipe, prompt=prompt)


def test_long_prompt_is_truncated_with_a_warning(pipe):
    long_prompt = " ".join(["a red ball bounces over a blue box"] * 10)
    with pytest.warns(UserWarning, match="truncated"):
        out = run(pipe, prompt=long_prompt)
    assert out.frames.shape == (1, 5, 32, 32, 3)


@pytest.mark.parametrize("size,expected", [(dict(num_frames=6, height=32, width=32), (9, 32, 32)), (dict(num_frames=5, height=30, width=33), (5, 32, 40))])
def test_invalid_size_is_rounded_up_with_a_warning(pipe, size, expected):
    with pytest.warns(UserWarning, match="rounded up"):
        out = pipe("a ball", generator=torch.Generator().manual_seed(0), **size)
    assert out.frames.shape[1:4] == expected


@pytest.mark.parametrize("kwargs", [dict(output_type="latent"), dict(num_frames=0), dict(num_videos_per_prompt=0), dict(temperature=-1.0)])
def test_bad_arguments_raise(pipe, kwargs):
    with pytest.raises(InvalidInputError):
        run(pipe, **kwargs)


# ----------------------------------------------------------------------------- command line
def _cli_args(**overrides):
    from pyratok_hf.generate_cli import add_cli_args

    parser = argparse.ArgumentParser()
    add_cli_args(parser)
    argv = [overrides.pop("prompt", "a red ball"), "-o", overrides.pop("output")]
    for key, value in overrides.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return parser.parse_args(argv)


def test_cli_writes_a_video(pipe, tmp_path):
    from pyratok_hf.generate_cli import run_cli

    pipe.save_pretrained(tmp_path / "pipe")
    args = _cli_args(output=str(tmp_path / "out.mp4"), model=str(tmp_path / "pipe"), seed=3, num_frames=5, height=32, width=32)
    assert run_cli(args) == 0
    assert os.path.getsize(tmp_path / "out.mp4") > 0
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_cli_without_bundled_pipeline_says_what_to_do(tmp_path, monkeypatch):
    import pyratok_hf
    from pyratok_hf.generate_cli import run_cli

    monkeypatch.setattr(pyratok_hf, "bundled_pipeline_path", lambda: str(tmp_path / "missing"))
    with pytest.raises(PyraTokError, match="--model"):
        run_cli(_cli_args(output=str(tmp_path / "out.mp4")))


@pytest.mark.slow
def test_pyratok_generate_command_in_a_fresh_process(pipe, tmp_path):
    """A new interpreter has imported nothing of ours: loading must import the component classes itself."""
    import subprocess
    import sys

    pipe.save_pretrained(tmp_path / "pipe")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pyratok_hf.cli", "generate", "a red ball", "-o", str(tmp_path / "clip.mp4"),
               "--model", str(tmp_path / "pipe"), "--num-frames", "5", "--height", "32", "--width", "32"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.getsize(tmp_path / "clip.mp4") > 0


# ----------------------------------------------------------------------------- diffusers conventions
LONG_PROMPT = "a small red ball rolls slowly to the left over green grass"


def _components(pipe):
    return dict(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, prior=pipe.prior, vae=pipe.vae)


def _quiet(p):
    p.set_progress_bar_config(disable=True)
    return p


def test_encode_prompt_works_in_isolation(pipe):
    """As diffusers' PipelineTesterMixin does: text components only, then a pipeline without them."""
    import ast
    import inspect
    import textwrap

    text_only = PyraTokT2VPipeline(**{**_components(pipe), "prior": None, "vae": None})
    outputs = text_only.encode_prompt(LONG_PROMPT, negative_prompt="blurry")
    # encode_prompt's return names are __call__ arguments: that is how the diffusers test feeds them back
    tree = ast.parse(textwrap.dedent(inspect.getsource(PyraTokT2VPipeline.encode_prompt)))
    returns = [n for n in ast.walk(tree) if isinstance(n, ast.Return)]
    assert len(returns) == 1
    names = [elt.id for elt in returns[0].value.elts]
    assert names == ["prompt_embeds", "negative_prompt_embeds", "prompt_attention_mask", "negative_prompt_attention_mask"]
    assert set(names) <= set(inspect.signature(PyraTokT2VPipeline.__call__).parameters)
    embeds = dict(zip(names, outputs))
    assert embeds["prompt_embeds"].shape[-1] == TEXT_WIDTH and embeds["prompt_attention_mask"].dtype == torch.bool

    no_text = _quiet(PyraTokT2VPipeline(**{**_components(pipe), "tokenizer": None, "text_encoder": None}))
    from_embeds = no_text(generator=torch.Generator().manual_seed(0), **embeds, **SIZE).frames
    assert no_text.text_encoder is None  # nothing was loaded: the embeddings were enough
    expected = run(pipe, prompt=LONG_PROMPT, negative_prompt="blurry").frames
    assert np.array_equal(from_embeds, expected)


def test_prompt_embeds_give_the_same_video_as_the_prompt(pipe):
    embeds, _, mask, _ = pipe.encode_prompt(["a cat", LONG_PROMPT], num_videos_per_prompt=2)
    assert embeds.shape[0] == mask.shape[0] == 4 and torch.equal(mask[0], mask[1])
    expected = pipe(["a cat", LONG_PROMPT], num_videos_per_prompt=2, generator=torch.Generator().manual_seed(0), **SIZE).frames
    got = pipe(prompt_embeds=embeds, prompt_attention_mask=mask, generator=torch.Generator().manual_seed(0), **SIZE).frames
    assert np.array_equal(expected, got)
    # without guidance no negative is encoded; without a negative prompt the unconditional branch is "no text"
    assert pipe.encode_prompt("a cat", do_classifier_free_guidance=False)[1] is None
    assert pipe.encode_prompt("a cat", negative_prompt=None)[1] is None


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(prompt="a cat", prompt_embeds=torch.zeros(1, 3, TEXT_WIDTH)), dict(prompt=None, prompt_embeds=torch.zeros(1, 3, 5)),
     dict(prompt=None, prompt_embeds=torch.zeros(1, 3, TEXT_WIDTH), prompt_attention_mask=torch.ones(1, 4, dtype=torch.bool)),
     dict(negative_prompt="x", negative_prompt_embeds=torch.zeros(1, 3, TEXT_WIDTH))],
)  # fmt: skip
def test_bad_prompt_embeds_raise(pipe, kwargs):
    kwargs = {"prompt": "a cat", **kwargs} if "prompt" not in kwargs and kwargs else kwargs
    with pytest.raises(InvalidInputError):
        pipe(generator=torch.Generator().manual_seed(0), **kwargs, **SIZE)


def test_a_pipeline_without_text_encoder_or_prior_says_what_is_missing(pipe):
    with pytest.raises(PyraTokError, match="prompt_embeds"):
        PyraTokT2VPipeline(None, None, None, None).encode_prompt("a cat")
    with pytest.raises(PyraTokError, match="prior"):
        PyraTokT2VPipeline(**{**_components(pipe), "prior": None})("a cat", **SIZE)


@pytest.mark.parametrize("mode", ["next_scale", "token"])
def test_one_generator_per_video_matches_single_runs(pipe, mode):
    """diffusers' batch tests: video i of a batch with generator[i] equals that prompt alone with that seed,
    even though the prompts have different lengths (the short one is padded in the batch)."""
    prompts = [LONG_PROMPT, "a cat"]
    kw = dict(mode=mode, guidance_scale=3.0 if mode == "next_scale" else 1.0)
    batch = pipe(prompts, generator=[torch.Generator().manual_seed(s) for s in (0, 1)], **kw, **SIZE)
    assert batch.frames.shape[0] == 2
    for i, (prompt, seed) in enumerate(zip(prompts, (0, 1))):
        single = run(pipe, prompt=prompt, seed=seed, **kw)
        assert all(torch.equal(b[i : i + 1], s) for b, s in zip(batch.token_ids, single.token_ids))  # the same tokens
        assert np.allclose(batch.frames[i], single.frames[0], atol=1e-5)  # decoding in a batch rounds differently


def test_generator_list_with_videos_per_prompt(pipe):
    gens = lambda: [torch.Generator().manual_seed(s) for s in range(4)]  # noqa: E731
    out = pipe(["a cat", "a dog"], num_videos_per_prompt=2, generator=gens(), **SIZE)
    assert out.frames.shape[0] == 4
    alone = run(pipe, prompt="a dog", seed=3)
    assert all(torch.equal(b[3:], a) for b, a in zip(out.token_ids, alone.token_ids))
    assert np.allclose(out.frames[3], alone.frames[0], atol=1e-5)
    with pytest.raises(InvalidInputError, match="generators"):
        pipe(["a cat", "a dog"], generator=gens()[:3], **SIZE)


def _count_bars(monkeypatch):
    import tqdm.std

    bars = []
    original = tqdm.std.tqdm.__init__

    def counting(self, *args, **kwargs):
        bars.append(kwargs.get("desc"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(tqdm.std.tqdm, "__init__", counting)
    return bars


def test_one_progress_bar_per_call_and_none_when_disabled(monkeypatch, capsys):
    import logging

    p = tiny_pipeline()
    events = []

    class Recorder(logging.Handler):
        def emit(self, record):
            events.append("log")

    handler = Recorder(level=logging.WARNING)
    logging.getLogger("pyratok_hf.prior.generation").addHandler(handler)
    original_bar = p.progress_bar
    monkeypatch.setattr(p, "progress_bar", lambda *a, **k: (events.append("bar"), original_bar(*a, **k))[1])
    bars = _count_bars(monkeypatch)
    try:
        p.set_progress_bar_config(disable=False)
        capsys.readouterr()
        run(p, mode="token")  # the prior was trained next_scale: this logs a warning once
        err = capsys.readouterr().err
        assert len(bars) == 1 and events == ["log", "bar"]  # the warning comes before the bar, not inside it
        assert err.count("0/4") == 1 and "4/4" in err
        p.set_progress_bar_config(disable=True)
        run(p)
        assert len(bars) == 2 and capsys.readouterr().err == ""
    finally:
        logging.getLogger("pyratok_hf.prior.generation").removeHandler(handler)


def test_diffusion_pipeline_from_pretrained_resolves_our_class(pipe, tmp_path):
    from diffusers import DiffusionPipeline

    pipe.save_pretrained(tmp_path / "pipe")
    loaded = _quiet(DiffusionPipeline.from_pretrained(tmp_path / "pipe"))
    assert type(loaded) is PyraTokT2VPipeline
    assert isinstance(loaded.prior, PyraTokPriorModel) and isinstance(loaded.vae, AutoencoderPyraTok)
    assert np.array_equal(run(pipe).frames, run(loaded).frames)


def test_diffusion_pipeline_loads_the_bundled_pipeline(monkeypatch):
    """The bundled folder has no text encoder: DiffusionPipeline.from_pretrained loads it on first use,
    without a second progress bar, and generates what PyraTokT2VPipeline.from_pretrained does."""
    from diffusers import DiffusionPipeline

    from pyratok_hf import bundled_pipeline_path

    loaded = _quiet(DiffusionPipeline.from_pretrained(bundled_pipeline_path()))
    assert type(loaded) is PyraTokT2VPipeline and loaded.text_encoder is None and loaded.tokenizer is None
    bars = _count_bars(monkeypatch)
    got = run(loaded, prompt="a red ball")
    assert len(bars) == 1
    assert loaded.text_encoder is not None and loaded.text_encoder.config.hidden_size == loaded.prior.config.text_dim
    reference = _quiet(PyraTokT2VPipeline.from_pretrained(bundled_pipeline_path()))
    assert np.array_equal(got.frames, run(reference, prompt="a red ball").frames)
