"""``PyraTokModel``: the PyraTok tokenizer as a transformers ``PreTrainedModel``.

>>> from pyratok_hf import PyraTokModel
>>> model = PyraTokModel.from_pretrained("org/pyratok-l")           # Hub id (or a local folder)
>>> enc = model.encode(video, text="a red ball rolls left")        # video [B, 3, T, H, W] in [-1, 1]
>>> enc.token_ids                                                   # one LongTensor per level, coarse -> fine
>>> video_hat = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample

Weights are safetensors only; pickled checkpoints are refused unless ``allow_pickle=True`` is passed.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .configuration_pyratok import PyraTokConfig
from .core import PyraTokCore, PyraTokDecoderOutput, PyraTokEncoderOutput, PyraTokModelOutput
from .errors import CheckpointError, CheckpointNotFoundError, InvalidInputError
from .quantizer import ids_to_codes
from .text_encoder import validate_prompts


class PyraTokPreTrainedModel(PreTrainedModel):
    config_class = PyraTokConfig
    base_model_prefix = "pyratok"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    # Offloading (device_map with CPU / disk offload): accelerate's hooks must neither copy Wan's causal cache
    # (the encoder/decoder fill the feat_cache list in place; a copied list loses every cached frame) nor
    # unload a LaPQ level between its forward and codes_to_latent, so hooks sit on the Wan encoder/decoder as a
    # whole and on LaPQ's leaf layers.
    _no_split_modules = ["WanEncoder3d", "WanDecoder3d"]
    _skip_keys_device_placement = ["feat_cache", "feat_idx"]
    # LaPQ quantizes by sign: it stays float32 when loading in float16 *and* bfloat16 (transformers honours the
    # strict list for both; LaPQ is also built in float32 whatever the default dtype, see _build_pyratok).
    _keep_in_fp32_modules_strict = ["lapq"]

    def _init_weights(self, module):
        # Keep each layer's own PyTorch/diffusers initialisation: transformers' N(0, 0.02) default would
        # silently change how a from-scratch Wan backbone starts. Parameters without a reset method get the
        # values their constructors give them (Wan's RMS-norm gain 1, our level embeddings 0).
        if isinstance(module, nn.MultiheadAttention):
            module._reset_parameters()
        elif hasattr(module, "reset_parameters") and not isinstance(module, PreTrainedModel):
            module.reset_parameters()
        elif type(module).__name__ == "WanRMS_norm":
            nn.init.ones_(module.gamma)
            if isinstance(module.bias, nn.Parameter):
                nn.init.zeros_(module.bias)
        if isinstance(module, PyraTokPreTrainedModel) and hasattr(module, "level_embedding"):
            nn.init.zeros_(module.level_embedding)

    def get_input_embeddings(self) -> nn.Module:
        """The first layer the pixels meet (the Wan encoder's input convolution), transformers' input-embedding hook
        (``enable_input_require_grads`` for reentrant checkpointing / PEFT uses it)."""
        return self.backbone.vae.encoder.conv_in

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.vae.encoder.conv_in = value

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, allow_pickle: bool = False, strict: bool = True, **kwargs):
        if pretrained_model_name_or_path is None and kwargs.get("config") is not None and kwargs.get("state_dict") is not None:
            # transformers' in-memory form: a config and a state dict, no folder to check
            return super().from_pretrained(None, *model_args, **kwargs)
        return cls._from_pretrained_checked(pretrained_model_name_or_path, *model_args, allow_pickle=allow_pickle, strict=strict, **kwargs)

    @classmethod
    def _from_pretrained_checked(cls, pretrained_model_name_or_path, *model_args, allow_pickle: bool = False, strict: bool = True, **kwargs):
        """Load from a Hub id or a local folder (``subfolder``, ``revision`` as usual).

        Safetensors only unless ``allow_pickle=True``. With ``strict=True`` (default) a checkpoint whose tensors
        do not match the config (missing, unexpected or differently shaped weights) raises
        :class:`~pyratok_hf.errors.CheckpointError` naming the mismatch instead of silently re-initialising.
        """
        from .loading import check_checkpoint_folder, check_finite_weights, checkpoint_load_errors

        if not allow_pickle:
            if kwargs.get("use_safetensors") is False:
                raise CheckpointError("use_safetensors=False loads pickled weights, which can run code; pass allow_pickle=True to accept that risk.")
            kwargs["use_safetensors"] = True
        want_info = kwargs.pop("output_loading_info", False)
        # The gate: path, config.json and safetensors headers, before transformers sees anything.
        checked = check_checkpoint_folder(pretrained_model_name_or_path, kwargs.get("subfolder") or None, allow_pickle=allow_pickle, variant=kwargs.get("variant"))
        source = checked.folder if checked is not None else pretrained_model_name_or_path
        dtype = kwargs.get("dtype") or kwargs.get("torch_dtype")
        if checked is not None and checked.layout == "diffusers":
            # A folder written by AutoencoderPyraTok / diffusers (diffusion_pytorch_model.safetensors): the same
            # keys under another file name, read straight into an empty model of this class.
            from .loading import load_into_empty_model

            placement = {k: kwargs.get(k) for k in ("device_map", "max_memory", "offload_folder")}
            model = load_into_empty_model(cls, checked, dtype=dtype, strict=strict, **placement)
            info = {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
            return (model, info) if want_info else model
        # Let transformers load past shape mismatches and list them: they are turned into a CheckpointError
        # naming the keys below (transformers 5 otherwise raises a bare RuntimeError that names none).
        kwargs.setdefault("ignore_mismatched_sizes", True)
        try:
            with checkpoint_load_errors(source):
                model, info = super().from_pretrained(pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs)
        except CheckpointError:
            raise
        except (OSError, EnvironmentError) as err:
            text = str(err)
            if not allow_pickle and ("safetensors" in text or "model.safetensors" in text):
                raise CheckpointError(
                    f"{pretrained_model_name_or_path} has no safetensors weights. Pickled .bin/.pt files can run code when "
                    "loaded and are refused; convert them to safetensors, or pass allow_pickle=True if you trust the source."
                ) from err
            if checked is None:  # a Hub id that the Hub (or its cache) could not provide
                raise CheckpointNotFoundError(
                    f"{pretrained_model_name_or_path} is not a local folder, and it could not be loaded as a Hub repo "
                    f"({text.splitlines()[0] if text else type(err).__name__}). Check the path or repo id; offline, "
                    "download the repo first and pass its folder."
                ) from err
            raise CheckpointError(f"{source} could not be loaded: {text}. Re-save the model or re-download it.") from err
        except RuntimeError as err:
            if "size mismatch" in str(err) or "shape" in str(err) or "ignore_mismatched_sizes" in str(err):
                raise CheckpointError(f"weights in {pretrained_model_name_or_path} do not match its config: {err}") from err
            raise
        problems = []
        if info.get("mismatched_keys"):
            shown = ", ".join(f"{k} (checkpoint {tuple(a)} vs model {tuple(b)})" for k, a, b in sorted(info["mismatched_keys"], key=lambda item: item[0])[:5])
            problems.append(f"shape mismatch: {shown}")
        if info.get("missing_keys"):
            problems.append(f"missing from the checkpoint: {sorted(info['missing_keys'])[:5]}")
        if info.get("unexpected_keys"):
            problems.append(f"not used by the model: {sorted(info['unexpected_keys'])[:5]}")
        if strict and problems:
            weights = ", ".join(checked.weights) if checked is not None and checked.weights else "its weights"
            raise CheckpointError(
                f"checkpoint {pretrained_model_name_or_path} does not match its config.json ({weights}) — " + "; ".join(problems)
                + ". Was config.json edited (restore it), or are the weights damaged or from another model (re-download or "
                "re-save them)? (strict=False loads anyway)"
            )
        check_finite_weights(model, ", ".join(checked.weights) if checked is not None and checked.weights else source)  # flipped bytes inside tensor data pass every header check
        model._keep_modules_in_fp32()
        return (model, info) if want_info else model


class PyraTokModel(PyraTokCore, PyraTokPreTrainedModel):
    """PyraTok: a frozen Wan VAE + LaPQ, tokenizing videos into a language-aligned pyramid of binary tokens.

    See :class:`~pyratok_hf.core.PyraTokCore` for ``encode`` / ``decode`` / tiling, and ``docs/architecture.md``.
    """

    def __init__(self, config: PyraTokConfig):
        super().__init__(config)
        self._build_pyratok(config)
        self.post_init()

    @classmethod
    def from_backbone(cls, config: PyraTokConfig, backbone_name_or_path: str | None = None, subfolder: str | None = None, **kwargs) -> "PyraTokModel":
        """A new PyraTok whose backbone starts from a saved diffusers Wan VAE (local folder or Hub id).

        The VAE's own config replaces ``config.backbone_config`` so the two always agree.
        """
        from .backbone import WanBackbone

        path = backbone_name_or_path or config.backbone_pretrained
        if path is None:
            raise CheckpointError("no backbone given: pass backbone_name_or_path or set config.backbone_pretrained.")
        subfolder = subfolder if subfolder is not None else config.backbone_subfolder
        backbone = WanBackbone.from_pretrained(path, subfolder=subfolder, **kwargs)
        vae_config = {k: v for k, v in dict(backbone.vae.config).items() if not k.startswith("_") and k not in ("latents_mean", "latents_std")}
        config.backbone_config = vae_config
        config.backbone_pretrained = path
        # Normalise latents with the statistics stored in the VAE's config (Wan keeps them there).
        mean, std = backbone.vae.config.get("latents_mean"), backbone.vae.config.get("latents_std")
        if mean is not None and std is not None and len(mean) == vae_config.get("z_dim", 16):
            config.latents_mean, config.latents_std = list(mean), list(std)
        config.validate()
        model = cls(config)
        model.backbone.vae.load_state_dict(backbone.vae.state_dict())
        return model

    def forward(
        self,
        pixel_values: torch.Tensor,
        text=None,
        text_embeds: torch.Tensor | None = None,
        text_attention_mask: torch.Tensor | None = None,
        return_loss: bool = True,
        num_levels: int | None = None,
        return_dict: bool = True,
        target_pixel_values: torch.Tensor | None = None,
        **kwargs,
    ) -> PyraTokModelOutput:
        """Encode, quantize, decode; with ``return_loss`` the paper's total loss is the first output field.

        ``target_pixel_values`` (training with input masking): the clean video the loss compares against.
        """
        return self._forward(pixel_values, text, text_embeds, text_attention_mask, return_loss, num_levels, return_dict, target_pixel_values)

    # ----------------------------------------------------------------- CLIP-style shared space
    @torch.no_grad()
    def get_text_features(
        self, text=None, text_embeds=None, text_attention_mask=None, normalize: bool = True,
        output_hidden_states: bool | None = None, return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """Text in the shared video-text space, with transformers' feature-API contract (as ``CLIPModel``).

        Returns a ``BaseModelOutputWithPooling``: ``pooler_output`` ``[B, projection_dim]`` (L2-normalised unless
        ``normalize=False``), ``last_hidden_state`` the projected text states ``[B, S, text_embed_dim]`` that the
        levels attend to, and with ``output_hidden_states`` the text model's states and their projection.
        """
        if text is None and text_embeds is None:
            raise InvalidInputError("get_text_features needs text=... (str or list of str) or text_embeds=... (text-model states).")
        states, mask, pooled = self.encode_text(text, text_embeds, text_attention_mask)
        feats = self.text_projection(pooled)
        feats = nn.functional.normalize(feats, dim=-1) if normalize else feats
        hidden = None
        if self.config.output_hidden_states if output_hidden_states is None else output_hidden_states:
            raw = text_embeds if text_embeds is not None else self.get_text_encoder()(validate_prompts(text), device=self._device()).states
            hidden = (raw, states)
        out = BaseModelOutputWithPooling(last_hidden_state=states, pooler_output=feats, hidden_states=hidden)
        return out if (self.config.return_dict if return_dict is None else return_dict) else out.to_tuple()

    @torch.no_grad()
    def get_video_features(
        self, pixel_values=None, token_ids=None, pooling: str = "clip", level: int | None = None, normalize: bool = True,
        text=None, output_hidden_states: bool | None = None, return_dict: bool | None = None, pixel_values_videos=None,
    ) -> BaseModelOutputWithPooling | tuple:
        """Video in the shared space, from pixels or token ids, with transformers' feature-API contract.

        ``pooler_output``: ``pooling="clip"`` -> ``[B, D]``, ``"frame"`` -> ``[B, t, D]``, ``"token"`` ->
        ``[B, t, h, w, D]``; ``level`` picks one level (0 = coarsest), ``None`` averages the levels' clip
        embeddings (clip pooling only). ``last_hidden_state``: the token embeddings ``[B, t*h*w, D]`` of that level
        (the finest when ``level`` is None); ``hidden_states`` (``output_hidden_states``): every level's, coarse to fine.
        ``pixel_values_videos`` is accepted for ``pixel_values`` (the name transformers' video models use).
        """
        if pixel_values is None:
            pixel_values = pixel_values_videos
        if pooling not in ("clip", "frame", "token"):
            raise InvalidInputError(f"pooling must be 'clip', 'frame' or 'token', got {pooling!r}.")
        if level is None and pooling != "clip":
            raise InvalidInputError("frame/token pooling needs one level (grids differ between levels): pass level=...")
        if token_ids is None:
            if pixel_values is None:
                raise InvalidInputError("get_video_features needs pixel_values=... or token_ids=....")
            token_ids = self.encode(pixel_values, text=text).token_ids
        codes = [ids_to_codes(ids.to(self._device()), self.config.codebook_bits, msb_first=self.config.ids_msb_first) for ids in token_ids]
        per_level = self.video_embeddings(codes, pooling="token")  # [B, t, h, w, D] each
        if level is not None:
            if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level < len(per_level):
                raise InvalidInputError(f"level must be an integer in [0, {len(per_level) - 1}], got {level!r}.")
            tok = per_level[level]
            feats = {"clip": tok.mean(dim=(1, 2, 3)), "frame": tok.mean(dim=(2, 3)), "token": tok}[pooling]
        else:
            feats = torch.stack([tok.mean(dim=(1, 2, 3)) for tok in per_level]).mean(0)
        feats = nn.functional.normalize(feats, dim=-1) if normalize else feats
        chosen = per_level[-1 if level is None else level]
        out = BaseModelOutputWithPooling(
            last_hidden_state=chosen.flatten(1, 3),
            pooler_output=feats,
            hidden_states=tuple(tok.flatten(1, 3) for tok in per_level)
            if (self.config.output_hidden_states if output_hidden_states is None else output_hidden_states) else None,
        )
        return out if (self.config.return_dict if return_dict is None else return_dict) else out.to_tuple()


def register_auto_classes() -> None:
    """Register with AutoConfig/AutoModel (in process) and for ``auto_map`` (pushed folders, remote code)."""
    try:
        AutoConfig.register("pyratok", PyraTokConfig)
    except ValueError:
        pass  # already registered
    try:
        AutoModel.register(PyraTokConfig, PyraTokModel)
    except ValueError:
        pass
    PyraTokConfig.register_for_auto_class()
    PyraTokModel.register_for_auto_class("AutoModel")


# Registering on import keeps ``from pyratok_hf import PyraTokModel`` + ``AutoModel.from_pretrained`` working
# while ``import pyratok_hf`` itself stays light (the package imports this module lazily).
register_auto_classes()

__all__ = [
    "PyraTokModel",
    "PyraTokPreTrainedModel",
    "PyraTokEncoderOutput",
    "PyraTokDecoderOutput",
    "PyraTokModelOutput",
    "register_auto_classes",
]
