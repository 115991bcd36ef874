"""Convert the authors' released PyraTok checkpoint into this package's format.

The release (Hub ``onkarsus13/PyraTok``, folder ``vae/``) is a diffusers ``AutoencoderKLPyraTok``: a Wan 2.1
VAE whose final 16-channel latent is quantized by ``lapq_num_quantizers`` residual sign-quantization stages
(outputs scaled by 2^-i), each with an optional text cross-attention. ``docs/_research_release_layout.md``
lists its exact keys, config and forward; ``docs/converting-release.md`` is the user guide.

>>> from pyratok_hf.convert_release import convert_release
>>> report = convert_release("path/or/hub-id", "pyratok-release")       # reads <src>/vae by default
>>> model = PyraTokModel.from_pretrained("pyratok-release")             # layout="release"

Command line: ``pyratok convert-release SRC OUT`` or ``pyratok-convert-release SRC OUT``.

What the conversion does:

* config: :meth:`PyraTokConfig.from_preset("release", ...)` with the release's Wan fields and ``lapq_*`` values
  (:func:`release_config_to_pyratok`);
* weights: a fixed renaming (:func:`map_release_key`); the ``bitmask``/``codebook`` buffers are checked against
  the config and dropped (ours never builds a 2^K table); our keys without a release counterpart (the
  alignment heads, and ``text_proj`` when the file has no ``lapq_text_mlp``) keep their fresh initialisation
  and are listed in ``conversion_report.json``; unknown or wrongly shaped release keys are refused;
* a numerical check: a random latent goes through :func:`release_quantizer_reference` (a transcription of
  the release quantizer) and through our ``lapq``; ids (after bit-order conversion) and the quantized latent
  must agree exactly, else nothing is written.

Token ids: the release packs channel 0 as the MOST significant bit. Converted models keep that order
(``config.id_bit_order="msb"``, the default of ``layout="release"``), so their ids equal the release's and its
token files and priors work unchanged. This package's own pyramid models use the least significant order
(bit k = channel k); :func:`release_ids_to_ours` / :func:`our_ids_to_release` reverse the K bits between the two.

A checkpoint built without text dims (the release code's default: ``lapq_text_embed_dim=None``) still carries
each stage's cross-attention and norms, which the release never uses (its text attention is a no-op, see
below, and it has no text path without text dims): they are dropped and listed in the report.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import math
import os
import re
import sys
from dataclasses import asdict, dataclass, field

import torch

from .configuration_pyratok import WAN21_VAE_CONFIG, PyraTokConfig
from .errors import CheckpointError, ConfigError, InvalidInputError, PyraTokError

logger = logging.getLogger(__name__)

RELEASE_CLASS_NAME = "AutoencoderKLPyraTok"
RELEASE_WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
RELEASE_INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
PICKLE_WEIGHTS_NAMES = ("diffusion_pytorch_model.bin", "diffusion_pytorch_model.pt", "pytorch_model.bin")
REPORT_NAME = "conversion_report.json"

BACKBONE_PREFIXES = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")
# Per-stage release module -> our module inside ``lapq.levels.{i}``.
_LAYER_RENAMES = (
    ("text_proj.", "text_to_code.0."),
    ("text_context_norm.", "text_to_code.1."),
    ("query_norm.", "text_attention.norm."),
    ("cross_attn.", "text_attention.attn."),
)
_LAYER_KEY = re.compile(r"^lapq_quantizer\.layers\.(\d+)\.(.+)$")
_TEXT_MLP_KEY = re.compile(r"^lapq_text_mlp\.([02])\.(weight|bias)$")
_DROPPED_BUFFERS = ("bitmask", "codebook")
# Release config keys that only matter for training the release (not for its forward in eval).
_TRAINING_ONLY_KEYS = ("lapq_quantize_dropout", "lapq_quantize_dropout_cutoff_index", "lapq_quantize_dropout_multiple_of")
_RELEASE_TEXT_SCALE_NOTE = (
    "the release config asks for lapq_text_condition_scale={scale}, but the release quantizer stage sets "
    "text_condition_scale = 0.0 in __init__ and ignores the argument, so its text attention is a no-op; the "
    "converted model uses text_condition_scale=0.0 to compute exactly what the release computes."
)


# ----------------------------------------------------------------------------- bit order
def _check_ids(ids, bits: int) -> torch.Tensor:
    """``ids`` as an int64 tensor of K-bit ids, or :class:`InvalidInputError`."""
    if not isinstance(bits, int) or not 1 <= bits <= 64:
        raise InvalidInputError(f"bits must be an integer in [1, 64], got {bits!r}.")
    as_int = isinstance(ids, int) and not isinstance(ids, bool)
    tensor = torch.tensor(ids, dtype=torch.int64) if as_int else ids
    if not torch.is_tensor(tensor) or tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise InvalidInputError(f"token ids must be an integer tensor (torch.long) or int, got {getattr(tensor, 'dtype', type(ids).__name__)}.")
    tensor = tensor.to(torch.int64)
    if bits < 64 and tensor.numel():
        low, high = int(tensor.min()), int(tensor.max())
        if low < 0 or high >= 2**bits:
            raise InvalidInputError(
                f"token ids must lie in [0, 2^{bits} - 1] for {bits}-bit codes, got values in [{low}, {high}] "
                "(the release marks dropped quantizer stages with -1: there is no code to convert)."
            )
    return tensor


def _reverse_bits(ids, bits: int):
    """Reverse the lowest ``bits`` bits of int64 ids (an involution), for tensors or Python ints."""
    as_int = isinstance(ids, int) and not isinstance(ids, bool)
    tensor = _check_ids(ids, bits)
    positions = torch.arange(bits, dtype=torch.int64, device=tensor.device)
    bit_values = torch.bitwise_right_shift(tensor.unsqueeze(-1), positions) & 1
    # Disjoint bits: the int64 sum is an OR, and wraps exactly like the 64-bit pattern for bit 63.
    reversed_ids = torch.bitwise_left_shift(bit_values, bits - 1 - positions).sum(-1)
    return int(reversed_ids) if as_int else reversed_ids


def release_ids_to_ours(ids, bits: int):
    """Release token ids (channel 0 = most significant bit) -> this package's ids (channel 0 = least significant).

    ``ids``: an integer tensor of any shape or a Python int; ``bits``: K (16 for the release). Works for K up
    to 64 (ours then uses the sign bit, so ids may be negative).
    """
    return _reverse_bits(ids, bits)


def our_ids_to_release(ids, bits: int):
    """This package's token ids -> the release's bit order (the inverse of :func:`release_ids_to_ours`)."""
    return _reverse_bits(ids, bits)


def release_indices_to_token_ids(indices: torch.Tensor, bits: int, id_bit_order: str = "msb") -> tuple[torch.Tensor, ...]:
    """The release's stacked indices ``[B, T, H, W, Q]`` -> ``token_ids``: one ``[B, T, H, W]`` per level.

    ``id_bit_order`` is the target model's ``config.id_bit_order``: ``"msb"`` (a converted release model) keeps
    the ids, ``"lsb"`` reverses their bits.
    """
    if not torch.is_tensor(indices) or indices.dim() != 5:
        raise InvalidInputError(f"release indices must be a tensor [B, T, H, W, num_quantizers], got {getattr(indices, 'shape', type(indices).__name__)}.")
    if id_bit_order not in ("msb", "lsb"):
        raise InvalidInputError(f"id_bit_order must be 'msb' or 'lsb', got {id_bit_order!r}.")
    if id_bit_order == "msb":
        indices = _check_ids(indices, bits)
        return tuple(indices[..., q] for q in range(indices.shape[-1]))
    return tuple(release_ids_to_ours(indices[..., q], bits) for q in range(indices.shape[-1]))


# ----------------------------------------------------------------------------- the release quantizer, as reference
def release_bitmask(bits: int) -> torch.Tensor:
    """The release's ``bitmask`` buffer: ``2 ** arange(C - 1, -1, -1)`` (channel 0 = most significant)."""
    return torch.bitwise_left_shift(torch.ones(bits, dtype=torch.int64), torch.arange(bits - 1, -1, -1, dtype=torch.int64))


def release_codebook(bits: int) -> torch.Tensor:
    """The release's ``codebook`` buffer ``[2^C, C]``: row k is the ±1 pattern of k, most significant bit first."""
    if bits > 20:
        raise InvalidInputError("the release codebook has 2^C rows; refusing to build it for C > 20.")
    code_ids = torch.arange(2**bits, dtype=torch.int64)
    return ((code_ids[:, None] & release_bitmask(bits)[None, :]) > 0).float() * 2.0 - 1.0


@torch.no_grad()
def release_quantizer_reference(latent: torch.Tensor, num_quantizers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The release's ``ResidualLaPQunatizer3D.forward`` in eval mode, with its (no-op) text attention.

    Stage i sign-quantizes the *unscaled* residual (0 -> +1), its output is scaled by 2^-i, and the scaled
    output is detached before it is subtracted from the residual. Returns ``(quantized [B, C, T, H, W],
    indices [B, T, H, W, Q])`` with the release's bit order.
    """
    bitmask = release_bitmask(latent.shape[1]).view(1, -1, 1, 1, 1)
    residual = latent
    quantized = latent.new_zeros(latent.shape)
    indices = []
    for stage in range(num_quantizers):
        signs = torch.where(residual >= 0, residual.new_ones(()), -residual.new_ones(()))
        straight_through = signs + (residual - residual.detach())
        scaled = straight_through * latent.new_tensor(2.0**-stage)
        residual = residual - scaled.detach()
        quantized = quantized + scaled
        indices.append(((signs > 0).to(torch.long) * bitmask).sum(dim=1))
    return quantized, torch.stack(indices, dim=-1)


# ----------------------------------------------------------------------------- config
def _largest_head_count(width: int, limit: int = 8) -> int:
    """The release's ``_pick_num_heads``: the largest divisor of ``width`` that is at most ``limit``."""
    return max(h for h in range(1, min(limit, width) + 1) if width % h == 0)


def _wan_fields() -> list[str]:
    from diffusers import AutoencoderKLWan

    names = list(inspect.signature(AutoencoderKLWan.__init__).parameters)
    return [n for n in names if n not in ("self", "latents_mean", "latents_std")]


def release_codebook_bits(release_config: dict) -> int:
    bits = release_config.get("lapq_codebook_dim")
    num_codes = release_config.get("lapq_num_codes")
    if bits is None:
        if not num_codes:
            raise CheckpointError("the release config has neither lapq_codebook_dim nor lapq_num_codes.")
        bits = int(round(math.log2(num_codes)))
    if num_codes is not None and num_codes != 2**bits:
        raise CheckpointError(f"release config: lapq_num_codes={num_codes} is not 2^lapq_codebook_dim (2^{bits}); the release only supports binary codebooks.")
    return int(bits)


def release_config_to_pyratok(release_config: dict, source: str | None = None) -> PyraTokConfig:
    """Build our ``layout="release"`` config from a release ``vae/config.json`` (as a dict)."""
    rc = {k: v for k, v in release_config.items() if not k.startswith("_")}
    wan = {name: rc[name] for name in _wan_fields() if name in rc}
    backbone_config = {**WAN21_VAE_CONFIG, **wan}
    z_dim = int(backbone_config["z_dim"])
    bits = release_codebook_bits(rc)
    if bits != z_dim:
        raise CheckpointError(
            f"release config: lapq_codebook_dim={bits} differs from z_dim={z_dim}; the release code cannot run such a "
            "model (its projection layer does not exist in torch), so there is nothing faithful to convert."
        )
    text_input = rc.get("lapq_text_input_dim")
    text_embed = rc.get("lapq_text_embed_dim")
    use_text = text_embed is not None
    fields: dict = dict(
        backbone_config=backbone_config,
        num_levels=int(rc.get("lapq_num_quantizers", 2)),  # the release code's default is 2
        codebook_bits=bits,
        use_text_conditioning=use_text,
        text_condition_scale=0.0,
        entropy_inv_temperature=float(rc.get("lapq_inv_temperature", 100.0)),
        commitment_weight=float(rc.get("lapq_commitment_weight", 0.25)),
        entropy_weight=float(rc.get("lapq_entropy_weight", 0.1)),
    )
    if rc.get("latents_mean") is not None and rc.get("latents_std") is not None:
        fields.update(latents_mean=list(rc["latents_mean"]), latents_std=list(rc["latents_std"]))
    if use_text:
        heads = rc.get("lapq_text_condition_heads") or _largest_head_count(bits)
        hidden = rc.get("lapq_text_mlp_hidden_dim") or max(2 * text_embed, text_embed)
        fields.update(
            text_hidden_size=int(text_input or text_embed),
            text_embed_dim=int(text_embed),
            text_proj_hidden_dim=int(hidden),
            num_attention_heads=int(heads),
        )
    unknown = sorted(
        k for k in rc
        if k not in wan and k not in ("latents_mean", "latents_std") and not k.startswith("lapq_") and k != "use_lapq_quantizer"
    )
    metadata = {
        "source": source,
        "release_class": release_config.get("_class_name"),
        "release_text_condition_scale": rc.get("lapq_text_condition_scale", 1.0),
        "release_use_lapq_quantizer": rc.get("use_lapq_quantizer", True),
        "note": _RELEASE_TEXT_SCALE_NOTE.format(scale=rc.get("lapq_text_condition_scale", 1.0)),
    }
    if unknown:
        metadata["ignored_config_keys"] = unknown
    fields["release_metadata"] = metadata
    try:
        return PyraTokConfig.from_preset("release", **fields)
    except ConfigError as err:
        raise CheckpointError(f"the release config cannot be expressed as a PyraTok config: {err}") from err


# ----------------------------------------------------------------------------- weights
def map_release_key(key: str) -> str | None:
    """Our parameter name for a release key; ``None`` for the dropped ``bitmask``/``codebook`` buffers.

    Raises :class:`CheckpointError` for a key that is not part of the release layout.
    """
    if key.startswith(BACKBONE_PREFIXES):
        return f"backbone.vae.{key}"
    match = _TEXT_MLP_KEY.match(key)
    if match:
        return f"text_proj.{match.group(1)}.{match.group(2)}"
    match = _LAYER_KEY.match(key)
    if match:
        level, rest = match.groups()
        if rest in _DROPPED_BUFFERS:
            return None
        for old, new in _LAYER_RENAMES:
            if rest.startswith(old):
                return f"lapq.levels.{level}.{new}{rest[len(old):]}"
    raise CheckpointError(f"unknown release key {key!r}: not part of the AutoencoderKLPyraTok layout this converter knows.")


@dataclass
class ConversionReport:
    """What :func:`convert_release` did; saved as ``conversion_report.json`` in the output folder."""

    source: str
    output: str | None = None
    converted_keys: int = 0
    source_dtypes: list[str] = field(default_factory=list)
    dropped_buffers: list[str] = field(default_factory=list)
    dropped_unused_keys: list[str] = field(default_factory=list)
    fresh_init_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    quantizer_check: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def convert_state_dict(release_state: dict[str, torch.Tensor], model) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Map a release state dict onto ``model`` (a freshly built release-layout model) and check it.

    Returns our full state dict (unmapped keys keep the model's fresh values) and a report. Raises
    :class:`CheckpointError` naming every unknown, misshaped or missing backbone key.
    """
    config = model.pyratok_config
    ours = model.state_dict()
    report = ConversionReport(source="")
    unknown, mismatched, bad_buffers = [], [], []
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in release_state.items():
        try:
            target = map_release_key(key)
        except CheckpointError:
            unknown.append(key)
            continue
        if target is None:
            if not _buffer_matches(key, tensor, config.codebook_bits):
                bad_buffers.append(key)
            report.dropped_buffers.append(key)
            continue
        if target not in ours and not config.use_text_conditioning and _is_unused_text_key(target):
            report.dropped_unused_keys.append(key)
        elif target not in ours:
            unknown.append(key)
        elif tuple(ours[target].shape) != tuple(tensor.shape):
            mismatched.append(f"{key} (release {tuple(tensor.shape)} vs ours {target} {tuple(ours[target].shape)})")
        else:
            mapped[target] = tensor
    problems = []
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)[:10]}" + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""))
    if mismatched:
        problems.append(f"shape mismatches {mismatched[:10]}")
    if bad_buffers:
        problems.append(
            f"buffers {sorted(bad_buffers)[:10]} do not match lapq_codebook_dim={config.codebook_bits} "
            "(expected bitmask = 2^(C-1)..1 and the ±1 codebook in that bit order)"
        )
    missing_backbone = sorted(k for k in ours if k.startswith("backbone.") and k not in mapped)
    if missing_backbone:
        problems.append(f"backbone weights missing from the checkpoint {missing_backbone[:10]} ({len(missing_backbone)} in all)")
    if problems:
        raise CheckpointError(
            "the checkpoint does not match the release layout described by its config.json: " + "; ".join(problems)
            + ". Is this the vae/ folder of the PyraTok release, with its own config.json?"
        )
    state = dict(ours)
    for key, tensor in mapped.items():
        state[key] = tensor.to(dtype=ours[key].dtype)
    report.converted_keys = len(mapped)
    report.source_dtypes = sorted({str(t.dtype).replace("torch.", "") for t in release_state.values() if t.is_floating_point()})
    report.fresh_init_keys = sorted(k for k in ours if k not in mapped)
    if not any(k.startswith("text_proj.") for k in mapped) and config.use_text_conditioning:
        report.notes.append(
            "the checkpoint has no lapq_text_mlp.* weights (the release builds them only when use_lapq_quantizer is "
            "true and lapq_text_input_dim != lapq_text_embed_dim): text_proj keeps a fresh initialisation. This does "
            "not change tokens: text_condition_scale is 0, as in the release."
        )
    return state, report


def _is_unused_text_key(target: str) -> bool:
    """A stage's text attention / norms: built by the release even without text dims, never used by it."""
    return re.match(r"^lapq\.levels\.\d+\.(text_attention|text_to_code)\.", target) is not None


def _buffer_matches(key: str, tensor: torch.Tensor, bits: int) -> bool:
    if key.endswith("bitmask"):
        return tuple(tensor.shape) == (bits,) and torch.equal(tensor.to(torch.int64), release_bitmask(bits))
    if bits > 20 or tuple(tensor.shape) != (2**bits, bits):
        return False
    return torch.equal(tensor.float(), release_codebook(bits))


@torch.no_grad()
def check_quantizer_matches_release(model, seed: int = 0) -> dict:
    """Run a random latent through the release reference and our ``lapq``; they must agree exactly.

    Returns a summary dict; raises :class:`CheckpointError` on any difference.
    """
    config = model.pyratok_config
    generator = torch.Generator().manual_seed(seed)
    latent = torch.randn(2, config.latent_channels, 3, 4, 5, generator=generator) * 2.0
    latent = latent.to(model._device())
    ours_latent, levels = model.lapq(latent, [None] * config.num_levels)
    ref_latent, ref_indices = release_quantizer_reference(latent, config.num_levels)
    ref_ids = release_indices_to_token_ids(ref_indices, config.codebook_bits, config.id_bit_order)
    ids_equal = all(torch.equal(level.ids, ref) for level, ref in zip(levels, ref_ids))
    latent_equal = torch.equal(ours_latent, ref_latent)
    summary = {"latent_shape": list(latent.shape), "ids_equal": ids_equal, "quantized_latent_equal": latent_equal,
               "max_abs_latent_difference": float((ours_latent - ref_latent).abs().max())}
    if not (ids_equal and latent_equal):
        raise CheckpointError(f"the converted quantizer does not reproduce the release quantizer: {summary}. Please report this.")
    return summary


# ----------------------------------------------------------------------------- reading the source
def _looks_like_repo_id(text: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+", text)) and not os.path.exists(text)


def resolve_release_folder(src: str, subfolder: str | None = "vae", allow_pickle: bool = False, revision: str | None = None) -> str:
    """The local folder holding the release ``config.json`` and weights (downloading a Hub id if needed)."""
    src = os.fspath(src)
    if os.path.isdir(src):
        candidates = [os.path.join(src, subfolder)] if subfolder else []
        candidates.append(src)
        for folder in candidates:
            if os.path.isfile(os.path.join(folder, "config.json")):
                return folder
        raise CheckpointError(f"{src}: no config.json in {' or '.join(candidates)}; pass the folder that holds the release's vae/ (or use --subfolder).")
    if os.path.exists(src):
        raise CheckpointError(f"{src} is a file; pass the release folder (holding vae/config.json) or a Hub id.")
    if not _looks_like_repo_id(src):
        raise CheckpointError(f"{src} does not exist locally and is not a Hub id like 'owner/name'.")
    try:
        from huggingface_hub import snapshot_download

        prefix = f"{subfolder}/" if subfolder else ""
        patterns = [f"{prefix}config.json", f"{prefix}*.safetensors", f"{prefix}*.safetensors.index.json"]
        if allow_pickle:
            patterns += [f"{prefix}{name}" for name in PICKLE_WEIGHTS_NAMES]
        root = snapshot_download(repo_id=src, allow_patterns=patterns, revision=revision)
    except Exception as err:  # offline mode, no network, unknown repo, gated repo: one clear message
        raise CheckpointError(
            f"could not download {src!r} from the Hugging Face Hub ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
            "Offline? Download the repository elsewhere (e.g. `huggingface-cli download onkarsus13/PyraTok --include 'vae/*'`) "
            "and pass the local folder."
        ) from err
    return resolve_release_folder(root, subfolder, allow_pickle)


def load_release_checkpoint(folder: str, allow_pickle: bool = False) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read ``config.json`` and the weights of a release ``vae/`` folder (safetensors; pickle only if allowed)."""
    from .loading import load_safetensors_checked, read_json_object

    # The loading gate's checks: one JSON object, and safetensors headers checked before safetensors reads them.
    release_config = read_json_object(os.path.join(folder, "config.json"), what="release config.json", error=CheckpointError)
    load_file = load_safetensors_checked
    class_name = release_config.get("_class_name")
    has_lapq_fields = any(k.startswith("lapq_") for k in release_config)
    if class_name != RELEASE_CLASS_NAME and not has_lapq_fields:
        raise CheckpointError(
            f"{folder}/config.json describes {class_name!r}, not the PyraTok release ({RELEASE_CLASS_NAME}). For a plain "
            "Wan VAE use PyraTokModel.from_backbone(config, path) instead."
        )
    single = os.path.join(folder, RELEASE_WEIGHTS_NAME)
    index = os.path.join(folder, RELEASE_INDEX_NAME)
    if os.path.isfile(single):
        return release_config, load_file(single)
    if os.path.isfile(index):
        from .loading import check_safetensors_index

        state: dict[str, torch.Tensor] = {}
        for shard in check_safetensors_index(folder, RELEASE_INDEX_NAME):
            state.update(load_file(shard))
        return release_config, state
    pickled = [name for name in PICKLE_WEIGHTS_NAMES if os.path.isfile(os.path.join(folder, name))]
    if pickled and not allow_pickle:
        raise CheckpointError(
            f"{folder} has only pickled weights ({pickled[0]}). Loading pickle can run arbitrary code, so it is refused; "
            "pass --allow-pickle (allow_pickle=True) if you trust the source."
        )
    if pickled:
        logger.warning("loading pickled weights %s (allowed by allow_pickle)", pickled[0])
        state = torch.load(os.path.join(folder, pickled[0]), map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            raise CheckpointError(f"{folder}/{pickled[0]} is not a plain state dict of tensors.")
        return release_config, state
    raise CheckpointError(f"{folder} has no {RELEASE_WEIGHTS_NAME} (nor a sharded index); is this the release's vae/ folder?")


# ----------------------------------------------------------------------------- conversion
def build_converted_model(release_config: dict, release_state: dict[str, torch.Tensor], source: str = ""):
    """The converted :class:`~pyratok_hf.PyraTokModel` (in memory) and its report; nothing is written."""
    from .modeling_pyratok import PyraTokModel

    config = release_config_to_pyratok(release_config, source=source)
    model = PyraTokModel(config).eval()
    state, report = convert_state_dict(release_state, model)
    model.load_state_dict(state, strict=True)
    report.source = source
    report.quantizer_check = check_quantizer_matches_release(model)
    report.notes.append(_RELEASE_TEXT_SCALE_NOTE.format(scale=release_config.get("lapq_text_condition_scale", 1.0)))
    if release_config.get("use_lapq_quantizer") is False:
        report.notes.append(
            "the release config has use_lapq_quantizer=false (a later Hub edit): the release's default forward then "
            "skips quantization. The converted model always tokenizes; its decoder is the same."
        )
    ignored = [k for k in _TRAINING_ONLY_KEYS if release_config.get(k)]
    if ignored:
        report.notes.append(f"training-only release settings ignored: {ignored}.")
    return model, report


def convert_release(
    src: str,
    out: str,
    subfolder: str | None = "vae",
    allow_pickle: bool = False,
    overwrite: bool = False,
    revision: str | None = None,
) -> ConversionReport:
    """Convert the release at ``src`` (local folder or Hub id) into a PyraTok folder ``out``, atomically.

    The folder is first written next to ``out`` under a temporary name, re-loaded and compared, then renamed
    into place, so ``out`` is either absent/unchanged or complete.
    """
    out = os.path.abspath(os.fspath(out))
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)) and not overwrite:
        raise CheckpointError(f"{out} already exists and is not empty; choose another folder or pass --overwrite.")
    folder = resolve_release_folder(src, subfolder, allow_pickle=allow_pickle, revision=revision)
    release_config, release_state = load_release_checkpoint(folder, allow_pickle=allow_pickle)
    model, report = build_converted_model(release_config, release_state, source=str(src))
    del release_state
    report.output = out
    from .utils_io import atomic_directory
    from .video_io import atomic_write_json

    # At every moment `out` is the old complete folder or the new one; a failed check leaves it untouched.
    with atomic_directory(out) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        _check_saved_folder(staging, model)
        atomic_write_json(report.to_dict(), os.path.join(staging, REPORT_NAME))
    logger.info("converted %s -> %s (%d tensors; %d keys of ours keep their fresh initialisation)", src, out, report.converted_keys, len(report.fresh_init_keys))
    return report


def _check_saved_folder(folder: str, model) -> None:
    from .modeling_pyratok import PyraTokModel

    reloaded = PyraTokModel.from_pretrained(folder)
    original = model.state_dict()
    different = [k for k, v in reloaded.state_dict().items() if not torch.equal(v, original[k])]
    if different:
        raise CheckpointError(f"the converted folder does not reload identically (e.g. {different[:5]}); nothing was written.")


# ----------------------------------------------------------------------------- command line
def add_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("src", help="the release: a local folder (holding vae/) or a Hub id such as onkarsus13/PyraTok")
    parser.add_argument("out", help="output folder for the converted PyraTok model (created atomically)")
    parser.add_argument("--subfolder", default="vae", help="subfolder of SRC with config.json and weights (default: vae; '' for none)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) when SRC is a Hub id")
    parser.add_argument("--allow-pickle", action="store_true", help="accept pickled .bin/.pt weights (can run code: only for trusted files)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it already exists")
    return parser


def run(args: argparse.Namespace) -> int:
    report = convert_release(
        args.src, args.out, subfolder=args.subfolder or None, allow_pickle=args.allow_pickle,
        overwrite=args.overwrite, revision=args.revision,
    )
    print(f"converted {report.converted_keys} tensors from {report.source} into {report.output}")
    print(f"quantizer check against the release reference: ids and quantized latent identical ({report.quantizer_check['latent_shape']})")
    if report.fresh_init_keys:
        shown = ", ".join(report.fresh_init_keys[:8]) + (" ..." if len(report.fresh_init_keys) > 8 else "")
        print(f"{len(report.fresh_init_keys)} keys have no release counterpart and keep their fresh init: {shown}")
    for note in report.notes:
        print(f"note: {note}")
    print(f"details: {os.path.join(report.output, REPORT_NAME)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pyratok-convert-release`` console script."""
    parser = add_args(argparse.ArgumentParser(prog="pyratok-convert-release", description="Convert the authors' released PyraTok checkpoint (diffusers AutoencoderKLPyraTok) to this package's format."))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except PyraTokError as err:
        print(f"pyratok-convert-release: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
