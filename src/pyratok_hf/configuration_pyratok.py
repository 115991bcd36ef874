"""Configuration of the PyraTok tokenizer (transformers ``PretrainedConfig``, ``model_type="pyratok"``).

The defaults reproduce the paper's model (``pyratok-l``): a Wan 2.1/2.2-architecture causal video VAE
(8x spatial, 4x causal temporal, 16 latent channels) with four LaPQ levels fed by lateral taps from the four
encoder stages, one shared 16-bit lookup-free codebook, and the paper's loss weights. Named presets live in
:data:`PRESETS` and are built with :meth:`PyraTokConfig.from_preset`.

Where the paper is silent (see ``docs/architecture.md``) the choice made here is a field, so both readings can
be trained: e.g. ``layout="release"`` reproduces the authors' public checkpoint (residual LFQ on the final
latent, no lateral taps, outputs scaled by 2^-l).
"""

# No ``from __future__ import annotations``: huggingface_hub's @strict checks fields against their real annotations.
import copy
import functools
import math
from typing import Any

from huggingface_hub.dataclasses import strict
from huggingface_hub.errors import StrictDataclassError
from transformers import PretrainedConfig

from .errors import ConfigError

# The Wan 2.1 VAE (also shipped inside Wan2.2-A14B) that the paper and release build on.
WAN21_VAE_CONFIG: dict[str, Any] = {
    "base_dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
    "dropout": 0.0,
    "is_residual": False,
    "in_channels": 3,
    "out_channels": 3,
    "scale_factor_spatial": 8,
    "scale_factor_temporal": 4,
}
WAN21_LATENTS_MEAN = [
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
]  # fmt: skip
WAN21_LATENTS_STD = [
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
]  # fmt: skip

TINY_VAE_CONFIG: dict[str, Any] = {
    "base_dim": 16,
    "z_dim": 16,
    "dim_mult": [1, 2, 2, 2],
    "num_res_blocks": 1,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
    "dropout": 0.0,
    "is_residual": False,
    "in_channels": 3,
    "out_channels": 3,
    "scale_factor_spatial": 8,
    "scale_factor_temporal": 4,
}

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"

#: More levels than this would shrink any video below one token per level; also bounds the default lists.
MAX_LEVELS = 32

# Field kinds checked by ``PyraTokConfig.validate`` (a wrong type must be a ConfigError, not a TypeError later).
_POSITIVE_INT_FIELDS = ("level_hidden_dim", "text_hidden_size", "text_max_length", "text_embed_dim", "num_attention_heads", "projection_dim", "max_pixels_untiled")
_NON_NEGATIVE_FIELDS = (
    "recon_weight", "codebook_weight", "ar_weight", "drift_weight", "l1_weight", "ssim_weight", "perceptual_weight", "motion_weight",
    "commitment_weight", "entropy_weight", "sample_entropy_weight", "codebook_entropy_weight", "level_kl_weight",
    "token_text_weight", "codebook_text_weight", "contrastive_weight", "input_value_tolerance",
)  # fmt: skip
_POSITIVE_FIELDS = ("entropy_inv_temperature", "contrastive_temperature", "drift_temperature")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_backbone_fields(backbone_config: dict, stages: int) -> None:
    """The other ``AutoencoderKLWan`` arguments: wrong types there are bare TypeErrors inside diffusers."""
    for key in ("in_channels", "out_channels"):
        if key in backbone_config and not (_is_int(backbone_config[key]) and backbone_config[key] >= 1):
            raise ConfigError(f"backbone_config[{key!r}] must be a positive integer, got {backbone_config[key]!r}.")
    for key in ("decoder_base_dim", "patch_size"):
        if backbone_config.get(key) is not None and not (_is_int(backbone_config[key]) and backbone_config[key] >= 1):
            raise ConfigError(f"backbone_config[{key!r}] must be a positive integer or null, got {backbone_config[key]!r}.")
    attn = backbone_config.get("attn_scales", [])
    if not isinstance(attn, (list, tuple)) or not all(_is_number(v) and v > 0 for v in attn):
        raise ConfigError(f"backbone_config['attn_scales'] must be a list of positive numbers (e.g. [] or [0.25]), got {attn!r}.")
    if "temperal_downsample" in backbone_config:
        down = backbone_config["temperal_downsample"]
        if not isinstance(down, (list, tuple)) or not all(isinstance(v, bool) for v in down) or len(down) < stages - 1:
            raise ConfigError(
                f"backbone_config['temperal_downsample'] must be a list of {stages - 1} booleans (one per downsampling, e.g. "
                f"[false, true, true]), got {down!r}."
            )
    dropout = backbone_config.get("dropout", 0.0)
    if not (_is_number(dropout) and 0 <= dropout < 1):
        raise ConfigError(f"backbone_config['dropout'] must be a number in [0, 1), got {dropout!r}.")
    if "is_residual" in backbone_config and not isinstance(backbone_config["is_residual"], bool):
        raise ConfigError(f"backbone_config['is_residual'] must be true or false, got {backbone_config['is_residual']!r}.")
    for key in ("latents_mean", "latents_std"):
        value = backbone_config.get(key)
        if value is not None and (not isinstance(value, (list, tuple)) or not all(_is_number(v) for v in value)):
            raise ConfigError(f"backbone_config[{key!r}] must be a list of numbers, got {value!r}.")


def _check_structured_fields(backbone_config, num_levels) -> None:
    """Checks that must run before ``__post_init__`` derives defaults from these fields, so a bad value is a
    :class:`ConfigError` instead of an AttributeError / TypeError / MemoryError while the defaults are built."""
    if backbone_config is not None:
        if not isinstance(backbone_config, dict):
            raise ConfigError(f"backbone_config must be a dict of AutoencoderKLWan arguments, got {type(backbone_config).__name__}.")
        for key in ("base_dim", "z_dim", "num_res_blocks", "scale_factor_spatial", "scale_factor_temporal"):
            if key in backbone_config and not (_is_int(backbone_config[key]) and backbone_config[key] >= 1):
                raise ConfigError(f"backbone_config[{key!r}] must be a positive integer, got {backbone_config[key]!r}.")
        dim_mult = backbone_config.get("dim_mult", [1])
        if not isinstance(dim_mult, (list, tuple)) or not dim_mult or not all(_is_int(m) and m >= 1 for m in dim_mult):
            raise ConfigError(f"backbone_config['dim_mult'] must be a non-empty list of positive integers, got {dim_mult!r}.")
        _check_backbone_fields(backbone_config, len(dim_mult) if "dim_mult" in backbone_config else 4)
    if not _is_int(num_levels) or not 1 <= num_levels <= MAX_LEVELS:
        raise ConfigError(f"num_levels must be an integer in [1, {MAX_LEVELS}], got {num_levels!r}.")


@strict
class PyraTokConfig(PretrainedConfig):
    r"""Configuration of :class:`~pyratok_hf.PyraTokModel` and :class:`~pyratok_hf.AutoencoderPyraTok`.

    Args:
        backbone_config (`dict`): keyword arguments of diffusers' ``AutoencoderKLWan``.
        backbone_pretrained (`str`, *optional*): a local folder or Hub id of a saved diffusers Wan VAE used to
            initialise the backbone when the model is built with :meth:`PyraTokModel.from_backbone`.
        backbone_subfolder (`str`, *optional*, defaults to ``"vae"``): subfolder of ``backbone_pretrained``.
        normalize_latents (`bool`): quantize ``(z - latents_mean) / latents_std`` instead of the raw latent.
        layout (`str`): ``"pyramid"`` (the paper: lateral taps, one token grid per level) or ``"release"``
            (the authors' public checkpoint: residual LFQ on the final latent, no taps).
        num_levels (`int`): number of LaPQ levels L (paper default 4), ordered coarse to fine.
        lateral_stages (`list[int]`): encoder stage (0 = shallowest) that feeds each level, coarse to fine.
            The deepest, most semantic stage feeds the coarsest level. Empty for no lateral taps.
        level_spatial_downsample (`list[int]`): each level's token grid is the latent grid divided (ceil) by
            this factor in height and width.
        level_temporal_downsample (`list[int]`): the same along time (1 keeps frame-level latent resolution).
        level_scales (`list[float]`): multiplier on each level's contribution to the latent (release: 2^-l).
        level_hidden_dim (`int`): width of each level block's Conv3d / attention.
        level_fuse_grid (`str`): where a level's fuse convs run. ``"level"`` (earlier releases): the inputs are
            average-pooled onto the level's token grid first, so a coarse token only sees pooled features.
            ``"latent"``: the convs run on the latent grid and their output is pooled onto the level's grid, so
            a coarse token can carry what a small region shows (a small object's motion) instead of an average
            that erases it. The parameters are the same in both modes.
        codebook_bits (`int`): K, bits per token; one binary codebook of 2^K codes shared by all levels.
            Nothing of size 2^K is ever allocated, so K may be up to 64.
        upsample_mode (`str`): how a level's code grid is resized to the latent grid (``"nearest"`` or
            ``"trilinear"``).
        detach_residual (`bool`): stop gradients through the residual chain between levels (the release does).
        use_text_conditioning (`bool`): cross-attend level features to the text embedding.
        text_encoder_name_or_path (`str`): any transformers text model (``AutoModel`` + ``AutoTokenizer``).
        text_hidden_size (`int`): hidden size of that text model.
        text_hidden_layer (`int`): which hidden state of the text model to use (-1 = last).
        text_pooling (`str`): ``"mean"`` or ``"cls"``, used for the pooled text vector.
        text_max_length (`int`): prompts are truncated to this many text tokens (with a warning).
        text_embed_dim (`int`): width of the projected text states that all levels attend to.
        text_proj_hidden_dim (`int`, *optional*): hidden width of the two-layer text projection MLP
            (``text_hidden_size -> text_proj_hidden_dim -> text_embed_dim``); ``None`` uses
            ``4 * text_embed_dim``. The release checkpoint uses 1024 (its ``lapq_text_mlp_hidden_dim``).
        num_attention_heads (`int`): heads of each level's text cross-attention.
        text_condition_scale (`float`): residual scale of the text cross-attention output.
        projection_dim (`int`): width of the shared video-text space used for zero-shot tasks.
        video_projection_hidden_dim (`int`, *optional*): ``None`` maps each token's ±1 code to the shared space
            with one linear layer (then the clip feature is a linear function of the bit averages); an integer
            uses a per-token MLP ``codebook_bits -> hidden -> hidden -> projection_dim`` (GELU), applied before
            pooling so clip, frame and token features stay averages of the same per-token features. The
            bundled pyratok-tiny uses 256 (docs/zero-shot.md: linear heads stay near chance).
        entropy_inv_temperature (`float`): per-bit probabilities are ``sigmoid(2 * inv_temperature * u)``.
        recon_weight, codebook_weight, ar_weight, drift_weight (`float`): the paper's top-level weights
            (2.5, 2.5, 1.5, 0.6).
        l1_weight, ssim_weight, perceptual_weight (`float`): terms of the reconstruction loss.
        motion_weight (`float`): weight of an extra L1 over the moving pixels only (``losses.motion_weighted_l1``;
            0 = off, the paper's loss). For data where small moving objects carry the meaning (the procedural
            corpus, text-to-video): the T2V tokenizer is trained with 4.
        commitment_weight, entropy_weight, level_kl_weight, token_text_weight, codebook_text_weight,
        contrastive_weight (`float`): terms of the codebook loss (Eq. 2 plus a contrastive video-text term).
        sample_entropy_weight, codebook_entropy_weight (`float`): the two halves of the entropy term.
        contrastive_temperature (`float`): InfoNCE temperature of the contrastive term.
        drift_temperature (`float`): softmax temperature of the drift KL.
        input_value_tolerance (`float`): pixel values in ``[-1 - tol, 1 + tol]`` are clamped with a warning;
            values beyond raise :class:`~pyratok_hf.errors.InvalidInputError`.
        max_pixels_untiled (`int`): encode/decode of more pixels per frame than this without tiling is tiled
            automatically (``auto_tiling=True``) or refused.
        causal_window_frames (`int`, *optional*): run the causal backbone over consecutive, independent windows of
            this many frames (``1 + 4k``) instead of one causal pass over the whole clip. ``None`` (the paper and
            Wan) is one pass. A backbone trained only on short clips drifts past its training length (its causal
            receptive field has never seen more history); windows of that length keep every frame in
            distribution at the price of one extra intra latent frame per window. Needs per-frame levels
            (``level_temporal_downsample`` all 1).
        id_bit_order (`str`, *optional*): how a token's K signs pack into its integer id: ``"lsb"`` (channel k is
            bit k) or ``"msb"`` (channel 0 is the most significant bit, the authors' release, so their token files
            and priors read our ids unchanged). ``None`` picks ``"msb"`` for ``layout="release"`` and ``"lsb"``
            otherwise.
        norm_upcast (`bool`): Wan's RMS norms normalise in float32 when the backbone runs in fp16 / bf16 (diffusers,
            the default). ``False`` normalises in the backbone's own dtype, as the authors' release code does, so
            bf16 runs compute what the release computes (an outside check found 90-95 % of ids equal with the upcast).
            No effect in float32. The ``release`` preset sets ``False``.
    """

    model_type = "pyratok"

    # Typed fields (transformers' dataclass config, checked by huggingface_hub's @strict on every assignment);
    # ``None`` defaults are filled in ``__post_init__`` from the layout and the number of levels.
    backbone_config: dict | None = None
    backbone_pretrained: str | None = None
    backbone_subfolder: str | None = "vae"
    normalize_latents: bool = True
    latents_mean: list[int | float] | tuple[int | float, ...] | None = None
    latents_std: list[int | float] | tuple[int | float, ...] | None = None
    layout: str = "pyramid"
    num_levels: int = 4
    lateral_stages: list[int] | tuple[int, ...] | None = None
    level_spatial_downsample: list[int] | tuple[int, ...] | None = None
    level_temporal_downsample: list[int] | tuple[int, ...] | None = None
    level_scales: list[int | float] | tuple[int | float, ...] | None = None
    level_hidden_dim: int = 256
    level_fuse_grid: str = "level"
    codebook_bits: int = 16
    upsample_mode: str = "nearest"
    detach_residual: bool = False
    use_text_conditioning: bool = True
    text_encoder_name_or_path: str | None = "Qwen/Qwen2.5-VL-3B-Instruct"
    text_hidden_size: int = 2048
    text_hidden_layer: int = -1
    text_pooling: str = "mean"
    text_max_length: int = 77
    text_embed_dim: int = 256
    text_proj_hidden_dim: int | None = None
    num_attention_heads: int = 8
    text_condition_scale: int | float = 1.0
    projection_dim: int = 256
    video_projection_hidden_dim: int | None = None
    entropy_inv_temperature: int | float = 10.0
    recon_weight: int | float = 2.5
    codebook_weight: int | float = 2.5
    ar_weight: int | float = 1.5
    drift_weight: int | float = 0.6
    l1_weight: int | float = 1.0
    ssim_weight: int | float = 1.0
    perceptual_weight: int | float = 1.0
    motion_weight: int | float = 0.0
    commitment_weight: int | float = 0.25
    entropy_weight: int | float = 0.1
    sample_entropy_weight: int | float = 1.0
    codebook_entropy_weight: int | float = 1.0
    level_kl_weight: int | float = 0.05
    token_text_weight: int | float = 0.05
    codebook_text_weight: int | float = 0.05
    contrastive_weight: int | float = 0.2
    contrastive_temperature: int | float = 0.07
    drift_temperature: int | float = 1.0
    input_value_tolerance: int | float = 0.05
    max_pixels_untiled: int = 1280 * 736
    auto_tiling: bool = True
    causal_window_frames: int | None = None
    id_bit_order: str | None = None
    norm_upcast: bool = True

    def __post_init__(self, **kwargs):
        # Before anything is derived from them: a bad backbone dict or level count must be a ConfigError here,
        # not an AttributeError / MemoryError while the defaults below are built.
        _check_structured_fields(self.backbone_config, self.num_levels)
        self.backbone_config = copy.deepcopy(self.backbone_config) if self.backbone_config is not None else dict(WAN21_VAE_CONFIG)
        z_dim = int(self.backbone_config.get("z_dim", 16))
        if self.latents_mean is None or self.latents_std is None:
            if z_dim == 16 and self.backbone_config.get("base_dim", 96) == 96:
                default_mean, default_std = list(WAN21_LATENTS_MEAN), list(WAN21_LATENTS_STD)
            else:
                default_mean, default_std = [0.0] * z_dim, [1.0] * z_dim
            # Fill only what was not given: a user's mean (or std) is never silently replaced.
            self.latents_mean = default_mean if self.latents_mean is None else self.latents_mean
            self.latents_std = default_std if self.latents_std is None else self.latents_std
        L, release = self.num_levels, self.layout == "release"
        if self.lateral_stages is None:
            self.lateral_stages = [] if release else list(range(L))[::-1]
        if self.level_spatial_downsample is None:
            self.level_spatial_downsample = [1] * L if release else [2 ** (L - 1 - i) for i in range(L)]
        if self.level_temporal_downsample is None:
            self.level_temporal_downsample = [1] * L
        if self.level_scales is None:
            self.level_scales = [2.0**-i for i in range(L)] if release else [1.0] * L
        for name in ("latents_mean", "latents_std", "lateral_stages", "level_spatial_downsample", "level_temporal_downsample", "level_scales"):
            setattr(self, name, list(getattr(self, name)))  # JSON round trips give lists
        if self.id_bit_order is None:
            self.id_bit_order = "msb" if release else "lsb"
        super().__post_init__(**kwargs)

    # ------------------------------------------------------------------ derived values
    @property
    def latent_channels(self) -> int:
        return int(self.backbone_config.get("z_dim", 16))

    @property
    def spatial_compression(self) -> int:
        return int(self.backbone_config.get("scale_factor_spatial", 8))

    @property
    def temporal_compression(self) -> int:
        return int(self.backbone_config.get("scale_factor_temporal", 4))

    @property
    def num_encoder_stages(self) -> int:
        return len(self.backbone_config.get("dim_mult", [1, 2, 4, 4]))

    @property
    def codebook_size(self) -> int:
        """2^K as a Python int (exact for any K; never used to allocate anything)."""
        return 2 ** int(self.codebook_bits)

    # ------------------------------------------------------------------ validators (@strict runs every validate_*)
    def validate_numbers(self) -> None:
        """Ranges of the scalar fields (their types are the annotations above)."""
        for name in _POSITIVE_INT_FIELDS:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}.")
        for name in _NON_NEGATIVE_FIELDS + _POSITIVE_FIELDS + ("text_condition_scale",):
            value = getattr(self, name)
            if not _is_number(value) or (name in _NON_NEGATIVE_FIELDS and value < 0) or (name in _POSITIVE_FIELDS and value <= 0):
                rule = "> 0" if name in _POSITIVE_FIELDS else ">= 0" if name in _NON_NEGATIVE_FIELDS else "finite"
                raise ConfigError(f"{name} must be a finite number {rule}, got {value!r}.")
        if not 1 <= self.codebook_bits <= 64:
            raise ConfigError(f"codebook_bits must be an integer in [1, 64] (ids are int64), got {self.codebook_bits!r}.")
        for name in ("text_proj_hidden_dim", "video_projection_hidden_dim"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer or None, got {getattr(self, name)!r}.")

    def validate_levels(self) -> None:
        """One entry per level in every per-level list, and lateral taps that exist in the encoder."""
        L = self.num_levels
        for name in ("level_spatial_downsample", "level_temporal_downsample", "level_scales"):
            value = getattr(self, name)
            if len(value) != L:
                raise ConfigError(f"{name} has {len(value)} entries but num_levels is {L}: give one per level.")
            if not all(_is_number(v) for v in value):
                raise ConfigError(f"{name} must be a list of numbers, got {value!r}.")
        for name in ("level_spatial_downsample", "level_temporal_downsample"):
            if any((not _is_int(f)) or f < 1 for f in getattr(self, name)):
                raise ConfigError(f"{name} must hold positive integers, got {getattr(self, name)}.")
        if self.lateral_stages and len(self.lateral_stages) != L:
            raise ConfigError(
                f"lateral_stages has {len(self.lateral_stages)} entries but num_levels is {L}: give one encoder "
                "stage per level, or an empty list for no lateral taps."
            )
        stages = self.num_encoder_stages
        bad = [s for s in self.lateral_stages if not (_is_int(s) and 0 <= s < stages)]
        if bad:
            raise ConfigError(f"lateral_stages {bad} do not exist: the backbone encoder has stages 0..{stages - 1}.")

    def validate_choices(self) -> None:
        """Fields that name one of a few options, and what the chosen layout requires."""
        for name, options in (("layout", ("pyramid", "release")), ("upsample_mode", ("nearest", "trilinear")),
                              ("level_fuse_grid", ("level", "latent")),
                              ("text_pooling", ("mean", "cls")), ("id_bit_order", ("lsb", "msb"))):  # fmt: skip
            if getattr(self, name) not in options:
                raise ConfigError(f"{name} must be one of {', '.join(repr(o) for o in options)}, got {getattr(self, name)!r}.")
        if self.layout == "release" and self.codebook_bits != self.latent_channels:
            raise ConfigError(
                "layout='release' quantizes the latent channels directly, so codebook_bits must equal the backbone's "
                f"z_dim ({self.latent_channels}), got {self.codebook_bits}."
            )
        attn_dim = self.latent_channels if self.layout == "release" else self.level_hidden_dim
        # (@strict runs validators in name order: a head count < 1 is validate_numbers' error, not a ZeroDivisionError)
        if self.use_text_conditioning and self.num_attention_heads >= 1 and attn_dim % self.num_attention_heads:
            raise ConfigError(
                f"the attention width ({attn_dim}) must be divisible by num_attention_heads ({self.num_attention_heads})."
            )

    def validate_latent_statistics(self) -> None:
        if not all(_is_number(v) for v in list(self.latents_mean) + list(self.latents_std)):
            raise ConfigError("latents_mean / latents_std must be lists of finite numbers.")
        if len(self.latents_mean) != self.latent_channels or len(self.latents_std) != self.latent_channels:
            raise ConfigError(
                f"latents_mean/latents_std need {self.latent_channels} values (the backbone's z_dim), got "
                f"{len(self.latents_mean)}/{len(self.latents_std)}."
            )
        if any(s <= 0 for s in self.latents_std):
            raise ConfigError("latents_std must be positive.")

    def validate_causal_windows(self) -> None:
        window = self.causal_window_frames
        if window is not None:
            ft = self.temporal_compression
            if window < 1 or (window - 1) % ft:
                raise ConfigError(f"causal_window_frames must be None or 1 + {ft}k frames (e.g. 17), got {window!r}.")
            if any(f != 1 for f in self.level_temporal_downsample):
                raise ConfigError(
                    "causal_window_frames needs per-frame levels (level_temporal_downsample all 1), got "
                    f"{self.level_temporal_downsample}: levels that pool latent frames would mix windows."
                )

    def validate_backbone(self) -> None:
        _check_structured_fields(self.backbone_config, self.num_levels)


    @property
    def ids_msb_first(self) -> bool:
        return self.id_bit_order == "msb"

    def causal_windows(self, num_frames: int) -> list[tuple[int, int]]:
        """``(start, stop)`` of each backbone pass over a clip of ``num_frames`` (padded) frames."""
        window = self.causal_window_frames
        if window is None or num_frames <= window:
            return [(0, num_frames)]
        return [(start, min(start + window, num_frames)) for start in range(0, num_frames, window)]

    def padded_num_frames(self, num_frames: int) -> int:
        """Frames after time padding: each causal pass needs ``1 + 4k`` frames (only the last one is ever short)."""
        ft, window = self.temporal_compression, self.causal_window_frames
        full = 0 if window is None else (num_frames // window) * window
        rest = num_frames - full
        return full + (rest + (-(rest - 1)) % ft if rest else 0)

    def latent_num_frames(self, num_frames: int) -> int:
        """Latent frames of a clip of ``num_frames`` frames (windows included)."""
        ft = self.temporal_compression
        return sum(1 + (stop - start - 1) // ft for start, stop in self.causal_windows(self.padded_num_frames(num_frames)))

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "PyraTokConfig":
        """Build a named preset (``pyratok-tiny``, ``pyratok-l`` or ``release``), with keyword overrides."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        kwargs = copy.deepcopy(PRESETS[name])
        kwargs.update(overrides)
        return cls(**kwargs)


def _as_config_error(method):
    """Re-raise @strict's field / validator errors as one :class:`ConfigError` naming the field."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except StrictDataclassError as err:
            cause = err.__cause__
            if isinstance(cause, ConfigError):
                raise cause from None
            field = getattr(err, "field", None)
            detail = str(cause) if cause is not None else str(err)
            raise ConfigError(f"{field}: {detail}" if field and field not in detail else detail) from err

    return wrapper


# validate() is what @strict runs after __init__ (and what callers run after editing fields).
PyraTokConfig.validate = _as_config_error(PyraTokConfig.validate)
PyraTokConfig.__init__ = _as_config_error(PyraTokConfig.__init__)


PRESETS: dict[str, dict[str, Any]] = {
    # Paper scale: Wan 2.1/2.2 VAE (base_dim 96, z_dim 16, dim_mult [1,2,4,4], 2 res blocks), 4 levels,
    # 16 bits, Qwen2.5-VL-3B text states (hidden 2048).
    "pyratok-l": {},
    # Trains on a 2-core CPU: a small Wan VAE with the same 8x/4x compression, MiniLM text encoder.
    "pyratok-tiny": {
        "backbone_config": dict(TINY_VAE_CONFIG),
        "level_hidden_dim": 64,
        "codebook_bits": 16,
        "text_encoder_name_or_path": MINILM_NAME,
        "text_hidden_size": 384,
        "text_max_length": 32,
        "text_embed_dim": 64,
        "num_attention_heads": 4,
        "projection_dim": 64,
    },
    # The authors' public checkpoint (onkarsus13/PyraTok): residual LFQ on the final 16-channel latent, no
    # lateral taps, outputs scaled by 2^-l, Qwen3 text states (hidden 2560) truncated to 10 tokens.
    "release": {
        "layout": "release",
        "normalize_latents": False,
        "codebook_bits": 16,
        "detach_residual": True,
        "upsample_mode": "nearest",
        "text_encoder_name_or_path": "Qwen/Qwen3-4B",
        "text_hidden_size": 2560,
        "text_hidden_layer": -4,
        "text_max_length": 10,
        "text_embed_dim": 256,
        "num_attention_heads": 2,
        "text_condition_scale": 0.0,
        "entropy_inv_temperature": 100.0,
        "commitment_weight": 0.5,
        "entropy_weight": 0.5,
        "norm_upcast": False,
    },
}
