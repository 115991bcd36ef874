"""Sampling a token pyramid from :class:`~pyratok_hf.prior.PyraTokPriorModel`.

Two orders, both with or without a KV cache (transformers ``DynamicCache``):

* ``next_scale``: one LM pass per level; every token of the level is sampled at once.
* ``token``: one LM pass per token (raster t, h, w inside each level).

Classifier-free guidance runs the conditional and the unconditional text in one batch ``[cond; uncond]`` and
mixes the logits ``l = l_u + g * (l_c - l_u)``. The unconditional branch is the negative prompt when given,
else *no text* (the text prefix fully masked, exactly what training sees for dropped captions).

Per-bit sampling (``head="bits"``): bit k is +1 with probability ``p_k = sigmoid(l_k / temperature)``
(``temperature=0``: argmax). Top-k / top-p over two outcomes per bit would be trivial, so they act on the bits'
*confidence* ``c_k = max(p_k, 1 - p_k)`` — they cut the unlikely tail by freezing confident bits:

* ``top_p``: a bit is sampled only if its most likely outcome has probability below ``top_p``, i.e. the
  nucleus of the bit's two outcomes at mass ``top_p`` holds both; otherwise it takes its argmax.
* ``top_k``: per token, only the ``top_k`` least confident bits are sampled; the other ``K - top_k`` bits take
  their argmax (``top_k=0``: greedy).

Uniform numbers for every bit are drawn whether a bit is sampled or not, from ``generator`` in a fixed order,
so a seed gives the same video with or without the cache. With ``head="softmax"`` the usual temperature /
top-k / top-p over the 2^K classes apply.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from ..errors import InvalidInputError
from ..quantizer import check_ids_in_range, codes_to_ids, ids_to_codes
from .layout import block_causal_mask, build_layout, position_ids

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- sampling one set of logits
def _uniform(shape, generator, device) -> torch.Tensor:
    """Uniform numbers of ``shape`` from one ``torch.Generator`` (or ``None``), or from a list of them: one per
    row of the batch (``shape[0]``), each drawing that row exactly as it would draw a batch of one."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise InvalidInputError(f"got {len(generator)} generators for a batch of {shape[0]}; pass one per video, or a single one.")
        return torch.stack([_uniform((1, *shape[1:]), g, device)[0] for g in generator])
    gen_device = generator.device if generator is not None else "cpu"
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def check_generator(generator, batch: int):
    """``None``, a ``torch.Generator``, or a list of ``batch`` generators (one per video) -> the same, validated.

    A list of one is the same as that generator alone.
    """
    if isinstance(generator, (list, tuple)):
        generators = list(generator)
        if not all(isinstance(g, torch.Generator) for g in generators):
            raise InvalidInputError("generator must be a torch.Generator or a list of them.")
        if len(generators) == 1:
            return generators[0]
        if len(generators) != batch:
            raise InvalidInputError(f"got {len(generators)} generators for {batch} videos; pass one per video, or a single torch.Generator.")
        return generators
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InvalidInputError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}.")
    return generator


def warn_if_other_mode(prior, mode: str) -> None:
    """Warn once per prior when sampling in an order other than the one it was trained in."""
    if mode != prior.config.mode and not prior.__dict__.get("_warned_mode_" + mode):
        prior.__dict__["_warned_mode_" + mode] = True
        logger.warning("this prior was trained in %r mode; sampling in %r mode gives poorer videos.", prior.config.mode, mode)


def sample_bits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None, generator=None) -> torch.Tensor:
    """Bit logits ``[..., K]`` -> ±1 codes ``[..., K]`` (see the module docstring for top-k / top-p)."""
    logits = logits.float()
    uniform = _uniform(logits.shape, generator, logits.device)
    if temperature == 0:
        return torch.where(logits >= 0, 1.0, -1.0)
    probs = torch.sigmoid(logits / temperature)
    confidence = torch.maximum(probs, 1 - probs)
    sampled = torch.ones_like(probs, dtype=torch.bool)
    if top_p is not None:
        sampled &= confidence < top_p
    if top_k is not None:
        k = min(int(top_k), logits.shape[-1])
        keep = torch.zeros_like(sampled)
        if k > 0:
            order = confidence.argsort(dim=-1, stable=True)[..., :k]
            keep.scatter_(-1, order, True)
        sampled &= keep
    bits = torch.where(sampled, uniform < probs, probs >= 0.5)
    return torch.where(bits, 1.0, -1.0)


def sample_classes(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None, generator=None) -> torch.Tensor:
    """Class logits ``[..., C]`` -> int64 ids ``[...]`` (softmax head)."""
    flat = logits.float().reshape(-1, logits.shape[-1])
    # Drawn as [B, ...] (the same numbers as [B * ..., 1] from one generator) so that a list holds one per row.
    uniform = _uniform((*logits.shape[:-1], 1), generator, flat.device).reshape(-1, 1)
    if temperature == 0:
        return flat.argmax(-1).reshape(logits.shape[:-1])
    flat = flat / temperature
    if top_k is not None and 0 < top_k < flat.shape[-1]:
        threshold = flat.topk(int(top_k), dim=-1).values[:, -1:]
        flat = flat.masked_fill(flat < threshold, float("-inf"))
    probs = flat.softmax(-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass strictly before each class
        sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
        probs = probs / probs.sum(-1, keepdim=True)
    # Inverse-CDF sampling with our own uniform draw: reproducible and independent of multinomial internals.
    cdf = probs.cumsum(-1)
    ids = torch.searchsorted(cdf, uniform * cdf[:, -1:]).clamp_max(flat.shape[-1] - 1)
    return ids.reshape(logits.shape[:-1])


def _check_sampling_args(guidance_scale, temperature, top_k, top_p) -> None:
    if not isinstance(guidance_scale, (int, float)) or guidance_scale != guidance_scale:
        raise InvalidInputError(f"guidance_scale must be a number, got {guidance_scale!r}.")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise InvalidInputError(f"temperature must be a number >= 0 (0 = argmax), got {temperature!r}.")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 0):
        raise InvalidInputError(f"top_k must be a non-negative integer or None, got {top_k!r}.")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise InvalidInputError(f"top_p must be in (0, 1] or None, got {top_p!r}.")


def _pad_text(states: torch.Tensor, mask: torch.Tensor, length: int):
    extra = length - states.shape[1]
    if extra <= 0:
        return states, mask
    return F.pad(states, (0, 0, 0, extra)), F.pad(mask, (0, extra), value=False)


def _broadcast(states, mask, batch: int, what: str):
    if states.shape[0] == batch:
        return states, mask
    if states.shape[0] == 1:
        return states.expand(batch, -1, -1), mask.expand(batch, -1)
    raise InvalidInputError(f"{what} has batch {states.shape[0]}; give 1 or {batch} (one per video).")


# ----------------------------------------------------------------------------- the sampler
class _PyramidSampler:
    """Holds the batch (``[cond; uncond]`` with guidance), the layout, the mask and the cache."""

    def __init__(self, prior, states, mask, grids, mode, guidance_scale, temperature, top_k, top_p, generator, use_cache):
        self.prior = prior
        self.grids = grids
        self.mode = mode
        self.guidance = float(guidance_scale)
        self.temperature, self.top_k, self.top_p, self.generator = temperature, top_k, top_p, generator
        self.states, self.mask = states, mask
        self.batch = states.shape[0]  # rows in the LM batch (2B with guidance)
        self.layout = build_layout(states.shape[1], grids)
        self.attention = block_causal_mask(self.layout, mask, mode, prior._dtype())
        self.positions = position_ids(self.layout, mask)
        self.cache = DynamicCache(config=prior.lm.config) if use_cache else None
        self.pieces: list[torch.Tensor] = [prior.prefix_embeddings(states)]  # every embedding so far (no-cache path)
        self.fed = 0  # positions already in the cache

    @property
    def guided(self) -> bool:
        return self.guidance != 1.0

    def hidden_for(self, new_embeddings: torch.Tensor, end: int) -> torch.Tensor:
        """Append embeddings (ending at sequence position ``end``) and return the hidden states of the new ones."""
        self.pieces.append(new_embeddings)
        if self.cache is not None:
            start = self.fed
            fresh = torch.cat(self.pieces, 1) if len(self.pieces) > 1 else self.pieces[0]
            self.pieces = []
            hidden = self.prior.run_lm(fresh, self.attention[:, :, start:end, :end], start, self.cache, self.positions[:, start:end])
            self.fed = end
            return hidden[:, -new_embeddings.shape[1] :]
        everything = torch.cat(self.pieces, 1)
        self.pieces = [everything]
        hidden = self.prior.run_lm(everything, self.attention[:, :, :end, :end], 0, None, self.positions[:, :end])
        return hidden[:, -new_embeddings.shape[1] :]

    def sample(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[rows, n, d]`` -> ±1 codes ``[B, n, K]`` (guided when asked)."""
        logits = self.prior.head(hidden).float()
        if self.guided:
            cond, uncond = logits.chunk(2)
            logits = uncond + self.guidance * (cond - uncond)
        if self.prior.config.head == "bits":
            return sample_bits(logits, self.temperature, self.top_k, self.top_p, self.generator)
        ids = sample_classes(logits, self.temperature, self.top_k, self.top_p, self.generator)
        return ids_to_codes(ids, self.prior.codebook_bits)

    def both(self, codes: torch.Tensor) -> torch.Tensor:
        """The same sampled tokens feed the conditional and the unconditional rows."""
        return torch.cat([codes, codes]) if self.guided else codes

    def level_next_scale(self, level: int, prev_codes) -> torch.Tensor:
        prior, layout = self.prior, self.layout
        slots = prior.level_base_embeddings(level, self.grids, prev_codes, self.batch)
        new = torch.cat([prior.separator_embedding(level, self.batch), slots], 1)
        hidden = self.hidden_for(new, layout.block_ends[level])
        return self.sample(hidden[:, 1:])

    def level_token(self, level: int, prev_codes) -> torch.Tensor:
        prior, layout = self.prior, self.layout
        base = prior.level_base_embeddings(level, self.grids, prev_codes, self.batch)
        count = base.shape[1]
        own = torch.zeros(self.batch, count, prior.codebook_bits, device=base.device, dtype=base.dtype)
        out = torch.zeros(self.batch // (2 if self.guided else 1), count, prior.codebook_bits, device=base.device)
        for j in range(count):
            slot = base[:, j : j + 1] + prior.token_shift_embeddings(own, j, j + 1)
            if j == 0:
                slot = torch.cat([prior.separator_embedding(level, self.batch), slot], 1)
            hidden = self.hidden_for(slot, layout.block_starts[level] + j + 1)
            codes = self.sample(hidden[:, -1:])
            out[:, j : j + 1] = codes
            own[:, j : j + 1] = self.both(codes).to(own.dtype)
        return out


@torch.no_grad()
def generate(
    prior,
    text_states: torch.Tensor | None = None,
    text_mask: torch.Tensor | None = None,
    grids=None,
    *,
    negative_text_states: torch.Tensor | None = None,
    negative_text_mask: torch.Tensor | None = None,
    mode: str | None = None,
    guidance_scale: float = 1.0,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    use_cache: bool = True,
    batch_size: int | None = None,
    level_callback: Callable | None = None,
) -> list[torch.LongTensor]:
    """Sample one token pyramid per text; returns per-level ids ``[B, t, h, w]`` for ``tokenizer.decode``.

    Args:
        text_states, text_mask: the prompt's text states ``[B, S, text_dim]`` and bool mask ``[B, S]``; ``None``
            for unconditional sampling (then ``batch_size`` videos). A prompt whose mask is all False is
            also unconditional.
        grids: per level ``(t, h, w)``, coarse to fine (``tokenizer.token_grids(T, H, W)``).
        negative_text_states, negative_text_mask: the unconditional branch of guidance (default: no text).
        mode: ``"next_scale"`` or ``"token"`` (default: the mode the prior was trained in).
        guidance_scale: classifier-free guidance g; 1 disables it (no unconditional pass).
        temperature, top_k, top_p: see the module docstring.
        generator: a ``torch.Generator`` (the same seed gives the same tokens), or a list with one per video:
            video i then draws from ``generator[i]`` exactly what a batch of one would, so it equals a run of
            that video alone with that generator.
        use_cache: reuse keys/values of earlier positions (``DynamicCache``) instead of re-running the prefix.
        level_callback: ``fn(level, ids_so_far) -> None | list`` after each level; returning a list replaces
            the ids so far (its last entry is the level just sampled), e.g. to edit a coarse level.
    """
    mode = prior._check_mode(mode)
    warn_if_other_mode(prior, mode)
    if grids is None:
        raise InvalidInputError("pass grids=tokenizer.token_grids(num_frames, height, width).")
    grids = prior._check_grids(grids)
    _check_sampling_args(guidance_scale, temperature, top_k, top_p)
    states, mask = prior.prepare_text(text_states, text_mask, batch_size)
    batch = states.shape[0]
    generator = check_generator(generator, batch)
    if guidance_scale != 1.0:
        if negative_text_states is not None:
            neg_states, neg_mask = prior.prepare_text(negative_text_states, negative_text_mask)
            neg_states, neg_mask = _broadcast(neg_states, neg_mask, batch, "negative_text_states")
        else:
            neg_states, neg_mask = states.new_zeros(batch, 0, states.shape[2]), mask.new_zeros(batch, 0)
        length = max(states.shape[1], neg_states.shape[1])
        states, mask = _pad_text(states, mask, length)
        neg_states, neg_mask = _pad_text(neg_states, neg_mask, length)
        states, mask = torch.cat([states, neg_states]), torch.cat([mask, neg_mask])

    was_training = prior.training
    prior.eval()
    try:
        sampler = _PyramidSampler(prior, states, mask, grids, mode, guidance_scale, temperature, top_k, top_p, generator, use_cache)
        ids: list[torch.LongTensor] = []
        prev = None
        for level, grid in enumerate(grids):
            if mode == "next_scale":
                codes = sampler.level_next_scale(level, prev)
            else:
                codes = sampler.level_token(level, prev)
            ids.append(codes_to_ids(codes).reshape(batch, *grid))
            if level_callback is not None:
                replaced = level_callback(level, list(ids))
                if replaced is not None:
                    ids = _check_replacement(replaced, ids, prior.codebook_bits)
            level_codes = ids_to_codes(ids[-1].to(states.device), prior.codebook_bits, prior._dtype())
            prev = sampler.both(level_codes)
    finally:
        prior.train(was_training)
    return ids


def _check_replacement(replaced, ids, num_bits) -> list[torch.LongTensor]:
    replaced = list(replaced)
    if len(replaced) != len(ids) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(replaced, ids)):
        raise InvalidInputError("a level callback must return the token ids with the same number of levels and shapes.")
    for i, r in enumerate(replaced):
        check_ids_in_range(r, num_bits, what=f"callback token_ids[{i}]")
    return [r.long() for r in replaced]
