"""Prompt -> text states, shared by the text-to-video pipeline and prior training (so both see the same text).

The prior reads the *raw* states of a transformers text encoder (all-MiniLM-L6-v2 for the tiny model). An
empty prompt (``""`` or only spaces) is encoded as *no text*: its mask is all False, which is exactly the
unconditional input the prior learns through caption dropout and uses for classifier-free guidance.
"""

from __future__ import annotations

import warnings

import torch

from ..errors import InvalidInputError
from ..text_encoder import validate_prompts


def validate_prompt_list(prompt, what: str = "prompt") -> list[str]:
    """The pipeline's prompts: :func:`pyratok_hf.text_encoder.validate_prompts` (``""`` is unconditional)."""
    return validate_prompts(prompt, what, hint='Use "" for an unconditional video.')


@torch.no_grad()
def encode_prompts(tokenizer, text_encoder, prompts: list[str], max_length: int, hidden_layer: int = -1, device=None):
    """Encode prompts into ``(states [B, S, D], mask [B, S] bool)`` with the text encoder frozen.

    Prompts longer than ``max_length`` text tokens are truncated with a ``UserWarning``.
    """
    device = device or next(text_encoder.parameters()).device
    full = tokenizer(prompts, padding=True, truncation=False, return_tensors="pt")
    if full["input_ids"].shape[1] > max_length:
        longest = int(full["attention_mask"].sum(1).max())
        warnings.warn(
            f"a prompt has {longest} text tokens; it is truncated to the text encoder limit of {max_length} "
            "(max_sequence_length). Shorten the prompt to keep all of it.",
            UserWarning,
            stacklevel=3,
        )
    batch = tokenizer(prompts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    out = text_encoder(**batch, output_hidden_states=hidden_layer != -1)
    states = out.last_hidden_state if hidden_layer == -1 else out.hidden_states[hidden_layer]
    mask = batch["attention_mask"].bool()
    empty = torch.tensor([not p.strip() for p in prompts], device=mask.device)
    mask = mask & ~empty[:, None]
    if not torch.is_tensor(states) or states.dim() != 3:
        raise InvalidInputError("the text encoder must return hidden states [batch, tokens, width] (e.g. a BertModel).")
    return states, mask
