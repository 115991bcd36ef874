"""``AutoencoderPyraTok``: the same tokenizer as a diffusers ``ModelMixin`` (for pipelines).

It shares every module and weight name with :class:`~pyratok_hf.PyraTokModel` through
:class:`~pyratok_hf.modeling_pyratok.PyraTokCore`. Each class saves in its own library's layout (this one: diffusers'
``config.json`` + ``diffusion_pytorch_model.safetensors``; ``PyraTokModel``: transformers' ``model.safetensors``),
both configs carry ``model_type="pyratok"``, and each class loads both layouts, so one folder loads in either.
Neither class builds the other to save or load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.autoencoders.vae import AutoencoderMixin
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from diffusers.utils.accelerate_utils import apply_forward_hook

from .configuration_pyratok import PyraTokConfig
from .modeling_pyratok import PyraTokCore
from .errors import CheckpointError


@dataclass
class AutoencoderPyraTokOutput(BaseOutput):
    """``AutoencoderPyraTok.forward``: ``sample`` (the reconstruction) first, as diffusers' ``DecoderOutput``; the
    training loss and its terms when ``return_loss=True`` (``None`` otherwise)."""

    sample: torch.Tensor
    loss: torch.Tensor | None = None
    recon_loss: torch.Tensor | None = None
    codebook_loss: torch.Tensor | None = None
    ar_loss: torch.Tensor | None = None
    drift_loss: torch.Tensor | None = None
    loss_terms: dict | None = None

    @property
    def reconstruction(self) -> torch.Tensor:
        """The same tensor as ``sample``, under the name :class:`~pyratok_hf.PyraTokModel` uses."""
        return self.sample


class AutoencoderPyraTok(PyraTokCore, ModelMixin, AutoencoderMixin, ConfigMixin):
    r"""PyraTok tokenizer in diffusers form: ``encode`` -> token pyramid, ``decode`` -> video.

    Construct from a :class:`PyraTokConfig` (or its dict / keyword fields):

    >>> vae = AutoencoderPyraTok(PyraTokConfig.from_preset("pyratok-tiny"))
    >>> vae = AutoencoderPyraTok.from_pretrained("org/pyratok-l", subfolder="vae")
    """

    config_name = "config.json"
    _supports_gradient_checkpointing = True
    # Offloading (device_map with CPU / disk offload): accelerate's hooks must neither copy Wan's causal cache
    # (the encoder/decoder fill the feat_cache list in place; a copied list loses every cached frame) nor
    # unload a LaPQ level between its forward and codes_to_latent, so hooks sit on the Wan encoder/decoder as a
    # whole and on LaPQ's leaf layers.
    _no_split_modules = ["WanEncoder3d", "WanDecoder3d"]
    _skip_keys = ["feat_cache", "feat_idx"]
    # Quantization must stay in float32 (signs of small bf16 values flip); skip it when casting layerwise.
    _skip_layerwise_casting_patterns = ["lapq", "text_proj", "projection", "text_to_code"]
    _keep_in_fp32_modules = ["lapq"]

    def __init__(self, config: PyraTokConfig | dict | None = None, **fields):
        super().__init__()
        if isinstance(config, PyraTokConfig):
            pyratok_config = PyraTokConfig.from_dict({**config.to_dict(), **fields})
        else:
            pyratok_config = PyraTokConfig(**{**(config or {}), **fields})
        # ConfigMixin keeps a flat copy (what `vae.config` shows); PyraTokConfig stays the source of truth.
        self.register_to_config(**_diffusers_fields(pyratok_config))
        self._build_pyratok(pyratok_config)

    # ----------------------------------------------------------------- diffusers API
    @apply_forward_hook
    def encode(self, x, text=None, text_embeds=None, text_attention_mask=None, num_levels=None, return_dict: bool = True):
        return PyraTokCore.encode(self, x, text, text_embeds, text_attention_mask, num_levels, return_dict)

    @apply_forward_hook
    def decode(self, token_ids=None, latents=None, num_levels=None, output_shape=None, return_dict: bool = True):
        """``decode(token_ids=...)`` or ``decode(latents=...)``; ``decode(z)`` with a float latent tensor works too,
        as for every diffusers autoencoder."""
        if torch.is_tensor(token_ids) and token_ids.is_floating_point() and latents is None:
            token_ids, latents = None, token_ids
        return PyraTokCore.decode(self, token_ids, latents, num_levels, output_shape, return_dict)

    def forward(self, sample, text=None, text_embeds=None, text_attention_mask=None, return_loss: bool = False, num_levels=None, return_dict: bool = True):
        """Tokenize and reconstruct ``sample``: ``.sample`` holds the video (as every diffusers autoencoder), and
        ``.loss`` and its terms with ``return_loss``. Token ids come from :meth:`encode`."""
        full = self._forward(sample, text, text_embeds, text_attention_mask, return_loss, num_levels, True)
        out = AutoencoderPyraTokOutput(
            sample=full.reconstruction, loss=full.loss, recon_loss=full.recon_loss, codebook_loss=full.codebook_loss,
            ar_loss=full.ar_loss, drift_loss=full.drift_loss, loss_terms=full.loss_terms,
        )
        return out if return_dict else out.to_tuple()

    # ----------------------------------------------------------------- one folder format for both classes
    @classmethod
    def from_config(cls, config=None, **kwargs):
        config = dict(config or {})
        config = {k: v for k, v in config.items() if not k.startswith("_")}
        return cls(PyraTokConfig.from_dict({**config, **kwargs}) if "model_type" in config else PyraTokConfig(**{**config, **kwargs}))

    def to_pyratok_config(self) -> PyraTokConfig:
        return self.pyratok_config

    def save_pretrained(self, save_directory: str | os.PathLike, is_main_process: bool = True, safe_serialization: bool = True, **kwargs):
        """diffusers' ``save_pretrained`` (``variant``, ``max_shard_size``, ``push_to_hub``); safetensors only."""
        if not safe_serialization:
            raise CheckpointError("AutoencoderPyraTok saves safetensors only (safe_serialization=True).")
        # PyraTokConfig is the source of truth (training code edits it, e.g. latent statistics): refresh the copy
        # diffusers writes.
        self.register_to_config(**_diffusers_fields(self.pyratok_config))
        super().save_pretrained(save_directory, is_main_process=is_main_process, safe_serialization=True, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder: str | None = None, **kwargs):
        """Load a folder saved by either class: a Hub id or local path, with ``subfolder``, ``revision``,
        ``variant``, ``torch_dtype`` (LaPQ stays float32), ``device_map`` / ``max_memory`` / ``offload_folder``.

        diffusers-layout folders go through diffusers' own loader; transformers-layout folders (what
        :class:`~pyratok_hf.PyraTokModel` and earlier versions of this class wrote) are read here, into an
        empty model, so the weights are never held twice. ``strict=True`` (default) refuses missing or
        unexpected weights with a :class:`~pyratok_hf.errors.CheckpointError`.
        """
        from .loading import check_checkpoint_folder, download_model_folder, load_into_empty_model

        allow_pickle = bool(kwargs.pop("allow_pickle", False))
        strict = kwargs.pop("strict", True)
        variant = kwargs.pop("variant", None)
        torch_dtype = kwargs.pop("torch_dtype", None) or kwargs.pop("dtype", None)
        if torch_dtype is not None and not isinstance(torch_dtype, torch.dtype):
            raise CheckpointError(f"torch_dtype must be a torch.dtype such as torch.bfloat16, got {torch_dtype!r}.")
        placement = {k: kwargs.pop(k, None) for k in ("device_map", "max_memory", "offload_folder")}
        kwargs.pop("low_cpu_mem_usage", None)  # both paths load into an empty model already
        checked = check_checkpoint_folder(pretrained_model_name_or_path, subfolder or None, allow_pickle=allow_pickle, variant=variant)
        if checked is None:  # a Hub id
            folder = download_model_folder(pretrained_model_name_or_path, subfolder or None, **kwargs)
            checked = check_checkpoint_folder(folder, None, allow_pickle=allow_pickle, variant=variant)
        if checked.layout == "diffusers" and placement["device_map"] is None:
            model = cls._from_diffusers_layout(checked, variant, torch_dtype, strict)
        else:  # transformers' layout, or a device_map (diffusers cannot split a model whose inner Wan VAE has no _no_split_modules)
            model = load_into_empty_model(cls, checked, dtype=torch_dtype, strict=strict, **placement)
        return model.eval()

    @classmethod
    def _from_diffusers_layout(cls, checked, variant, torch_dtype, strict: bool):
        from .loading import check_finite_weights, checkpoint_load_errors

        with checkpoint_load_errors(checked.folder):
            try:
                model, info = super().from_pretrained(
                    checked.folder, variant=variant, torch_dtype=torch_dtype, output_loading_info=True, low_cpu_mem_usage=True,
                )
            except (ValueError, RuntimeError) as err:  # missing keys / shape mismatches, as diffusers words them
                if not any(word in str(err) for word in ("shape", "missing", "size")):
                    raise
                detail = str(err).splitlines()[0].split(" If you want")[0].replace("Cannot load  because ", "")
                raise CheckpointError(
                    f"{checked.folder}: weights ({', '.join(checked.weights)}) do not match config.json (size mismatch or missing "
                    f"tensor): {detail} Was config.json edited (restore it), or are the weights damaged (re-download or re-save them)?"
                ) from err
        problems = {k: info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(k)}
        if strict and problems:
            raise CheckpointError(
                f"{', '.join(checked.weights)} does not match config.json ({problems}). Was config.json edited (restore it), or "
                "are the weights damaged (re-download or re-save them)? (strict=False loads anyway)"
            )
        check_finite_weights(model, ", ".join(checked.weights))
        return model


def _diffusers_fields(config: PyraTokConfig) -> dict:
    data = config.to_dict()
    for key in ("transformers_version", "architectures", "auto_map", "_name_or_path"):
        data.pop(key, None)
    return data
