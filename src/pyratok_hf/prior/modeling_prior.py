"""``PyraTokPriorModel``: an autoregressive prior over the PyraTok token pyramid.

One sequence per video, read by a transformers causal LM (``Qwen2Model`` / ``LlamaModel``) through
``inputs_embeds`` and a custom block-causal 4D attention mask::

    [ text_0 .. text_S-1 | SOV | SEP_0  slot .. slot | SEP_1  slot .. slot | ... | SEP_L-1  slot .. slot ]
      text prefix          start  level 0 (coarsest)   level 1                       level L-1 (finest)

Every *slot* predicts the token at one cell of its level's grid (raster order t, h, w). A slot's input is

    prev_level_in(codes of level l-1 upsampled to level l's grid, nearest)   -- zeros for level 0
  + prev_token_in(bits of the previous token of level l)                     -- token mode only
  + level_embedding[l] + position_in(sinusoid of the cell centre in finest-grid units)

* ``next_scale`` mode (VAR style, the default): a slot sees the text, SOV, all earlier levels and *every* slot
  of its own level, so a whole level is predicted in one forward pass given the levels below it.
* ``token`` mode: slots of a level are causal (slot j sees slots <= j and the previous token's bits), so a level
  is produced token by token; the coarser levels still arrive through the upsampled codes.

Text tokens attend to each other (a prefix, nothing predicts them); padded text positions are never attended
to. The head gives K bit logits per slot (binary cross-entropy, as Infinity does) or, for K <= 16, 2^K class
logits. The loss of level l is reported in nats per bit; ``loss`` = sum over levels (-sum_l log p(q(l) | ...)).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from ..errors import CheckpointError, ConfigError, InvalidInputError
from ..lapq import resize_causal
from ..quantizer import check_ids_in_range, codes_to_ids, ids_to_codes
from .configuration_prior import PyraTokPriorConfig, SUPPORTED_LMS
from .generation import generate as _generate
from .layout import SequenceLayout, block_causal_mask, build_layout, position_ids  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

#: Sinusoid frequencies per axis (t, h, w) of the position features; features are 3 * 2 * this wide.
POSITION_FREQUENCIES = 16
#: Longest wavelength scale of the position sinusoids, in finest-grid cells.
POSITION_BASE = 1000.0


@dataclass
class PyraTokPriorOutput(ModelOutput):
    """Result of :meth:`PyraTokPriorModel.forward`.

    Args:
        loss: sum over levels of ``level_losses`` (the AR negative log-likelihood, nats per bit per level).
        level_losses: ``[num_levels]`` per-level losses.
        logits: per level, ``[B, t, h, w, K]`` bit logits (or ``[B, t, h, w, 2^K]`` class logits).
    """

    loss: torch.FloatTensor | None = None
    level_losses: torch.FloatTensor | None = None
    logits: tuple[torch.FloatTensor, ...] | None = None


def cell_centres(grid: tuple[int, int, int], finest: tuple[int, int, int]) -> torch.Tensor:
    """``[t*h*w, 3]`` centres of a level's cells in finest-grid units (raster order t, h, w).

    Time follows the causal layout of the tokenizer: the first latent frame has its own slot, the others are
    grouped evenly, so a cell's time is the centre of the latent frames it covers.
    """
    t, h, w = grid
    T, H, W = finest
    if t == 1:
        times = torch.zeros(1)
    else:
        k = torch.arange(t, dtype=torch.float32)
        times = torch.where(k == 0, torch.zeros(()), 1 + (k - 0.5) * (T - 1) / (t - 1) - 0.5)
    rows = (torch.arange(h, dtype=torch.float32) + 0.5) * H / h - 0.5
    cols = (torch.arange(w, dtype=torch.float32) + 0.5) * W / w - 0.5
    grid_t, grid_h, grid_w = torch.meshgrid(times, rows, cols, indexing="ij")
    return torch.stack([grid_t, grid_h, grid_w], -1).reshape(-1, 3)


def sinusoid_features(coords: torch.Tensor) -> torch.Tensor:
    """``[N, 3]`` coordinates -> ``[N, 6 * POSITION_FREQUENCIES]`` sin/cos features per axis."""
    freqs = POSITION_BASE ** (-torch.arange(POSITION_FREQUENCIES, dtype=torch.float32) / POSITION_FREQUENCIES)
    angles = coords[..., None] * freqs  # [N, 3, F]
    return torch.cat([angles.sin(), angles.cos()], -1).reshape(coords.shape[0], -1)


class PyraTokPriorPreTrainedModel(PreTrainedModel):
    config_class = PyraTokPriorConfig
    base_model_prefix = "prior"
    main_input_name = "level_codes"
    supports_gradient_checkpointing = True
    # What the inner Qwen2/Llama model supports with our custom 4D float mask: eager and SDPA (flash attention
    # cannot take an arbitrary block-causal mask).
    _supports_sdpa = True
    _no_split_modules = ["Qwen2DecoderLayer", "LlamaDecoderLayer"]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, allow_pickle: bool = False, strict: bool = True, **kwargs):
        """Load a saved prior. Safetensors only unless ``allow_pickle=True`` (pickled ``.bin`` weights can run
        code when loaded); with ``strict=True`` weights that do not match ``config.json`` (missing, unexpected
        or differently shaped) raise :class:`~pyratok_hf.errors.CheckpointError` naming them."""
        if not allow_pickle:
            if kwargs.get("use_safetensors") is False:
                raise CheckpointError("use_safetensors=False loads pickled weights, which can run code; pass allow_pickle=True to accept that risk.")
            kwargs["use_safetensors"] = True
        want_info = kwargs.pop("output_loading_info", False)
        kwargs.setdefault("ignore_mismatched_sizes", True)  # listed and refused below, naming the keys
        try:
            model, info = super().from_pretrained(pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs)
        except OSError as err:
            if not allow_pickle and not isinstance(err, CheckpointError) and "safetensors" in str(err):
                raise CheckpointError(
                    f"{pretrained_model_name_or_path} has no safetensors weights. Pickled .bin/.pt files can run code when "
                    "loaded and are refused; convert them to safetensors, or pass allow_pickle=True if you trust the source."
                ) from err
            raise
        problems = [f"{what}: {sorted(str(k if isinstance(k, str) else k[0]) for k in info.get(key) or [])[:5]}"
                    for key, what in (("mismatched_keys", "shape mismatch"), ("missing_keys", "missing from the checkpoint"),
                                      ("unexpected_keys", "not used by the model")) if info.get(key)]  # fmt: skip
        if strict and problems:
            raise CheckpointError(
                f"prior checkpoint {pretrained_model_name_or_path} does not match its config.json — " + "; ".join(problems)
                + ". Was config.json edited, or are these weights from another model? (strict=False loads anyway)"
            )
        return (model, info) if want_info else model


class PyraTokPriorModel(PyraTokPriorPreTrainedModel):
    """Text-conditioned autoregressive prior over PyraTok's coarse-to-fine token pyramid.

    >>> prior = PyraTokPriorModel(PyraTokPriorConfig(codebook_bits=16, num_levels=4))
    >>> out = prior(token_ids=enc.token_ids, text_states=states, text_mask=mask)   # teacher forcing
    >>> out.loss, out.level_losses
    >>> ids = prior.generate(states, mask, grids=tokenizer.token_grids(17, 64, 64), guidance_scale=3.0)
    >>> video = tokenizer.decode(token_ids=ids, output_shape=(17, 64, 64)).sample
    """

    def __init__(self, config: PyraTokPriorConfig):
        super().__init__(config)
        import transformers

        d, K = config.hidden_size, config.codebook_bits
        # The LM runs the attention, so it gets the implementation resolved for this model (``attn_implementation``
        # of from_pretrained / the config); ``set_attn_implementation`` later reaches it as a PreTrainedModel child.
        lm_config = config.build_lm_config(attn_implementation=self.config._attn_implementation)
        self.lm = getattr(transformers, SUPPORTED_LMS[config.lm_type][1])(lm_config)
        self.text_in = nn.Linear(config.text_dim, d)
        # Index 0: start of video; 1 + l: separator before level l.
        self.special_tokens = nn.Embedding(config.num_levels + 1, d)
        self.level_embedding = nn.Embedding(config.num_levels, d)
        self.prev_level_in = nn.Linear(K, d)
        self.prev_token_in = nn.Linear(K, d)
        self.position_in = nn.Linear(6 * POSITION_FREQUENCIES, d)
        self.head = nn.Linear(d, config.num_outputs)
        self.post_init()

    # ------------------------------------------------------------------ helpers
    @property
    def codebook_bits(self) -> int:
        return self.config.codebook_bits

    def _dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    def _check_mode(self, mode: str | None) -> str:
        mode = mode or self.config.mode
        if mode not in ("next_scale", "token"):
            raise InvalidInputError(f"mode must be 'next_scale' or 'token', got {mode!r}.")
        return mode

    def _check_grids(self, grids) -> list[tuple[int, int, int]]:
        grids = [tuple(int(x) for x in g) for g in grids]
        if not 1 <= len(grids) <= self.config.num_levels or any(len(g) != 3 or min(g) < 1 for g in grids):
            raise InvalidInputError(
                f"grids must list 1..{self.config.num_levels} (t, h, w) token grids, coarse to fine, got {grids}; "
                "use tokenizer.token_grids(num_frames, height, width)."
            )
        return grids

    def prepare_text(self, text_states: torch.Tensor | None, text_mask: torch.Tensor | None, batch_size: int | None = None):
        """Validate text states ``[B, S, text_dim]`` (or ``None`` = no text) -> (states, bool mask) on our device."""
        device, dtype = self.head.weight.device, self._dtype()
        if text_states is None:
            if batch_size is None:
                raise InvalidInputError("without text_states, pass batch_size (how many videos to generate).")
            return torch.zeros(batch_size, 0, self.config.text_dim, device=device, dtype=dtype), torch.zeros(batch_size, 0, dtype=torch.bool, device=device)
        if not torch.is_tensor(text_states) or text_states.dim() != 3:
            raise InvalidInputError(f"text_states must be a float tensor [batch, tokens, {self.config.text_dim}], got {getattr(text_states, 'shape', type(text_states).__name__)}.")
        if text_states.shape[-1] != self.config.text_dim:
            raise InvalidInputError(
                f"text_states have width {text_states.shape[-1]} but this prior reads text_dim={self.config.text_dim} "
                "(raw text-encoder states for the text-to-video prior, the tokenizer's projected states for an L_AR prior)."
            )
        if text_mask is None:
            text_mask = torch.ones(text_states.shape[:2], dtype=torch.bool)
        if tuple(text_mask.shape) != tuple(text_states.shape[:2]):
            raise InvalidInputError(f"text_mask {tuple(text_mask.shape)} must match text_states {tuple(text_states.shape[:2])}.")
        return text_states.to(device, dtype), text_mask.to(device).bool()

    def prefix_embeddings(self, text_states: torch.Tensor) -> torch.Tensor:
        """Text prefix + start-of-video token: ``[B, S + 1, d]``."""
        batch = text_states.shape[0]
        sov = self.special_tokens.weight[0].expand(batch, 1, -1)
        return torch.cat([self.text_in(text_states), sov], 1)

    def separator_embedding(self, level: int, batch: int) -> torch.Tensor:
        return self.special_tokens.weight[1 + level].expand(batch, 1, -1)

    def level_base_embeddings(self, level: int, grids, prev_codes: torch.Tensor | None, batch: int) -> torch.Tensor:
        """``[B, N_l, d]``: what every slot of level ``level`` gets whatever the mode.

        ``prev_codes`` are level l-1's ±1 codes ``[B, t, h, w, K]`` (``None`` for level 0), upsampled with nearest
        neighbours onto level l's grid (:func:`pyratok_hf.lapq.resize_causal`), so gradients flow back to them.
        """
        grid, dtype = grids[level], self._dtype()
        device = self.head.weight.device
        position = self.position_in(sinusoid_features(cell_centres(grid, grids[-1])).to(device, dtype))
        base = (position + self.level_embedding.weight[level]).expand(batch, -1, -1)
        if prev_codes is None:
            prev = torch.zeros(batch, math.prod(grid), self.codebook_bits, device=device, dtype=dtype)
        else:
            up = resize_causal(prev_codes.to(dtype).movedim(-1, 1), grid, "nearest")  # [B, K, t, h, w]
            prev = up.flatten(2).transpose(1, 2)
        return base + self.prev_level_in(prev)

    def token_shift_embeddings(self, own_codes: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
        """Token mode: slot j gets the bits of token j-1 of its level (zeros for j = 0); slots ``start:end``."""
        flat = own_codes.to(self._dtype())  # [B, N, K]
        shifted = torch.cat([torch.zeros_like(flat[:, :1]), flat[:, :-1]], 1)
        return self.prev_token_in(shifted[:, start:end])

    def run_lm(self, embeddings, attention_mask, start: int, cache=None, position_ids=None):
        """Run the LM on positions ``start:start+n`` (with ``cache`` holding earlier positions).

        ``position_ids`` ``[B, n]``: the rotary positions of these entries (default ``start .. start+n-1``; the
        callers pass :func:`~pyratok_hf.prior.layout.position_ids`, which skips padded text).
        """
        n = embeddings.shape[1]
        if position_ids is None:
            position_ids = torch.arange(start, start + n, device=embeddings.device)[None]
        out = self.lm(
            inputs_embeds=embeddings,
            attention_mask=attention_mask,
            position_ids=position_ids.to(embeddings.device),
            cache=cache,
            use_cache=cache is not None,
        )
        return out.last_hidden_state

    # ------------------------------------------------------------------ teacher forcing
    def _codes_from_inputs(self, level_codes, token_ids) -> list[torch.Tensor]:
        if (level_codes is None) == (token_ids is None):
            raise InvalidInputError("pass exactly one of level_codes (±1 [B, t, h, w, K] per level) or token_ids ([B, t, h, w] per level).")
        if token_ids is not None:
            if torch.is_tensor(token_ids):
                raise InvalidInputError("token_ids must be a list with one LongTensor [B, t, h, w] per level, coarse to fine.")
            codes = []
            for i, ids in enumerate(token_ids):
                if not torch.is_tensor(ids) or ids.dim() != 4:
                    raise InvalidInputError(f"token_ids[{i}] must be a LongTensor [B, t, h, w].")
                check_ids_in_range(ids, self.codebook_bits, what=f"token_ids[{i}]")
                codes.append(ids_to_codes(ids.to(self.head.weight.device), self.codebook_bits, self._dtype()))
            return codes
        if torch.is_tensor(level_codes):
            raise InvalidInputError("level_codes must be a list with one ±1 tensor [B, t, h, w, K] per level, coarse to fine.")
        codes = list(level_codes)
        for i, c in enumerate(codes):
            if not torch.is_tensor(c) or c.dim() != 5 or c.shape[-1] != self.codebook_bits:
                raise InvalidInputError(f"level_codes[{i}] must be [B, t, h, w, {self.codebook_bits}], got {getattr(c, 'shape', type(c).__name__)}.")
        return codes

    def forward(
        self,
        level_codes: list[torch.Tensor] | None = None,
        token_ids: list[torch.LongTensor] | None = None,
        text_states: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        mode: str | None = None,
        return_dict: bool = True,
        **kwargs,
    ) -> PyraTokPriorOutput:
        """Teacher-forced L_AR of a token pyramid (``level_codes`` ±1, differentiable, or ``token_ids``).

        In training mode each sample's text is dropped with probability ``config.cfg_dropout_prob`` (for
        classifier-free guidance). Gradients reach ``level_codes`` through the input projections (the
        upsampled codes of each coarser level, and the previous token in token mode) and through the bit
        targets (the binary cross-entropy is written as ``softplus(l) - l * y`` with ``y = (code + 1) / 2``).
        """
        mode = self._check_mode(mode)
        codes = self._codes_from_inputs(level_codes, token_ids)
        grids = self._check_grids([tuple(c.shape[1:4]) for c in codes])
        batch = codes[0].shape[0]
        if any(c.shape[0] != batch for c in codes):
            raise InvalidInputError("all levels must have the same batch size.")
        states, mask = self.prepare_text(text_states, text_mask, batch)
        if states.shape[0] != batch:
            raise InvalidInputError(f"got text for {states.shape[0]} videos but tokens for {batch}.")
        if self.training and self.config.cfg_dropout_prob > 0 and mask.shape[1] > 0:
            keep = torch.rand(batch, device=mask.device) >= self.config.cfg_dropout_prob
            mask = mask & keep[:, None]

        layout = build_layout(states.shape[1], grids)
        pieces = [self.prefix_embeddings(states)]
        for level in range(len(grids)):
            prev = codes[level - 1] if level > 0 else None
            slots = self.level_base_embeddings(level, grids, prev, batch)
            if mode == "token":
                slots = slots + self.token_shift_embeddings(codes[level].flatten(1, 3))
            pieces += [self.separator_embedding(level, batch), slots]
        embeddings = torch.cat(pieces, 1)
        attention = block_causal_mask(layout, mask, mode, embeddings.dtype)
        hidden = self.run_lm(embeddings, attention, 0, position_ids=position_ids(layout, mask))

        logits, losses = [], []
        for level, grid in enumerate(grids):
            level_logits = self.head(hidden[:, layout.block_starts[level] : layout.block_ends[level]]).float()
            losses.append(self.level_loss(level_logits, codes[level].flatten(1, 3)))
            logits.append(level_logits.reshape(batch, *grid, -1))
        level_losses = torch.stack(losses)
        out = PyraTokPriorOutput(loss=level_losses.sum(), level_losses=level_losses, logits=tuple(logits))
        return out if return_dict else out.to_tuple()

    def level_loss(self, logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of one level's tokens, in nats per bit."""
        if self.config.head == "bits":
            targets = (codes.float() + 1) / 2  # differentiable for straight-through codes
            return (F.softplus(logits) - logits * targets).mean()
        ids = codes_to_ids(codes.detach())
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1)) / self.codebook_bits

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def generate(self, text_states=None, text_mask=None, grids=None, **kwargs) -> list[torch.LongTensor]:
        """Sample a token pyramid; see :func:`pyratok_hf.prior.generation.generate` for every option."""
        return _generate(self, text_states, text_mask, grids, **kwargs)

    def as_ar_loss_hook(self):
        """This prior as the tokenizer's ``set_ar_loss_hook`` callable (see :class:`PriorARLoss`)."""
        return PriorARLoss(self)


class PriorARLoss:
    """Adapter for ``PyraTokModel.set_ar_loss_hook``: ``fn(level_codes, text_states, text_mask) -> L_AR``.

    The tokenizer calls the hook with its straight-through codes (so L_AR's gradient reaches the quantizer)
    and its *projected* text states (width ``text_embed_dim``). The prior therefore must read that width:
    build it with ``PyraTokPriorConfig.for_tokenizer(tokenizer.config, text_source="projected")``. A prior
    trained on raw text-encoder states (the text-to-video one) cannot read projected states and is refused with
    a :class:`ConfigError`. Put the prior's parameters in the optimizer too to train both jointly.
    """

    def __init__(self, prior: PyraTokPriorModel, mode: str | None = None):
        self.prior = prior
        self.mode = mode

    def __call__(self, level_codes, text_states, text_mask) -> torch.Tensor:
        if text_states is not None and text_states.shape[-1] != self.prior.config.text_dim:
            raise ConfigError(
                f"the tokenizer passes text states of width {text_states.shape[-1]} to the L_AR hook but the prior reads "
                f"text_dim={self.prior.config.text_dim}; build the prior with "
                "PyraTokPriorConfig.for_tokenizer(tokenizer.config, text_source='projected')."
            )
        if len(level_codes) > self.prior.config.num_levels:
            raise ConfigError(f"the tokenizer has {len(level_codes)} levels but the prior only {self.prior.config.num_levels}.")
        return self.prior(level_codes=list(level_codes), text_states=text_states, text_mask=text_mask, mode=self.mode).loss


def register_auto_classes() -> None:
    """Register the prior with ``AutoConfig`` / ``AutoModel`` in this process (idempotent).

    Unlike the tokenizer, the prior is not registered for ``auto_map`` remote code: transformers copies the
    module's source next to the weights for that, which cannot follow this subpackage's ``..`` imports. Saved
    priors therefore load with ``AutoModel`` once ``pyratok_hf.prior`` has been imported.
    """
    try:
        AutoConfig.register("pyratok_prior", PyraTokPriorConfig)
    except ValueError:
        pass
    try:
        AutoModel.register(PyraTokPriorConfig, PyraTokPriorModel)
    except ValueError:
        pass
