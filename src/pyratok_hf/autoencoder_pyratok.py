"""``AutoencoderPyraTok``: the same tokenizer as a diffusers ``ModelMixin`` (for pipelines).

It shares every module and weight name with :class:`~pyratok_hf.PyraTokModel` through
:class:`~pyratok_hf.core.PyraTokCore`. Both save the same folder layout (``config.json`` with
``model_type="pyratok"`` plus ``model.safetensors``), so one folder loads in either class; this class also
reads diffusers' ``diffusion_pytorch_model.safetensors`` name.
"""

from __future__ import annotations

import json
import os

import torch
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.autoencoders.vae import AutoencoderMixin
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.accelerate_utils import apply_forward_hook

from .configuration_pyratok import PyraTokConfig
from .core import PyraTokCore, PyraTokModelOutput
from .errors import CheckpointError


class AutoencoderPyraTok(PyraTokCore, ModelMixin, AutoencoderMixin, ConfigMixin):
    r"""PyraTok tokenizer in diffusers form: ``encode`` -> token pyramid, ``decode`` -> video.

    Construct from a :class:`PyraTokConfig` (or its dict / keyword fields):

    >>> vae = AutoencoderPyraTok(PyraTokConfig.from_preset("pyratok-tiny"))
    >>> vae = AutoencoderPyraTok.from_pretrained("org/pyratok-l", subfolder="vae")
    """

    config_name = "config.json"
    _supports_gradient_checkpointing = True
    _no_split_modules = ["WanEncoder3d", "WanDecoder3d", "LaPQLevel"]
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

    def forward(self, sample, text=None, text_embeds=None, text_attention_mask=None, return_loss: bool = False, num_levels=None, return_dict: bool = True) -> PyraTokModelOutput:
        """Tokenize and reconstruct ``sample``; ``.reconstruction`` holds the video (and ``.loss`` if asked)."""
        return self._forward(sample, text, text_embeds, text_attention_mask, return_loss, num_levels, return_dict)

    # ----------------------------------------------------------------- one folder format for both classes
    @classmethod
    def from_config(cls, config=None, **kwargs):
        config = dict(config or {})
        config = {k: v for k, v in config.items() if not k.startswith("_")}
        return cls(PyraTokConfig.from_dict({**config, **kwargs}) if "model_type" in config else PyraTokConfig(**{**config, **kwargs}))

    def to_pyratok_config(self) -> PyraTokConfig:
        return self.pyratok_config

    def save_pretrained(self, save_directory: str | os.PathLike, is_main_process: bool = True, safe_serialization: bool = True, **kwargs):
        """Write ``config.json`` + ``model.safetensors`` (the format :class:`PyraTokModel` reads too)."""
        if not safe_serialization:
            raise CheckpointError("AutoencoderPyraTok saves safetensors only (safe_serialization=True).")
        from .modeling_pyratok import PyraTokModel

        if not is_main_process:
            return
        model = PyraTokModel(self.pyratok_config)
        model.load_state_dict(self.state_dict(), assign=False)
        model.save_pretrained(save_directory, safe_serialization=True, **{k: v for k, v in kwargs.items() if k in ("max_shard_size", "push_to_hub", "repo_id", "token")})
        with open(os.path.join(save_directory, "config.json")) as f:
            data = json.load(f)
        data["_class_name"] = type(self).__name__
        with open(os.path.join(save_directory, "config.json"), "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder: str | None = None, **kwargs):
        """Load a folder saved by either class (Hub id or local path; ``subfolder``, ``revision``, ``torch_dtype``)."""
        from .loading import check_checkpoint_folder
        from .modeling_pyratok import PyraTokModel

        torch_dtype = kwargs.pop("torch_dtype", None) or kwargs.pop("dtype", None)
        allowed = ("revision", "cache_dir", "local_files_only", "token", "force_download", "allow_pickle", "strict")
        load_kwargs = {k: v for k, v in kwargs.items() if k in allowed}
        checked = check_checkpoint_folder(pretrained_model_name_or_path, subfolder or None, allow_pickle=bool(kwargs.get("allow_pickle")))
        if checked is not None and checked.layout == "diffusers":
            model = cls._from_diffusers_layout(checked.folder, checked=checked)
        else:
            core = PyraTokModel.from_pretrained(pretrained_model_name_or_path, subfolder=subfolder or "", **load_kwargs)
            model = cls(core.config)
            model.load_state_dict(core.state_dict())
        if torch_dtype is not None:
            if not isinstance(torch_dtype, torch.dtype):
                raise CheckpointError(f"torch_dtype must be a torch.dtype such as torch.bfloat16, got {torch_dtype!r}.")
            model._cast_keeping_fp32_modules(torch_dtype)  # LaPQ quantizes by sign: float32 whatever torch_dtype says
        return model.eval()

    @classmethod
    def _from_diffusers_layout(cls, folder: str, checked=None):
        from .loading import check_checkpoint_folder, check_config_dict, check_finite_weights, checkpoint_load_errors, load_safetensors_checked

        checked = checked or check_checkpoint_folder(folder)
        config = check_config_dict(checked.config, os.path.join(folder, "config.json"))
        with checkpoint_load_errors(folder):
            model = cls(config)
        state = {}
        for path in checked.weights:
            state.update(load_safetensors_checked(path, float_only=True))
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as err:  # shape mismatches; torch's message names each tensor
            raise CheckpointError(f"{folder}: weights ({', '.join(checked.weights)}) do not match config.json: {err}") from err
        if missing or unexpected:
            raise CheckpointError(
                f"{folder}: weights ({', '.join(checked.weights)}) do not match config.json (missing {missing[:5]}, unexpected "
                f"{unexpected[:5]}). Was config.json edited (restore it), or are the weights damaged (re-download or re-save them)?"
            )
        check_finite_weights(model, ", ".join(checked.weights))
        return model


def _diffusers_fields(config: PyraTokConfig) -> dict:
    data = config.to_dict()
    for key in ("transformers_version", "architectures", "auto_map", "_name_or_path"):
        data.pop(key, None)
    return data
