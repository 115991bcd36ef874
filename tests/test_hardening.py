"""Hardening: property-based tests of every user-facing input, safe loading, atomic outputs, Space path checks.

The property tests (hypothesis) feed random shapes, dtypes and values to ``encode`` / ``decode`` / ``forward``,
random token ids, random config fields and damaged token files. The property is always the same: the call
either gives a correct result (an output the size of the input) or raises a typed
:class:`~pyratok_hf.errors.PyraTokError` with a message — never a bare ``RuntimeError`` / ``TypeError`` from
deep inside torch. Where the validity of a case is known in advance, the outcome must also match it.

How many cases of each category ran, and how they ended, is written to ``hardening_counts.json`` in pytest's
base temporary folder (printed at the end of the module; ``docs/reliability.md`` quotes a run).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import types
import warnings
from collections import Counter, defaultdict
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyratok_hf import AutoencoderPyraTok, PyraTokConfig, PyraTokModel
from pyratok_hf.configuration_pyratok import TINY_VAE_CONFIG
from pyratok_hf.errors import CheckpointError, ConfigError, InvalidInputError, PyraTokError

# A Wan VAE with 8 base channels and no channel growth, 16-wide level blocks, 8-bit codes, no text model:
# about 0.1 M parameters, so one encode + decode of a 9x40x40 clip takes a fraction of a second.
HARDENING_FIELDS = dict(
    backbone_config={**TINY_VAE_CONFIG, "base_dim": 8, "dim_mult": [1, 1, 1, 1]},
    level_hidden_dim=16,
    codebook_bits=8,
    use_text_conditioning=False,
    token_text_weight=0,
    codebook_text_weight=0,
    contrastive_weight=0,
)
BITS = 8

# Per category, how many cases ran and how they ended ("ok" or the error class); written at module teardown.
COUNTS: dict[str, Counter] = defaultdict(Counter)


def _upload_dir():
    from pyratok_hf import space_app as _space

    folder = _space.upload_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fuzz_settings(examples: int):
    # No example database: it would write a .hypothesis/ folder into the repository.
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


def record(category: str, outcome) -> None:
    """Count one case: ``outcome`` is None (success), an exception, or a label such as ``"exit_2"``."""
    COUNTS[category]["cases"] += 1
    COUNTS[category]["ok" if outcome is None else outcome if isinstance(outcome, str) else type(outcome).__name__] += 1


def hardening_config(**overrides) -> PyraTokConfig:
    return PyraTokConfig.from_preset("pyratok-tiny", **{**HARDENING_FIELDS, **overrides})


@pytest.fixture(scope="module", autouse=True)
def one_thread_and_counts(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    path = tmp_path_factory.getbasetemp() / "hardening_counts.json"
    path.write_text(json.dumps({k: dict(v) for k, v in sorted(COUNTS.items())}, indent=2))
    print(f"\nhardening case counts -> {path}\n" + "\n".join(f"  {k}: {dict(v)}" for k, v in sorted(COUNTS.items())))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return PyraTokModel(hardening_config()).eval()


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hardening_model")
    model.save_pretrained(folder)
    return folder


def assert_typed(error: BaseException) -> None:
    """The error a user sees must be ours, with a message."""
    assert isinstance(error, PyraTokError), f"untyped {type(error).__name__}: {error}"
    assert str(error).strip(), f"{type(error).__name__} without a message"


# ============================================================================= pixel inputs
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.int32, torch.uint8, torch.bool]
VALUE_KINDS = ["valid", "slightly_outside", "far_outside", "nan", "inf", "huge", "uint8_range"]


@st.composite
def pixel_cases(draw):
    """A valid clip or image with at most one aspect broken (so valid inputs are drawn often enough)."""
    broken = draw(st.sampled_from(["nothing", "nothing", "rank", "channels", "empty", "dtype", "values"]))
    rank = draw(st.integers(3, 6)) if broken == "rank" else draw(st.sampled_from([4, 5, 5]))
    channels = draw(st.sampled_from([1, 2, 4])) if broken == "channels" else 3
    batch, t, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 40)), draw(st.integers(1, 40))
    shape = {3: (channels, h, w), 4: (batch, channels, h, w), 5: (batch, channels, t, h, w), 6: (batch, channels, t, h, w, 1)}[rank]
    if broken == "empty":
        index = draw(st.integers(0, len(shape) - 1))
        shape = shape[:index] + (0,) + shape[index + 1 :]
    dtype = draw(st.sampled_from(DTYPES)) if broken == "dtype" else draw(st.sampled_from(DTYPES[:4]))
    kind = draw(st.sampled_from(VALUE_KINDS)) if broken == "values" else "valid"
    return shape, dtype, kind, draw(st.integers(0, 2**31 - 1))


def make_pixels(shape, dtype, kind, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
    if x.numel():
        special = {"slightly_outside": 1.02, "far_outside": -1.5, "nan": math.nan, "inf": -math.inf, "huge": 1e30, "uint8_range": 255.0}
        if kind in special:
            x.view(-1)[seed % x.numel()] = special[kind]
        if kind == "uint8_range":
            x = (x + 1) * 127.5
    return x.to(dtype)


def pixels_are_valid(shape, dtype, kind) -> bool:
    return len(shape) in (4, 5) and shape[1] == 3 and min(shape) > 0 and dtype.is_floating_point and kind in ("valid", "slightly_outside")


@fuzz_settings(200)
@given(case=pixel_cases())
def test_encode_decode_any_input_gives_the_input_shape_or_a_typed_error(model, case):
    shape, dtype, kind, seed = case
    x = make_pixels(shape, dtype, kind, seed)
    outcome = None
    try:
        with warnings.catch_warnings(record=True) as caught, torch.inference_mode():
            warnings.simplefilter("always")
            enc = model.encode(x)
            video = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
        if len(shape) == 4:
            video = video[:, :, 0]
        assert video.shape == x.shape and torch.isfinite(video).all()
        assert [tuple(ids.shape[1:]) for ids in enc.token_ids] == model.token_grids(*enc.input_shape)
        if kind == "slightly_outside":
            assert any("slightly outside" in str(w.message) for w in caught), "clamping must be announced"
    except Exception as error:  # noqa: BLE001 - the property is about which exceptions escape
        outcome = error
        assert_typed(error)
    record(f"pixels.encode_decode.{'valid' if pixels_are_valid(shape, dtype, kind) else 'invalid'}", outcome)
    assert (outcome is None) == pixels_are_valid(shape, dtype, kind), f"{shape} {dtype} {kind}: {outcome!r}"


@fuzz_settings(80)
@given(case=pixel_cases())
def test_forward_any_input_gives_the_input_shape_or_a_typed_error(model, case):
    shape, dtype, kind, seed = case
    x = make_pixels(shape, dtype, kind, seed)
    outcome = None
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            out = model(x)
        assert out.reconstruction.shape == x.shape and torch.isfinite(out.loss)
    except Exception as error:  # noqa: BLE001
        outcome = error
        assert_typed(error)
    record(f"pixels.forward.{'valid' if pixels_are_valid(shape, dtype, kind) else 'invalid'}", outcome)
    assert (outcome is None) == pixels_are_valid(shape, dtype, kind), f"{shape} {dtype} {kind}: {outcome!r}"


# ============================================================================= token ids
ID_MUTATIONS = [
    "none", "prefix", "dtype", "out_of_range", "rank", "grid", "batch", "extra_level", "no_levels", "reversed",
    "empty", "num_levels", "container", "output_shape",
]  # fmt: skip
ID_DTYPES = [torch.int32, torch.int16, torch.uint8, torch.int8, torch.float32, torch.float64, torch.bool, torch.float16]


@fuzz_settings(250)
@given(
    size=st.tuples(st.integers(1, 9), st.integers(1, 33), st.integers(1, 33)),
    mutation=st.sampled_from(ID_MUTATIONS),
    data=st.data(),
)
def test_decode_any_token_ids_gives_the_video_or_a_typed_error(model, size, mutation, data):
    video = make_pixels((1, 3, *size), torch.float32, "valid", sum(size))
    with torch.inference_mode():
        enc = model.encode(video)
        reference = model.decode(token_ids=enc.token_ids, output_shape=size).sample
    ids = [t.clone().contiguous() for t in enc.token_ids]
    levels, expected_grids = len(ids), model.token_grids(*size)
    kwargs = {"output_shape": size}
    level = data.draw(st.integers(0, levels - 1))
    valid = False  # what the outcome must be; None = either a video or a typed error is fine
    if mutation == "none":
        valid = True
    elif mutation == "prefix":
        keep = data.draw(st.integers(1, levels))
        ids, kwargs["num_levels"], valid = ids[:keep], keep, True
    elif mutation == "dtype":
        dtype = data.draw(st.sampled_from(ID_DTYPES))
        ids[level] = ids[level].to(dtype)
        converted = ids[level].to(torch.int64) if not dtype.is_floating_point else None
        valid = dtype not in (torch.bool,) and not dtype.is_floating_point and int(converted.min()) >= 0 and int(converted.max()) < 2**BITS
    elif mutation == "out_of_range":
        bad = data.draw(st.one_of(st.integers(-(2**63), -1), st.integers(2**BITS, 2**63 - 1)))
        ids[level].view(-1)[0] = bad
    elif mutation == "rank":
        ids[level] = ids[level][0] if data.draw(st.booleans()) else ids[level][None]
    elif mutation == "grid":
        axis = data.draw(st.integers(1, 3))
        ids[level] = torch.cat([ids[level], ids[level].narrow(axis, 0, 1)], dim=axis)
    elif mutation == "batch":
        ids[level] = ids[level].repeat(2, 1, 1, 1)
        valid = levels == 1
    elif mutation == "extra_level":
        ids.append(ids[-1])
    elif mutation == "no_levels":
        ids = []
    elif mutation == "reversed":
        ids = ids[::-1]
        valid = [tuple(t.shape[1:]) for t in ids] == expected_grids
    elif mutation == "empty":
        ids[level] = ids[level].narrow(data.draw(st.integers(0, 3)), 0, 0)
    elif mutation == "num_levels":
        value = data.draw(st.one_of(st.integers(-2, 6), st.booleans(), st.floats(allow_nan=True), st.text(max_size=2)))
        kwargs["num_levels"] = value
        valid = type(value) is int and 1 <= value <= levels
    elif mutation == "container":
        ids = data.draw(st.sampled_from([ids[0], 7, "level_0", None, {"level_0": ids[0]}, [None], [ids[0].tolist()]]))
        if ids is None:
            ids, kwargs["latents"] = None, None  # neither given
    elif mutation == "output_shape":
        value = data.draw(st.one_of(
            st.tuples(st.integers(-3, 12), st.integers(-3, 40), st.integers(-3, 40)), st.lists(st.integers(1, 9), max_size=4),
            st.text(max_size=3), st.tuples(st.floats(1, 9), st.floats(1, 40), st.floats(1, 40)),
        ))  # fmt: skip
        kwargs["output_shape"] = value
        good = isinstance(value, (tuple, list)) and len(value) == 3 and all(type(v) is int and v >= 1 for v in value)
        valid = None if good else False  # a positive (T, H, W) may or may not match the token grids
    outcome = None
    try:
        with torch.inference_mode():
            sample = model.decode(token_ids=ids, **kwargs).sample
        assert sample.shape[1:] == (3, *kwargs["output_shape"])
        if mutation in ("none", "dtype"):
            assert torch.equal(sample, reference), "the same ids in another integer dtype must decode identically"
    except Exception as error:  # noqa: BLE001
        outcome = error
        assert_typed(error)
    record(f"token_ids.{mutation}", outcome)
    if valid is not None:
        assert (outcome is None) == valid, f"{mutation}: {outcome!r}"


def test_latents_of_any_float_dtype_decode_and_others_are_refused(model):
    with torch.inference_mode():
        enc = model.encode(make_pixels((1, 3, 5, 16, 16), torch.float32, "valid", 1))
        reference = model.decode(latents=enc.latents).sample
        for dtype in (torch.float16, torch.bfloat16, torch.float64):
            assert model.decode(latents=enc.latents.to(dtype)).sample.shape == reference.shape
        for bad in (enc.latents.long(), enc.latents > 0, enc.latents[:, :, :0], enc.latents * math.nan, enc.latents[:, :4]):
            with pytest.raises(InvalidInputError):
                model.decode(latents=bad)


# ============================================================================= configs
# PyraTokConfig's own typed fields (a transformers dataclass config: its annotations, not the base class's).
CONFIG_FIELDS = list(PyraTokConfig.__annotations__)
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**13), 10**13), st.integers(-3, 70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.sampled_from(["pyramid", "release", "nearest", "trilinear", "mean", "cls", ""]),
    st.lists(st.one_of(st.integers(-2, 9), st.floats(allow_nan=True), st.booleans(), st.text(max_size=1)), max_size=6),
    st.dictionaries(st.sampled_from(["z_dim", "base_dim", "dim_mult", "num_res_blocks", "scale_factor_spatial", "foo"]),
                    st.one_of(st.integers(-2, 20), st.text(max_size=2), st.lists(st.integers(-1, 4), max_size=5), st.none()), max_size=4),
)  # fmt: skip


@fuzz_settings(800)
@given(fields=st.dictionaries(st.sampled_from(CONFIG_FIELDS), ANY_VALUE, min_size=1, max_size=3))
def test_random_config_fields_give_a_config_error_or_a_valid_config(fields):
    outcome = None
    try:
        config = PyraTokConfig.from_preset("pyratok-tiny", **fields)
        config.validate()
        again = PyraTokConfig.from_dict(config.to_dict())  # what from_pretrained does with config.json
        assert again.to_dict() == config.to_dict()
    except Exception as error:  # noqa: BLE001
        outcome = error
        assert isinstance(error, ConfigError), f"{fields}: untyped {type(error).__name__}: {error}"
    record(f"config.random_fields.{'valid' if outcome is None else 'refused'}", outcome)


@fuzz_settings(80)
@given(data=st.data())
def test_any_config_that_validates_builds_a_model_that_round_trips(data):
    """Configs drawn near the valid region: each either is refused or builds a model whose output fits."""
    levels = data.draw(st.integers(1, 5))
    fields = dict(
        num_levels=levels,
        codebook_bits=data.draw(st.sampled_from([1, 2, 7, 16, 33, 64])),
        level_hidden_dim=data.draw(st.integers(1, 24)),
        num_attention_heads=data.draw(st.integers(1, 4)),
        use_text_conditioning=data.draw(st.booleans()),
        layout=data.draw(st.sampled_from(["pyramid", "release"])),
        upsample_mode=data.draw(st.sampled_from(["nearest", "trilinear"])),
        detach_residual=data.draw(st.booleans()),
        normalize_latents=data.draw(st.booleans()),
        projection_dim=data.draw(st.integers(1, 8)),
        text_embed_dim=data.draw(st.integers(1, 8)),
    )
    if data.draw(st.booleans()):
        fields["lateral_stages"] = data.draw(st.lists(st.integers(-1, 4), min_size=0, max_size=levels + 1))
    if data.draw(st.booleans()):
        fields["level_spatial_downsample"] = data.draw(st.lists(st.integers(0, 9), min_size=levels, max_size=levels))
    if data.draw(st.booleans()):
        fields["level_temporal_downsample"] = data.draw(st.lists(st.integers(1, 3), min_size=levels, max_size=levels))
    outcome = None
    try:
        config = hardening_config(**fields)
    except ConfigError as error:
        outcome = error
    else:
        torch.manual_seed(0)
        tokenizer = PyraTokModel(config).eval()
        video = make_pixels((1, 3, 5, 16, 24), torch.float32, "valid", 0)
        with torch.inference_mode():
            enc = tokenizer.encode(video, text_embeds=torch.randn(1, 3, config.text_hidden_size) if config.use_text_conditioning else None)
            decoded = tokenizer.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
        assert decoded.shape == video.shape and torch.isfinite(decoded).all()
        if config.codebook_bits < 64:  # at 64 bits every int64 (negative ones too) is a valid id
            assert all(0 <= int(ids.min()) and int(ids.max()) < 2**config.codebook_bits for ids in enc.token_ids)
    record(f"config.model_build.{'built' if outcome is None else 'refused'}", outcome)


# ============================================================================= token files
FILE_MUTATIONS = [
    "none", "dtype", "drop_batch_dim", "rank", "grid", "out_of_range", "missing_level", "extra_tensor", "no_tensors",
    "metadata_missing", "metadata_value", "truncate", "flip_bytes", "empty_file", "garbage", "directory",
]  # fmt: skip
METADATA_VALUES = {
    "format": ["pyratok-tokens/0", "", "pyratok-tokens-v1"],
    "input_shape": ["abc", "[1, 2]", "[0, 16, 16]", "[5, 16, 16.5]", "{}", "null", "[true, 16, 16]", "[5, 16, 16]", "[1, 8, 8]"],
    "fps": ["abc", "-1", "nan", "inf", "0", "1e308", "12.5"],
    "num_levels": ["x", "3", "99", "4.0", "4"],
    "config_fingerprint": ["deadbeef", ""],
    "codebook_bits": ["9", "x"],
}


@pytest.fixture(scope="module")
def token_file(model, tmp_path_factory):
    from pyratok_hf.commands import save_tokens

    folder = tmp_path_factory.mktemp("token_files")
    video = make_pixels((1, 3, 5, 16, 16), torch.float32, "valid", 3)
    with torch.inference_mode():
        enc = model.encode(video)
    path = folder / "clip.safetensors"
    save_tokens(str(path), enc.token_ids, model, enc.input_shape, 8.0, "hardening-model")
    return path


def write_mutated_token_file(source, target, mutation, data) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    name = data.draw(st.sampled_from(sorted(tensors)))
    raw = source.read_bytes()
    if mutation == "dtype":
        tensors[name] = tensors[name].to(data.draw(st.sampled_from(ID_DTYPES)))
    elif mutation == "drop_batch_dim":
        tensors = {k: v[0] for k, v in tensors.items()}  # [t, h, w] per level: accepted by pyratok decode
    elif mutation == "rank":
        tensors[name] = tensors[name].reshape(-1) if data.draw(st.booleans()) else tensors[name][None]
    elif mutation == "grid":
        tensors[name] = torch.cat([tensors[name], tensors[name]], dim=data.draw(st.integers(1, 3)))
    elif mutation == "out_of_range":
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[0] = data.draw(st.sampled_from([-1, 2**BITS, 2**40, -(2**63)]))
    elif mutation == "missing_level":
        del tensors[name]
    elif mutation == "extra_tensor":
        tensors[data.draw(st.sampled_from(["level_9", "levels", "extra"]))] = tensors[name].clone()
    elif mutation == "no_tensors":
        tensors = {}
    elif mutation == "metadata_missing":
        del metadata[data.draw(st.sampled_from(sorted(metadata)))]
    elif mutation == "metadata_value":
        key = data.draw(st.sampled_from(sorted(METADATA_VALUES)))
        metadata[key] = data.draw(st.sampled_from(METADATA_VALUES[key]))
    if mutation == "truncate":
        target.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1))])
    elif mutation == "flip_bytes":
        corrupted = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 4))):
            corrupted[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
        target.write_bytes(bytes(corrupted))
    elif mutation == "empty_file":
        target.write_bytes(b"")
    elif mutation == "garbage":
        target.write_bytes(data.draw(st.binary(min_size=1, max_size=64)))
    elif mutation == "directory":
        target.mkdir()
    else:
        save_file(tensors, str(target), metadata=metadata)


@fuzz_settings(200)
@given(mutation=st.sampled_from(FILE_MUTATIONS), data=st.data())
def test_damaged_token_files_decode_or_fail_with_one_line(model, model_dir, token_file, tmp_path_factory, mutation, data):
    from pyratok_hf import cli, commands

    folder = tmp_path_factory.mktemp("mutated", numbered=True)
    damaged, output = folder / "tokens.safetensors", folder / "video.mp4"
    write_mutated_token_file(token_file, damaged, mutation, data)

    # The library reader: a token list or a typed error.
    try:
        token_ids, _ = commands.load_tokens(str(damaged))
        assert all(torch.is_tensor(t) for t in token_ids)
    except FileNotFoundError:
        assert mutation == "directory"
    except Exception as error:  # noqa: BLE001
        assert_typed(error)

    # The command: exit 0 and a video, or exit 2, one line on stderr and no output file. The model is the
    # module's (loading it from model_dir is what test_cli_errors.py exercises).
    stderr = []
    with mock.patch.object(commands, "load_model", lambda *a, **k: model), mock.patch.object(sys, "argv", ["pyratok"]), \
            mock.patch.object(sys, "stderr", types.SimpleNamespace(write=stderr.append, flush=lambda: None)):  # fmt: skip
        code = cli.main(["decode", str(damaged), "-o", str(output), "--model", str(model_dir)])
    message = "".join(stderr).strip()
    record(f"token_file.{mutation}", None if code == 0 else f"exit_{code}")
    if code == 0:
        from pyratok_hf.video_io import read_video

        assert read_video(output).frames.shape[1:] == (5, 16, 16) or mutation == "metadata_value"
    else:
        assert code == 2 and message.startswith("pyratok decode: error:") and "\n" not in message and "Traceback" not in message
        assert not output.exists() and not [p for p in folder.iterdir() if p.name.startswith(".")]
    if mutation in ("out_of_range", "missing_level", "no_tensors", "empty_file", "garbage", "directory", "grid", "rank"):
        assert code == 2, f"{mutation} must be refused"
    if mutation in ("none", "drop_batch_dim"):
        assert code == 0, message


# ============================================================================= loading: safetensors only
def pickle_folder(folder, weights="model.safetensors", pickled="pytorch_model.bin"):
    """Replace a folder's safetensors weights by the same tensors pickled with torch.save (diffusers' file names
    for a folder in diffusers' layout)."""
    from safetensors.torch import load_file

    if not os.path.exists(os.path.join(folder, weights)) and os.path.exists(os.path.join(folder, "diffusion_pytorch_model.safetensors")):
        weights, pickled = "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"

    state = load_file(os.path.join(folder, weights))
    os.remove(os.path.join(folder, weights))
    torch.save(state, os.path.join(folder, pickled))


def tiny_prior(seed=0):
    from pyratok_hf.prior import PyraTokPriorConfig, PyraTokPriorModel

    torch.manual_seed(seed)
    lm = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)
    return PyraTokPriorModel(PyraTokPriorConfig(codebook_bits=BITS, num_levels=4, text_dim=16, lm_config=lm)).eval()


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_prior_refuses_pickle_unless_allowed_and_names_shape_mismatches(tmp_path):
    from pyratok_hf.prior import PyraTokPriorModel

    prior = tiny_prior()
    prior.save_pretrained(tmp_path / "prior")
    assert same_weights(PyraTokPriorModel.from_pretrained(tmp_path / "prior"), prior)
    # Both a (different) pickle and the safetensors: the safetensors is read, even with allow_pickle.
    shutil.copytree(tmp_path / "prior", tmp_path / "both")
    torch.save(tiny_prior(seed=1).state_dict(), tmp_path / "both" / "pytorch_model.bin")
    assert same_weights(PyraTokPriorModel.from_pretrained(tmp_path / "both"), prior)
    assert same_weights(PyraTokPriorModel.from_pretrained(tmp_path / "both", allow_pickle=True), prior)
    # Pickle only: refused, by default and with use_safetensors=False; accepted when opted in.
    shutil.copytree(tmp_path / "prior", tmp_path / "pickled")
    pickle_folder(tmp_path / "pickled")
    for kwargs in ({}, {"use_safetensors": False}):
        with pytest.raises(CheckpointError, match="allow_pickle"):
            PyraTokPriorModel.from_pretrained(tmp_path / "pickled", **kwargs)
    assert same_weights(PyraTokPriorModel.from_pretrained(tmp_path / "pickled", allow_pickle=True), prior)
    # config.json edited: the mismatching tensors are named.
    shutil.copytree(tmp_path / "prior", tmp_path / "edited")
    config = json.loads((tmp_path / "edited" / "config.json").read_text())
    config["num_levels"] = 3
    (tmp_path / "edited" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"special_tokens|level_embedding"):
        PyraTokPriorModel.from_pretrained(tmp_path / "edited")


def test_autoencoder_refuses_a_diffusers_named_pickle_and_prefers_safetensors(model, model_dir, tmp_path):
    folder = tmp_path / "diffusers_bin"
    shutil.copytree(model_dir, folder)
    pickle_folder(folder, pickled="diffusion_pytorch_model.bin")
    with pytest.raises(CheckpointError, match="allow_pickle"):
        AutoencoderPyraTok.from_pretrained(folder)
    with pytest.raises(CheckpointError, match="allow_pickle"):
        PyraTokModel.from_pretrained(folder)
    both = tmp_path / "both"
    shutil.copytree(model_dir, both)
    torch.manual_seed(5)
    torch.save(PyraTokModel(hardening_config()).state_dict(), both / "pytorch_model.bin")  # other weights
    for loader in (PyraTokModel, AutoencoderPyraTok):
        assert same_weights(loader.from_pretrained(both), model)
    assert same_weights(PyraTokModel.from_pretrained(both, allow_pickle=True), model)


def test_diffusers_layout_with_edited_config_names_the_mismatching_tensors(model_dir, tmp_path):
    folder = tmp_path / "diffusers_layout"
    shutil.copytree(model_dir, folder)
    os.rename(folder / "model.safetensors", folder / "diffusion_pytorch_model.safetensors")
    assert isinstance(AutoencoderPyraTok.from_pretrained(folder), AutoencoderPyraTok)
    config = json.loads((folder / "config.json").read_text())
    config["level_hidden_dim"] = 24  # the weights were saved with 16
    (folder / "config.json").write_text(json.dumps(config))
    for loader in (AutoencoderPyraTok, PyraTokModel):
        with pytest.raises(CheckpointError, match=r"lapq\.levels\.0\..*size mismatch|size mismatch.*lapq\.levels"):
            loader.from_pretrained(folder)


def test_own_classes_load_without_trust_remote_code_and_never_run_folder_code(model_dir, tmp_path):
    from transformers import AutoConfig, AutoModel

    from pyratok_hf.prior import PyraTokPriorModel

    folder = tmp_path / "poisoned"
    shutil.copytree(model_dir, folder)
    marker = tmp_path / "code_ran"
    for name in os.listdir(folder):  # save_pretrained copies the modeling code for Hub users (auto_map)
        if name.endswith(".py"):
            (folder / name).write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    tiny_prior().save_pretrained(tmp_path / "prior")
    assert type(AutoConfig.from_pretrained(folder)).__name__ == "PyraTokConfig"
    assert isinstance(AutoModel.from_pretrained(folder), PyraTokModel)
    assert isinstance(AutoencoderPyraTok.from_pretrained(folder), AutoencoderPyraTok)
    assert isinstance(AutoModel.from_pretrained(tmp_path / "prior"), PyraTokPriorModel)
    assert not marker.exists(), "loading a folder must not execute the Python files in it"


def tiny_pipeline():
    from transformers import AutoTokenizer, BertConfig, BertModel

    from pyratok_hf import PyraTokT2VPipeline
    from pyratok_hf.prior import PyraTokPriorConfig, PyraTokPriorModel
    from pyratok_hf.text_encoder import resolve_text_encoder_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_text_encoder_path("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    text_encoder = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=32, max_position_embeddings=64)).eval()  # fmt: skip
    vae = AutoencoderPyraTok(hardening_config()).eval()
    lm = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)
    prior = PyraTokPriorModel(PyraTokPriorConfig.for_tokenizer(vae.pyratok_config, text_dim=16, text_max_length=8, lm_config=lm)).eval()
    return PyraTokT2VPipeline(tokenizer=tokenizer, text_encoder=text_encoder, prior=prior, vae=vae)


@pytest.mark.parametrize("component", ["vae", "prior", "text_encoder"])
def test_pipeline_folder_refuses_a_pickled_component_unless_allowed(component, tmp_path_factory):
    from pyratok_hf import PyraTokT2VPipeline

    base = tmp_path_factory.getbasetemp() / "hardening_pipeline"
    if not base.exists():
        pipe = tiny_pipeline()
        pipe.set_progress_bar_config(disable=True)
        pipe.save_pretrained(base)
    folder = tmp_path_factory.mktemp(f"pickled_{component}")
    shutil.copytree(base, folder, dirs_exist_ok=True)
    pickle_folder(folder / component)
    with pytest.raises(CheckpointError, match="allow_pickle"):
        PyraTokT2VPipeline.from_pretrained(folder)
    with pytest.raises(CheckpointError, match="allow_pickle"):
        PyraTokT2VPipeline.from_pretrained(folder, use_safetensors=False)
    loaded = PyraTokT2VPipeline.from_pretrained(folder, allow_pickle=True)
    reference = PyraTokT2VPipeline.from_pretrained(base)
    assert same_weights(getattr(loaded, component), getattr(reference, component))


# ============================================================================= atomic outputs
def test_atomic_save_safetensors_interrupted_midway_keeps_the_old_file(tmp_path):
    import safetensors.torch

    from pyratok_hf.video_io import atomic_save_safetensors

    target = tmp_path / "tokens.safetensors"
    atomic_save_safetensors({"level_0": torch.arange(6)}, target, metadata={"format": "x"})
    before = target.read_bytes()

    def half_then_interrupt(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(safetensors.torch.save(tensors, metadata)[:20])
        raise KeyboardInterrupt

    with mock.patch.object(safetensors.torch, "save_file", half_then_interrupt), pytest.raises(KeyboardInterrupt):
        atomic_save_safetensors({"level_0": torch.arange(600)}, target)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["tokens.safetensors"]


def make_checkpoint(folder, step, *, state=True, weights=True, truncated_state=False):
    folder.mkdir(parents=True)
    if weights:
        (folder / "model.safetensors").write_bytes(b"weights")
    if state:
        text = json.dumps({"global_step": step, "log_history": []})
        (folder / "trainer_state.json").write_text(text[:10] if truncated_state else text)


def test_last_checkpoint_skips_folders_left_by_a_kill_during_save(tmp_path):
    from transformers.trainer_utils import get_last_checkpoint

    from pyratok_hf.training.trainer import last_checkpoint

    assert last_checkpoint(str(tmp_path / "absent")) is None
    make_checkpoint(tmp_path / "checkpoint-2", 2)
    make_checkpoint(tmp_path / "checkpoint-10", 10)
    make_checkpoint(tmp_path / "checkpoint-12", 12, state=False)  # killed before trainer_state.json
    make_checkpoint(tmp_path / "checkpoint-14", 14, truncated_state=True)  # killed while writing it
    make_checkpoint(tmp_path / "checkpoint-16", 16, weights=False)
    (tmp_path / "checkpoint-18").write_text("a file, not a folder")
    assert get_last_checkpoint(str(tmp_path)).endswith("checkpoint-16")  # what transformers alone would resume from
    assert last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")  # numeric, not lexical, order
    for name in ("checkpoint-2", "checkpoint-10"):
        shutil.rmtree(tmp_path / name)
    assert last_checkpoint(str(tmp_path)) is None


class TinyRegression(torch.nn.Module):
    """Stands in for PyraTok in a real Trainer run (a few ms per step); counts its training steps."""

    steps = 0

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, pixel_values, **unused):
        TinyRegression.steps += 1
        return {"loss": (self.linear(pixel_values) - 1).pow(2).mean()}


class ConstantData(torch.utils.data.Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, index):
        return {"pixel_values": torch.full((4,), float(index % 7) / 7)}


def test_trainer_killed_while_saving_resumes_from_the_previous_checkpoint(tmp_path):
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    from pyratok_hf.training.trainer import PyraTokTrainer, last_checkpoint

    def make_trainer():
        args = TrainingArguments(output_dir=str(tmp_path), max_steps=4, save_steps=2, per_device_train_batch_size=2, report_to=[],
                                 use_cpu=True, remove_unused_columns=False, learning_rate=0.01, disable_tqdm=True, logging_steps=1)  # fmt: skip
        torch.manual_seed(0)
        return PyraTokTrainer(model=TinyRegression(), args=args, train_dataset=ConstantData())

    original = Trainer._save_rng_state

    def killed_at_step_4(self, output_dir):
        if self.state.global_step == 4:
            raise KeyboardInterrupt  # weights and optimizer are written, trainer_state.json is not
        return original(self, output_dir)

    with mock.patch.object(Trainer, "_save_rng_state", killed_at_step_4), pytest.raises(KeyboardInterrupt):
        make_trainer().train()
    assert (tmp_path / "checkpoint-4" / "model.safetensors").is_file()
    assert get_last_checkpoint(str(tmp_path)).endswith("checkpoint-4")  # transformers would resume from it and fail
    resume = last_checkpoint(str(tmp_path))
    assert resume.endswith("checkpoint-2")
    trainer = make_trainer()
    TinyRegression.steps = 0
    trainer.train(resume_from_checkpoint=resume)
    assert TinyRegression.steps == 2, "steps 1-2 come from checkpoint-2; only steps 3-4 run again"
    assert trainer.state.global_step == 4 and last_checkpoint(str(tmp_path)).endswith("checkpoint-4")
    assert json.loads((tmp_path / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4


def test_final_model_folder_appears_only_when_complete(model, tmp_path):
    from pyratok_hf.training.trainer import _save_final

    run = types.SimpleNamespace(output_dir=str(tmp_path))
    summary = {"global_step": 1, "log_history": []}

    def config_then_crash(self, folder, *args, **kwargs):
        self.config.save_pretrained(folder)
        raise KeyboardInterrupt

    with mock.patch.object(PyraTokModel, "save_pretrained", config_then_crash), pytest.raises(KeyboardInterrupt):
        _save_final(run, model, summary)
    assert not (tmp_path / "final").exists() and not list(tmp_path.iterdir())
    _save_final(run, model, summary)
    assert same_weights(PyraTokModel.from_pretrained(tmp_path / "final"), model)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_encode_dataset_never_takes_a_half_written_shard_as_done(model_dir, tmp_path):
    import argparse

    import safetensors.torch

    from pyratok_hf import encode_dataset
    from pyratok_hf.video_io import write_video

    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        write_video(make_pixels((3, 5, 16, 16), torch.float32, "valid", i), data / f"clip{i}.mp4", fps=8)
    (data / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"clip{i}.mp4", "text": f"clip {i}"}) + "\n" for i in range(4)))
    out = tmp_path / "out"

    def args():
        parser = argparse.ArgumentParser()
        encode_dataset.add_args(parser)
        return parser.parse_args([str(data), "-o", str(out), "--model", str(model_dir), "--num-frames", "5",
                                  "--samples-per-shard", "2", "--no-progress"])  # fmt: skip

    real_save = safetensors.torch.save_file
    calls = []

    def crash_on_second_shard(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 2:
            with open(filename, "wb") as handle:  # half of the shard reaches the disk, then the process dies
                handle.write(safetensors.torch.save(tensors, metadata)[:64])
            raise KeyboardInterrupt
        return real_save(tensors, filename, metadata=metadata)

    with mock.patch.object(safetensors.torch, "save_file", crash_on_second_shard), pytest.raises(KeyboardInterrupt):
        encode_dataset.run(args())
    second = out / "shards" / "r00000-s000001.safetensors"
    assert not second.exists(), "the half-written shard must not be at its final path"
    progress = json.loads(next((out / "progress").glob("*.json")).read_text())
    assert sorted(progress["committed"]) == ["0"] and not (out / "manifest.json").exists()
    # A stray uncommitted file at the shard's path (e.g. copied from elsewhere) is not trusted either.
    second.write_bytes(b"not a shard")
    assert encode_dataset.run(args()) == 0
    samples = list(encode_dataset.iter_token_dataset(out))
    assert sorted(s["index"] for s in samples) == [0, 1, 2, 3]
    assert not [p for p in (out / "shards").iterdir() if p.name.startswith(".")]


# ============================================================================= Space: uploaded paths
def test_space_path_check_refuses_traversal_symlinks_and_non_paths(tmp_path):
    import tempfile
    from pathlib import Path

    from pyratok_hf import space_app

    inside = Path(tempfile.mkdtemp(dir=_upload_dir()))
    try:
        clip = inside / "clip.mp4"
        clip.write_bytes(b"\x00" * 64)
        (inside / "evil.mp4").symlink_to(sys.executable)  # a link inside the upload folder to a file outside
        (inside / "etc").symlink_to("/etc")  # a link to a folder outside
        accepted = [str(clip), clip, {"path": str(clip)}, {"video": {"path": str(clip)}}, str(inside / "sub" / ".." / "clip.mp4")]
        for value in accepted:
            assert space_app.check_video_file(value) == clip.resolve()
        refused = [
            str(inside / "evil.mp4"), str(inside / "etc" / "hostname"), str(inside / ".." / ".." / "etc" / "hostname.mp4"),
            f"{clip}\x00.txt", "clip.mp4", "../../etc/passwd", "~/clip.mp4", 5, 3.5, True, b"/etc/passwd", str(clip).encode(),
            ["a.mp4"], object(), {"video": "x.mp4"}, {"path": 5},
        ]  # fmt: skip
        for value in refused:
            with pytest.raises(space_app.UserInputError, match="not an upload"):
                space_app.check_video_file(value)
        for value in (None, "", {}, {"path": None}, {"video": None}):
            with pytest.raises(space_app.UserInputError, match="upload a video"):
                space_app.check_video_file(value)
        COUNTS["space.check_video_file"].update(cases=len(accepted) + len(refused) + 5, ok=len(accepted), UserInputError=len(refused) + 5)
    finally:
        shutil.rmtree(inside)


@pytest.mark.parametrize("bad", [[], (), 5, None, [1], ["ok", b"bytes"], ["\ud800"]])
def test_one_prompt_rule_behind_every_entry_point(bad):
    """The model, the pipeline and the zero-shot tasks validate text through one function (same errors)."""
    from pyratok_hf.prior.text import validate_prompt_list
    from pyratok_hf.tasks.retrieval import check_texts
    from pyratok_hf.text_encoder import validate_prompts

    for check in (validate_prompts, validate_prompt_list, check_texts):
        with pytest.raises(InvalidInputError, match="non-empty list of strings|not valid Unicode"):
            check(bad)


def test_blank_prompts_are_unconditional_but_blank_queries_are_refused():
    from pyratok_hf.prior.text import validate_prompt_list
    from pyratok_hf.tasks.retrieval import check_texts

    assert validate_prompt_list(["", "a red circle"]) == ["", "a red circle"]
    assert check_texts(["  a red circle "]) == ["a red circle"]
    with pytest.raises(InvalidInputError, match=r"labels\[1\] must be a non-blank string"):
        check_texts(["a", "   "], "labels")
