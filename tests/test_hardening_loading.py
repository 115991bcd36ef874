"""Hardening, round 2: damaged checkpoints and configs, odd ids and text inputs, silent NaNs, exotic tensors.

Property tests (hypothesis, new random cases each run) per group. The property is the one of
``test_hardening.py``: a call gives a correct result or raises a typed :class:`~pyratok_hf.errors.PyraTokError`
with a message, never a raw crash; and on top of it **no output may look valid after a failure**: a decoded
video always has the requested shape and holds no NaN / Inf.

Case counts per category go to ``hardening_round2_counts.json`` in pytest's base temporary folder.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import tempfile
import warnings
from collections import Counter, defaultdict

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyratok_hf import AutoencoderPyraTok, PyraTokConfig, PyraTokModel
from pyratok_hf.configuration_pyratok import TINY_VAE_CONFIG
from pyratok_hf.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    ConfigError,
    InvalidInputError,
    NonFiniteOutputError,
    PyraTokError,
)
from pyratok_hf.loading import check_checkpoint_folder, check_safetensors_file
from pyratok_hf.text_encoder import TextEncoding

FIELDS = dict(
    backbone_config={**TINY_VAE_CONFIG, "base_dim": 8, "dim_mult": [1, 1, 1, 1]},
    level_hidden_dim=16,
    codebook_bits=8,
    use_text_conditioning=False,
    token_text_weight=0,
    codebook_text_weight=0,
    contrastive_weight=0,
)
TEXT_FIELDS = dict(FIELDS, use_text_conditioning=True, text_hidden_size=12, text_embed_dim=8, num_attention_heads=2, text_encoder_name_or_path=None)
BITS = 8
COUNTS: dict[str, Counter] = defaultdict(Counter)


def fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])  # fmt: skip


def record(category: str, outcome) -> None:
    COUNTS[category]["cases"] += 1
    COUNTS[category]["ok" if outcome is None else type(outcome).__name__] += 1


def assert_typed(error: BaseException, *allowed: type) -> None:
    assert isinstance(error, PyraTokError), f"untyped {type(error).__name__}: {error}"
    assert str(error).strip(), f"{type(error).__name__} without a message"
    if allowed:
        assert isinstance(error, allowed), f"expected {[a.__name__ for a in allowed]}, got {type(error).__name__}: {error}"


def tiny(**overrides) -> PyraTokModel:
    torch.manual_seed(0)
    return PyraTokModel(PyraTokConfig.from_preset("pyratok-tiny", **{**FIELDS, **overrides})).eval()


def clip(*shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=generator) * 2 - 1


@pytest.fixture(scope="module", autouse=True)
def one_thread_and_counts(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    path = tmp_path_factory.getbasetemp() / "hardening_round2_counts.json"
    path.write_text(json.dumps({k: dict(v) for k, v in sorted(COUNTS.items())}, indent=2))
    total = sum(c["cases"] for c in COUNTS.values())
    print(f"\nhardening round 2: {total} cases -> {path}\n" + "\n".join(f"  {k}: {dict(v)}" for k, v in sorted(COUNTS.items())))


@pytest.fixture(scope="module")
def model():
    return tiny()


@pytest.fixture(scope="module")
def text_model():
    return tiny(**{k: v for k, v in TEXT_FIELDS.items() if k not in FIELDS or FIELDS[k] != v})


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("round2_model")
    model.save_pretrained(folder)
    for name in os.listdir(folder):  # keep only what the loaders read
        if name.endswith(".py"):
            os.remove(folder / name)
    return folder


# ============================================================================= 1. the loading gate
WEIGHT_MUTATIONS = ["truncate", "flip_header", "flip_data", "flip_any", "header_length", "edit_dtype", "edit_shape",
                    "edit_offsets", "header_not_object", "pickle", "torch_zip", "empty", "garbage", "directory", "missing",
                    "nan_tensor"]  # fmt: skip
CONFIG_MUTATIONS = ["truncate_json", "not_object", "not_utf8", "bom", "attn_scales", "temperal_downsample", "backbone_field",
                    "random_field", "model_type", "missing", "directory", "deep_nesting"]  # fmt: skip
PATH_MUTATIONS = ["empty", "missing_abs", "missing_rel", "file", "subfolder", "none", "number", "nul"]
BAD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True, allow_infinity=True),
                       st.text(max_size=4), st.lists(st.one_of(st.integers(-3, 3), st.floats(-2, 2), st.booleans(), st.text(max_size=1)), max_size=4),
                       st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))  # fmt: skip


def _header(raw: bytes):
    n = int.from_bytes(raw[:8], "little")
    return n, json.loads(raw[8 : 8 + n])


def _with_header(raw: bytes, header: dict) -> bytes:
    n = int.from_bytes(raw[:8], "little")
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return len(text).to_bytes(8, "little") + text + raw[8 + n :]


def mutate_weights(path, mutation, data) -> None:
    raw = open(path, "rb").read()
    n, header = _header(raw)
    names = sorted(k for k in header if k != "__metadata__")
    if mutation == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif mutation in ("flip_header", "flip_data", "flip_any"):
        low, high = {"flip_header": (8, 8 + n - 1), "flip_data": (8 + n, len(raw) - 1), "flip_any": (0, len(raw) - 1)}[mutation]
        raw = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 6))):
            raw[data.draw(st.integers(low, high))] ^= data.draw(st.integers(1, 255))
        raw = bytes(raw)
    elif mutation == "header_length":
        raw = data.draw(st.integers(0, 2**64 - 1)).to_bytes(8, "little") + raw[8:]
    elif mutation == "edit_dtype":
        header[data.draw(st.sampled_from(names))]["dtype"] = data.draw(st.sampled_from(["F16", "I32", "BF16", "F64", "X9", "U8", 7]))
        raw = _with_header(raw, header)
    elif mutation == "edit_shape":
        entry = header[data.draw(st.sampled_from(names))]
        entry["shape"] = data.draw(st.one_of(st.lists(st.integers(0, 40), max_size=4), st.just("x"), st.just([-1]), st.just(None)))
        raw = _with_header(raw, header)
    elif mutation == "edit_offsets":
        entry = header[data.draw(st.sampled_from(names))]
        begin, end = entry["data_offsets"]
        delta = data.draw(st.integers(-64, 64).filter(bool))
        entry["data_offsets"] = data.draw(st.sampled_from([[begin + delta, end + delta], [begin, end + delta], [end, begin], "x", [begin]]))
        raw = _with_header(raw, header)
    elif mutation == "header_not_object":
        text = json.dumps(data.draw(st.sampled_from([[1, 2], "x", None, 3]))).encode()
        raw = len(text).to_bytes(8, "little") + text + raw[8 + n :]
    elif mutation == "pickle":
        raw = pickle.dumps({"weight": [1.0, 2.0]}, protocol=data.draw(st.integers(2, 5)))
    elif mutation == "torch_zip":
        torch.save({"weight": torch.ones(3)}, path)
        return
    elif mutation == "empty":
        raw = b""
    elif mutation == "garbage":
        raw = data.draw(st.binary(min_size=1, max_size=200))
    elif mutation == "directory":
        os.remove(path)
        os.mkdir(path)
        return
    elif mutation == "missing":
        os.remove(path)
        return
    elif mutation == "nan_tensor":  # a valid file whose data holds NaN: only the finite-weights check can see it
        name = data.draw(st.sampled_from([k for k in names if header[k]["dtype"] == "F32"]))
        begin = header[name]["data_offsets"][0]
        raw = bytearray(raw)
        raw[8 + n + begin : 8 + n + begin + 4] = bytes.fromhex("0000c07f")  # float32 NaN
        raw = bytes(raw)
    with open(path, "wb") as handle:
        handle.write(raw)


def mutate_config(path, mutation, data) -> None:
    text = open(path, encoding="utf-8").read()
    config = json.loads(text)
    if mutation == "truncate_json":
        text = text[: data.draw(st.integers(0, len(text) - 2))]
    elif mutation == "not_object":
        text = json.dumps(data.draw(st.sampled_from([[1, 2, 3], "x", None, 3, 2.5, True])))
    elif mutation == "not_utf8":
        text = None
        with open(path, "wb") as handle:
            handle.write(b"\xff\xfe{\x00\x80" + os.urandom(8))
        return
    elif mutation == "bom":  # transformers cannot read a UTF-8 byte-order mark: a clear ConfigError
        with open(path, "wb") as handle:
            handle.write(b"\xef\xbb\xbf" + text.encode())
        return
    elif mutation == "attn_scales":
        config["backbone_config"]["attn_scales"] = data.draw(st.sampled_from(["pyramid", 1.5, None, [None], ["x"], {"a": 1}, [-1.0], True]))
        text = json.dumps(config)
    elif mutation == "temperal_downsample":
        config["backbone_config"]["temperal_downsample"] = data.draw(st.sampled_from([-1e9, "x", None, [1, 2, 3], [True], ["yes"] * 3, {}, 3]))
        text = json.dumps(config)
    elif mutation == "backbone_field":
        key = data.draw(st.sampled_from(["base_dim", "z_dim", "dim_mult", "num_res_blocks", "dropout", "is_residual", "in_channels",
                                         "out_channels", "scale_factor_spatial", "scale_factor_temporal", "decoder_base_dim", "patch_size"]))  # fmt: skip
        config["backbone_config"][key] = data.draw(BAD_VALUES)
        text = json.dumps(config)
    elif mutation == "random_field":
        config[data.draw(st.sampled_from(sorted(k for k in config if not k.startswith("_"))))] = data.draw(BAD_VALUES)
        text = json.dumps(config)
    elif mutation == "model_type":
        config["model_type"] = data.draw(st.sampled_from(["bert", "", "PyraTok", 3]))
        text = json.dumps(config)
    elif mutation == "missing":
        os.remove(path)
        return
    elif mutation == "directory":
        os.remove(path)
        os.mkdir(path)
        return
    elif mutation == "deep_nesting":
        text = "[" * 100000 + "]" * 100000
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def loaders(folder, which):
    return {"transformers": lambda: PyraTokModel.from_pretrained(folder), "diffusers": lambda: AutoencoderPyraTok.from_pretrained(folder)}[which]()


@fuzz(220)
@given(group=st.sampled_from(["weights", "weights", "config", "path"]), layout=st.sampled_from(["transformers", "diffusers"]),
       which=st.sampled_from(["transformers", "diffusers"]), data=st.data())  # fmt: skip
def test_damaged_folders_load_or_raise_a_typed_error_naming_the_file(model_dir, group, layout, which, data):
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "model")
        shutil.copytree(model_dir, folder)
        weights = os.path.join(folder, "model.safetensors")
        if layout == "diffusers":
            os.replace(weights, os.path.join(folder, "diffusion_pytorch_model.safetensors"))
            weights = os.path.join(folder, "diffusion_pytorch_model.safetensors")
        target, mutation = folder, None
        if group == "weights":
            mutation = data.draw(st.sampled_from(WEIGHT_MUTATIONS))
            mutate_weights(weights, mutation, data)
        elif group == "config":
            mutation = data.draw(st.sampled_from(CONFIG_MUTATIONS))
            mutate_config(os.path.join(folder, "config.json"), mutation, data)
        else:
            mutation = data.draw(st.sampled_from(PATH_MUTATIONS))
            target = {"empty": "", "missing_abs": os.path.join(tmp, "nope", "model"), "missing_rel": "./no-such-model-folder",
                      "file": os.path.join(folder, "config.json"), "subfolder": None, "none": None, "number": 3,
                      "nul": folder + "\x00x"}[mutation]  # fmt: skip
        outcome = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if mutation == "subfolder":
                    loaded = PyraTokModel.from_pretrained(folder, subfolder="vae") if which == "transformers" else AutoencoderPyraTok.from_pretrained(folder, subfolder="vae")
                else:
                    loaded = loaders(target, which)
            with torch.inference_mode():  # a model that loads must give a finite video or a typed error
                enc = loaded.encode(clip(1, 3, 1, 8, 8))
                video = loaded.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
            assert video.shape == (1, 3, 1, 8, 8) and torch.isfinite(video).all()
        except Exception as error:  # noqa: BLE001
            outcome = error
            if group == "path":
                assert_typed(error, CheckpointNotFoundError)
                assert isinstance(error, OSError)
            elif group == "weights":
                assert_typed(error, CheckpointError, NonFiniteOutputError)
                if isinstance(error, CheckpointError):
                    assert "safetensors" in str(error) or os.path.basename(weights) in str(error), error
                    assert any(word in str(error) for word in ("re-download", "re-save", "convert", "allow_pickle")), error
            else:
                assert_typed(error, ConfigError, CheckpointError)
                assert "config.json" in str(error) or mutation == "random_field", error
        record(f"load.{group}.{mutation}", outcome)
        must_fail = {"weights": {"truncate", "header_length", "header_not_object", "pickle", "torch_zip", "empty", "garbage",
                                 "directory", "missing", "nan_tensor", "edit_offsets"},
                     "config": {"truncate_json", "not_object", "not_utf8", "attn_scales", "temperal_downsample", "model_type",
                                "missing", "directory", "deep_nesting", "bom"},
                     "path": set(PATH_MUTATIONS)}[group]  # fmt: skip
        if mutation in must_fail:
            assert outcome is not None, f"{group}.{mutation} must be refused"
        if mutation in ("attn_scales", "temperal_downsample", "not_object", "truncate_json", "not_utf8", "deep_nesting", "bom"):
            assert isinstance(outcome, ConfigError) and isinstance(outcome, ValueError), outcome


@pytest.mark.parametrize("value", ["pyramid", 1.5])
def test_issue_configs_give_config_errors_in_both_classes(model_dir, tmp_path, value):
    for key, bad in (("attn_scales", value), ("temperal_downsample", -1e9)):
        folder = tmp_path / f"{key}-{value}"
        shutil.copytree(model_dir, folder)
        config = json.loads((folder / "config.json").read_text())
        config["backbone_config"][key] = bad
        (folder / "config.json").write_text(json.dumps(config))
        for loader in (PyraTokModel, AutoencoderPyraTok):
            with pytest.raises(ConfigError, match=key):
                loader.from_pretrained(folder)


def test_gate_is_callable_on_its_own_and_names_the_file(model_dir, tmp_path):
    checked = check_checkpoint_folder(model_dir)
    assert checked.layout == "transformers" and checked.config["model_type"] == "pyratok"
    assert check_checkpoint_folder("org/name") is None  # a Hub id is left to the Hub
    bad = tmp_path / "model.safetensors"
    bad.write_bytes((model_dir / "model.safetensors").read_bytes()[:-3])
    with pytest.raises(CheckpointError, match="model.safetensors") as info:
        check_safetensors_file(str(bad))
    assert isinstance(info.value, OSError) and "re-download" in str(info.value)
    with pytest.raises(CheckpointNotFoundError, match="no such folder"):
        PyraTokModel.from_pretrained(str(tmp_path / "missing"))
    with pytest.raises(CheckpointNotFoundError):  # a Hub-id-like name, offline and not cached
        PyraTokModel.from_pretrained("no-such-org-xyz/no-such-model")


# ============================================================================= 2. token ids of any dtype
ID_DTYPES = [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.uint16, torch.uint32, torch.uint64,
             torch.bool, torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64]  # fmt: skip
INT_LIMITS = {torch.int64: 2**63 - 1, torch.int32: 2**31 - 1, torch.int16: 2**15 - 1, torch.int8: 127, torch.uint8: 255,
              torch.uint16: 2**16 - 1, torch.uint32: 2**32 - 1, torch.uint64: 2**64 - 1}  # fmt: skip


@fuzz(100)
@given(dtype=st.sampled_from(ID_DTYPES), poke=st.sampled_from([None, None, 2**BITS, 2**16 - 1, 2**32 - 1, 2**63 + 5]), data=st.data())
def test_token_ids_of_any_dtype_decode_identically_or_raise(model, dtype, poke, data):
    size = (data.draw(st.integers(1, 6)), data.draw(st.integers(1, 20)), data.draw(st.integers(1, 20)))
    with torch.inference_mode():
        enc = model.encode(clip(1, 3, *size, seed=sum(size)))
        reference = model.decode(token_ids=enc.token_ids, output_shape=size).sample
    level = data.draw(st.integers(0, len(enc.token_ids) - 1))
    ids = list(enc.token_ids)
    limit = INT_LIMITS.get(dtype)
    valid = limit is not None and int(ids[level].max()) <= limit
    poked = ids[level].clone()
    if valid and poke is not None:  # one id made out of range (as far as the dtype can hold it)
        value = min(poke, limit)
        poked.view(-1)[0] = value if value < 2**63 else value - 2**64  # uint64: the same bit pattern
        valid = value < 2**BITS
    ids[level] = poked.to(dtype)
    outcome = None
    try:
        with torch.inference_mode():
            sample = model.decode(token_ids=ids, output_shape=size).sample
        if poke is None:
            assert torch.equal(sample, reference), "the same ids in another integer dtype must decode identically"
    except Exception as error:  # noqa: BLE001
        outcome = error
        assert_typed(error, InvalidInputError)
    record(f"token_ids.dtype.{'valid' if valid else 'invalid'}", outcome)
    assert (outcome is None) == valid, f"{dtype} poke={poke}: {outcome!r}"


# ============================================================================= 3. silent wrong results
@fuzz(80)
@given(scale=st.one_of(st.sampled_from([1.0, -1.0, 1e3, 1e10, 1e30, 1e38, -1e38, 3e38]), st.floats(-1e38, 1e38, allow_nan=False)),
       where=st.sampled_from(["all", "one"]), output_shape=st.one_of(st.none(), st.tuples(st.integers(1, 13), st.integers(1, 40), st.integers(1, 40))))  # fmt: skip
def test_decode_latents_never_returns_nan_or_an_uncropped_video(model, scale, where, output_shape):
    with torch.inference_mode():
        enc = model.encode(clip(1, 3, 5, 16, 16, seed=4))
    latents = enc.latents.clone()
    if where == "all":
        latents *= scale
    else:
        latents.view(-1)[7] = scale
    outcome = None
    try:
        with torch.inference_mode():
            video = model.decode(latents=latents, output_shape=output_shape).sample
        assert torch.isfinite(video).all(), "a decoded video must never hold NaN / Inf"
        assert video.shape[2:] == (tuple(output_shape) if output_shape else (5, 16, 16))
    except Exception as error:  # noqa: BLE001
        outcome = error
        assert_typed(error, InvalidInputError)
    fits = output_shape is None or model.latent_shape(*output_shape) == tuple(enc.latents.shape[2:])
    record(f"latents.{'fits' if fits else 'wrong_output_shape'}", outcome)
    if not fits:
        assert isinstance(outcome, InvalidInputError) and "output_shape" in str(outcome)
    elif scale in (1.0, -1.0):
        assert outcome is None


def test_output_shape_larger_than_the_latents_video_is_refused(model):
    with torch.inference_mode():
        enc = model.encode(clip(1, 3, 5, 16, 16))
        for shape in ((9, 16, 16), (5, 32, 16), (5, 16, 17), (13, 64, 64)):
            with pytest.raises(InvalidInputError, match="output_shape"):
                model.decode(latents=enc.latents, output_shape=shape)
        assert model.decode(latents=enc.latents, output_shape=(5, 15, 10)).sample.shape[2:] == (5, 15, 10)


def test_nan_weights_in_memory_never_give_a_nan_result(model):
    broken = tiny()
    with torch.no_grad():
        broken.backbone.vae.decoder.conv_out.bias.fill_(math.nan)
    with torch.inference_mode():
        enc = broken.encode(clip(1, 3, 5, 16, 16))  # the encoder is intact
        with pytest.raises(NonFiniteOutputError, match="damaged"):
            broken.decode(token_ids=enc.token_ids, output_shape=enc.input_shape)
        with torch.no_grad():
            broken.backbone.vae.encoder.conv_out.bias.fill_(math.inf)
        with pytest.raises(NonFiniteOutputError):
            broken.encode(clip(1, 3, 5, 16, 16))


# ============================================================================= 4. text inputs
class FakeTextEncoder(torch.nn.Module):
    """Deterministic stand-in for the text model: width 12, one token per character (at least one)."""

    def forward(self, prompts, device=None):
        from pyratok_hf.text_encoder import validate_prompts

        prompts = validate_prompts(prompts)
        length = max(1, max(len(p) for p in prompts))
        states = torch.stack([torch.full((length, 12), float(len(p) % 7) / 7) for p in prompts])
        mask = torch.zeros(len(prompts), length, dtype=torch.bool)
        for i, p in enumerate(prompts):
            mask[i, : max(1, len(p))] = True
        return TextEncoding(states=states, mask=mask, pooled=states.mean(1))


SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)


@fuzz(120)
@given(kind=st.sampled_from(["text", "surrogate", "embeds", "mask"]), data=st.data())
def test_text_inputs_condition_or_raise_invalid_input(text_model, kind, data):
    text_model.set_text_encoder(FakeTextEncoder())
    batch = data.draw(st.integers(1, 2))
    video = clip(batch, 3, 1, 8, 8, seed=batch)
    kwargs, valid = {}, True
    if kind == "text":
        kwargs["text"] = data.draw(st.one_of(st.text(max_size=12), st.lists(st.text(max_size=6), min_size=batch, max_size=batch)))
        valid = isinstance(kwargs["text"], str) or len(kwargs["text"]) == batch
    elif kind == "surrogate":
        base = data.draw(st.text(max_size=6))
        at = data.draw(st.integers(0, len(base)))
        kwargs["text"] = base[:at] + data.draw(SURROGATES) + base[at:]
        valid = False
    elif kind == "embeds":
        tokens = data.draw(st.integers(0, 4))
        shape = data.draw(st.sampled_from([(batch, tokens, 12), (batch, tokens, 12), (batch, 12), (batch, tokens, 5), (batch, tokens, 12, 1)]))
        dtype = data.draw(st.sampled_from([torch.float32, torch.float32, torch.float16, torch.float64, torch.int64, torch.bool, torch.complex64]))
        embeds = torch.randn(shape).to(dtype) if not dtype.is_complex else torch.randn(shape, dtype=dtype)
        special = data.draw(st.sampled_from([None, None, math.nan, math.inf, -math.inf, 1e30, 1e4]))
        if special is not None and embeds.numel() and embeds.is_floating_point():
            embeds = embeds.double()
            embeds.view(-1)[data.draw(st.integers(0, embeds.numel() - 1))] = special
            embeds = embeds.to(dtype)
        kwargs["text_embeds"] = embeds
        finite = not embeds.is_floating_point() or bool(torch.isfinite(embeds).all()) if embeds.numel() else True
        valid = len(shape) == 3 and shape[2] == 12 and tokens > 0 and dtype.is_floating_point and finite
        if valid and special == 1e30:
            valid = None  # finite but huge: it may overflow on the way (then a typed error) or not
    else:  # mask
        tokens = data.draw(st.integers(1, 4))
        kwargs["text_embeds"] = torch.randn(batch, tokens, 12)
        mshape = data.draw(st.sampled_from([(batch, tokens), (batch, tokens), (batch,), (batch, tokens + 1), (batch + 1, tokens), (batch, tokens, 1), ()]))
        mdtype = data.draw(st.sampled_from([torch.bool, torch.int64, torch.float32, torch.int32]))
        values = data.draw(st.sampled_from(["ones", "some", "zeros", "twos", "half"]))
        mask = torch.ones(mshape)
        if values == "some" and mask.numel():
            mask.view(-1)[-1] = 0
        elif values == "zeros":
            mask = torch.zeros(mshape)
        elif values == "twos":
            mask = mask * 2
        elif values == "half":
            mask = mask * 0.5
        mask = mask.to(mdtype)
        kwargs["text_attention_mask"] = mask
        valid = mshape == (batch, tokens)
        if valid:  # bool, or only 0/1, and at least one real token in every prompt
            zero_one = mdtype == torch.bool or bool(((mask == 0) | (mask == 1)).all())
            valid = zero_one and bool((mask != 0).any(dim=1).all())
    outcome = None
    try:
        with torch.inference_mode():
            enc = text_model.encode(video, **kwargs)
            out = text_model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
        assert torch.isfinite(out).all() and out.shape == video.shape
        assert all(torch.isfinite(lg).all() for lg in enc.level_logits)
    except Exception as error:  # noqa: BLE001
        outcome = error
        assert_typed(error, InvalidInputError)
    record(f"text.{kind}.{'valid' if valid else 'invalid' if valid is False else 'either'}", outcome)
    if valid is not None:
        assert (outcome is None) == valid, f"{kind} {kwargs!r}: {outcome!r}"


def test_issue_text_cases(text_model):
    text_model.set_text_encoder(FakeTextEncoder())
    video = clip(1, 3, 1, 8, 8)
    for kwargs in ({"text": "\ud800"}, {"text": ["ok", "a\udfffb"]}, {"text_embeds": torch.randn(1, 0, 12)},
                   {"text_embeds": torch.full((1, 2, 12), math.nan)}, {"text_embeds": torch.full((1, 2, 12), 1e30)},
                   {"text_embeds": torch.randn(1, 2, 12), "text_attention_mask": torch.ones(1, 3)},
                   {"text_embeds": torch.randn(1, 2, 12), "text_attention_mask": torch.ones(2)},
                   {"text_embeds": torch.randn(1, 2, 12), "text_attention_mask": torch.zeros(1, 2, dtype=torch.bool)}):  # fmt: skip
        with pytest.raises(InvalidInputError):
            text_model.encode(video, **kwargs)


# ============================================================================= 5. exotic tensors
EXOTIC = ["dense", "non_contiguous", "channels_last", "requires_grad", "expanded", "sparse_coo", "sparse_csr", "meta", "complex", "float64"]


def make_exotic(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "non_contiguous":
        return x.transpose(-1, -2).contiguous().transpose(-1, -2)
    if kind == "channels_last":
        return x.contiguous(memory_format=torch.channels_last_3d if x.dim() == 5 else torch.channels_last)
    if kind == "requires_grad":
        return (x.clone() if x.is_floating_point() else x.float()).requires_grad_(True)
    if kind == "expanded":
        return x[:1].expand(x.shape[0], *x.shape[1:])
    if kind == "sparse_coo":
        return x.to_sparse()
    if kind == "sparse_csr":
        return x.reshape(-1, x.shape[-1]).to_sparse_csr()
    if kind == "meta":
        return x.to("meta")
    if kind == "complex":
        return x.to(torch.complex64)
    if kind == "float64":
        return x.double()
    return x


@fuzz(90)
@given(kind=st.sampled_from(EXOTIC), target=st.sampled_from(["pixels", "latents", "token_ids"]), batch=st.integers(1, 2))
def test_exotic_tensors_work_like_dense_ones_or_raise(model, kind, target, batch):
    video = clip(batch, 3, 5, 16, 16, seed=batch)
    if batch == 2:
        video[1] = video[0]  # so that "expanded" (a stride-0 batch) means the same clip
    with torch.inference_mode():
        enc = model.encode(video)
        reference = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
    valid = kind in ("dense", "non_contiguous", "channels_last", "requires_grad", "expanded", "float64")
    if target == "token_ids" and kind in ("float64", "requires_grad"):
        valid = False  # float ids (requires_grad needs a float tensor)
    outcome = None
    try:
        if target == "pixels":
            with torch.no_grad():
                got = model.encode(make_exotic(video, kind))
                out = model.decode(token_ids=got.token_ids, output_shape=got.input_shape).sample
            # Another memory layout may round differently in the convolutions; the latent must agree closely.
            assert torch.allclose(got.continuous_latents, enc.continuous_latents, atol=1e-4)
        elif target == "latents":
            with torch.no_grad():
                out = model.decode(latents=make_exotic(enc.latents.clone(), kind), output_shape=enc.input_shape).sample
            assert torch.allclose(out.float(), reference, atol=1e-4), "a different memory layout must not change the result"
        else:
            with torch.no_grad():
                out = model.decode(token_ids=[make_exotic(t, kind) for t in enc.token_ids], output_shape=enc.input_shape).sample
            assert torch.allclose(out.float(), reference, atol=1e-4)
        assert out.shape == reference.shape and torch.isfinite(out).all()
    except Exception as error:  # noqa: BLE001
        outcome = error
        assert_typed(error, InvalidInputError)
    record(f"exotic.{target}.{kind}", outcome)
    assert (outcome is None) == valid, f"{target} {kind}: {outcome!r}"


# ============================================================================= 6. bfloat16 / float16 loading
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cls", [PyraTokModel, AutoencoderPyraTok])
def test_half_precision_loading_keeps_lapq_in_float32_and_round_trips(model_dir, cls, dtype):
    loaded = cls.from_pretrained(model_dir, torch_dtype=dtype)
    assert all(p.dtype == torch.float32 for p in loaded.lapq.parameters())
    assert next(loaded.backbone.parameters()).dtype == dtype
    with torch.inference_mode():
        enc = loaded.encode(clip(1, 3, 5, 16, 16))
        video = loaded.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
    assert video.shape == (1, 3, 5, 16, 16) and video.dtype == dtype and torch.isfinite(video).all()
    reference = PyraTokModel.from_pretrained(model_dir)
    full = reference.state_dict()
    assert all(torch.equal(t, full[k]) for k, t in loaded.state_dict().items() if k.startswith("lapq."))  # not rounded via bf16


def test_a_model_cast_with_to_says_how_to_fix_it():
    cast = tiny().to(torch.bfloat16)
    with pytest.raises(InvalidInputError, match="lapq.float"):
        cast.encode(clip(1, 3, 1, 8, 8))
    cast.lapq.float()
    with torch.inference_mode():
        enc = cast.encode(clip(1, 3, 1, 8, 8))
        assert torch.isfinite(cast.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample).all()
