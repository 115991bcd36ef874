"""Stage 2a: align a trained tokenizer's tokens with language by training the shared-space heads.

The zero-shot tasks read ``get_video_features`` (the per-token ``video_projection`` of the ±1 codes, averaged)
against ``get_text_features`` (``text_projection`` of the pooled, projected text). Both heads sit on top of
frozen parts: the tokens of a clip are computed **without** text, as at zero-shot time, and the text encoder
and ``text_proj`` (which the levels also attend to) stay frozen. So the clips are tokenized once, and the heads
train from the cached codes in seconds per hundred steps on one CPU core:

>>> from pyratok_hf import PyraTokModel, bundled_model_path
>>> from pyratok_hf.training.alignment import tokenize_split, train_alignment_heads
>>> model = PyraTokModel.from_pretrained(bundled_model_path())
>>> train, val = tokenize_split(model, "corpus/train"), tokenize_split(model, "corpus/val")
>>> history = train_alignment_heads(model, train, val, steps=1500)   # model's heads trained in place

The objective is the model's own contrastive term (InfoNCE at ``config.contrastive_temperature``, the
temperature ``classify`` uses); clips with identical captions are not treated as negatives of each other.
``history`` holds the held-out retrieval curve (R@1 / R@5 every ``eval_every`` steps).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..modeling_pyratok import video_token_projection
from ..errors import DatasetError, InvalidInputError
from ..metrics import retrieval_metrics
from ..quantizer import ids_to_codes

__all__ = ["TokenizedSplit", "tokenize_split", "train_alignment_heads", "evaluate_retrieval", "reset_video_projection"]

#: Clip kinds whose caption describes the first ``num_frames`` frames (long clips narrate events over minutes).
SHORT_KINDS = ("procedural", "camera", "city")


@dataclass
class TokenizedSplit:
    """Text-free token ids of a corpus split (one tuple of per-level ``[t, h, w]`` tensors per clip)."""

    token_ids: list = field(default_factory=list)
    texts: list = field(default_factory=list)
    kinds: list = field(default_factory=list)
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, kinds) -> "TokenizedSplit":
        keep = [i for i, k in enumerate(self.kinds) if k in set(kinds)]
        return TokenizedSplit([self.token_ids[i] for i in keep], [self.texts[i] for i in keep], [self.kinds[i] for i in keep], self.seconds)

    def save(self, path) -> None:
        torch.save({"token_ids": self.token_ids, "texts": self.texts, "kinds": self.kinds, "seconds": self.seconds}, path)

    @classmethod
    def load(cls, path) -> "TokenizedSplit":
        raw = torch.load(path, weights_only=True)
        return cls([tuple(x) for x in raw["token_ids"]], list(raw["texts"]), list(raw["kinds"]), float(raw["seconds"]))


@torch.no_grad()
def tokenize_split(model, split_dir, num_frames: int = 17, kinds=SHORT_KINDS, max_clips: int | None = None, progress: bool = True) -> TokenizedSplit:
    """Tokenize the clips of a corpus split folder (``metadata.jsonl`` + videos) without text, as zero-shot does."""
    from ..video_io import read_video

    meta = os.path.join(os.fspath(split_dir), "metadata.jsonl")
    if not os.path.isfile(meta):
        raise DatasetError(f"{split_dir}: no metadata.jsonl; build a corpus with `pyratok build-corpus OUT` and pass OUT/train.")
    with open(meta) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if r.get("kind", "procedural") in set(kinds) and r.get("text")]
    if max_clips is not None:
        rows = rows[:max_clips]
    if not rows:
        raise DatasetError(f"{split_dir}: no captioned clips of kinds {list(kinds)}.")
    model.eval()
    out = TokenizedSplit()
    started = time.time()
    for row in tqdm(rows, desc=f"tokenizing {os.path.basename(os.path.normpath(split_dir))}", disable=not progress):
        frames = read_video(os.path.join(os.fspath(split_dir), row["file_name"]), max_frames=num_frames).frames
        ids = model.encode(frames[None]).token_ids
        out.token_ids.append(tuple(level[0].cpu() for level in ids))
        out.texts.append(row["text"])
        out.kinds.append(row.get("kind", "procedural"))
    out.seconds = time.time() - started
    return out


def reset_video_projection(model, hidden_dim: int | None, seed: int = 0) -> None:
    """Give ``model`` a freshly initialised video head of the given shape (and record it in the config)."""
    c = model.config
    device = model.level_embedding.device
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's random state
        torch.manual_seed(seed)
        model.video_projection = video_token_projection(c.codebook_bits, c.projection_dim, hidden_dim).to(device)
    c.video_projection_hidden_dim = hidden_dim
    with torch.no_grad():
        model.level_embedding.zero_()


def _codes(model, token_ids):
    K, msb = model.config.codebook_bits, model.config.ids_msb_first
    return [ids_to_codes(ids, K, msb_first=msb).float() for ids in token_ids]


def _clip_features(model, batch_codes) -> torch.Tensor:
    # The same reduction as get_video_features(pooling="clip", level=None): mean over tokens, then over levels.
    shapes = {tuple(tuple(c.shape) for c in codes) for codes in batch_codes}
    if len(shapes) == 1:  # one grid: one batched pass
        levels = [torch.stack([codes[l] for codes in batch_codes]) for l in range(len(batch_codes[0]))]
        return torch.stack(model.video_embeddings(levels)).mean(0)
    return torch.cat([torch.stack(model.video_embeddings([c[None] for c in codes])).mean(0) for codes in batch_codes])


def _token_scores(model, batch_codes, text: torch.Tensor, levels, sharpness: float = 0.1) -> torch.Tensor:
    """``[texts, clips]``: soft maximum (log-mean-exp at ``sharpness``) over a clip's tokens of their cosine with each text."""
    scores = []
    for codes in batch_codes:
        per_level = model.video_embeddings([c[None] for c in codes], pooling="token")
        tokens = torch.cat([F.normalize(per_level[l][0].flatten(0, 2), dim=-1) for l in levels])  # [N, D]
        sim = text @ tokens.T  # [texts, N]
        scores.append(sharpness * (torch.logsumexp(sim / sharpness, dim=1) - math.log(tokens.shape[0])))
    return torch.stack(scores, dim=1)


def _text_features(model, texts) -> torch.Tensor:
    with torch.no_grad():
        pooled = model.encode_text(list(texts))[2]
    return pooled


def _positives(texts) -> torch.Tensor:
    index = {}
    labels = torch.tensor([index.setdefault(t, len(index)) for t in texts])
    return labels[:, None] == labels[None, :]


@torch.no_grad()
def evaluate_retrieval(model, split: TokenizedSplit, pooled_text: torch.Tensor | None = None) -> dict:
    """Text->video / video->text recall of the model's heads on a tokenized split (identical captions: positives)."""
    codes = [_codes(model, ids) for ids in split.token_ids]
    video = F.normalize(_clip_features(model, codes), dim=-1)
    pooled = _text_features(model, split.texts) if pooled_text is None else pooled_text
    text = F.normalize(model.text_projection(pooled), dim=-1)
    return retrieval_metrics(text @ video.T, _positives(split.texts), ks=(1, 5))


def train_alignment_heads(
    model,
    train: TokenizedSplit,
    eval_split: TokenizedSplit | None = None,
    steps: int = 1500,
    batch_size: int = 32,
    lr: float = 2e-3,
    weight_decay: float = 0.01,
    warmup_steps: int = 50,
    eval_every: int = 250,
    seed: int = 0,
    token_weight: float = 0.0,
    token_levels: tuple = (-1,),
    progress: bool = True,
) -> list[dict]:
    """Train ``video_projection``, ``level_embedding`` and ``text_projection`` with the contrastive term.

    ``token_weight`` > 0 adds a token-level term (late interaction, as FILIP): a clip's score for a caption is a
    soft maximum over the tokens of ``token_levels`` of their cosine with the caption, contrasted over the batch.
    The clip-level term aligns averages; this one makes single tokens (what segmentation and localization read)
    carry the caption's meaning. Everything else stays frozen. Returns the history: ``{"step", "loss", "lr"}`` per logged step plus the
    held-out ``t2v_R@1`` / ``t2v_R@5`` / ``v2t_R@1`` / ``v2t_R@5`` every ``eval_every`` steps (and at the end).
    """
    if len(train) < 2 or batch_size < 2:
        raise InvalidInputError("contrastive training needs at least 2 clips and batch_size >= 2.")
    if steps < 1 or lr <= 0:
        raise InvalidInputError(f"steps must be >= 1 and lr > 0, got steps={steps}, lr={lr}.")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model.requires_grad_(False).eval()
    heads = [*model.video_projection.parameters(), model.level_embedding, *model.text_projection.parameters()]
    for p in heads:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(heads, lr=lr, weight_decay=weight_decay)

    def schedule(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / max(1, steps - warmup_steps)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    codes = [_codes(model, ids) for ids in train.token_ids]
    pooled = _text_features(model, train.texts)
    eval_pooled = _text_features(model, eval_split.texts) if eval_split is not None else None
    temperature = model.config.contrastive_temperature
    history = []
    started = time.time()
    bar = tqdm(range(steps), desc="aligning heads", disable=not progress)
    for step in bar:
        batch = rng.sample(range(len(codes)), min(batch_size, len(codes)))
        video = F.normalize(_clip_features(model, [codes[i] for i in batch]), dim=-1)
        text = F.normalize(model.text_projection(pooled[batch]), dim=-1)
        logits = text @ video.T / temperature
        same = _positives([train.texts[i] for i in batch])
        # Duplicate captions are positives of each other: drop them from the negatives (keep the diagonal).
        logits = logits.masked_fill(same & ~torch.eye(len(batch), dtype=torch.bool), float("-inf"))
        target = torch.arange(len(batch))
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        if token_weight:
            token_logits = _token_scores(model, [codes[i] for i in batch], text, token_levels) / temperature
            token_logits = token_logits.masked_fill(same & ~torch.eye(len(batch), dtype=torch.bool), float("-inf"))
            loss = loss + token_weight * 0.5 * (F.cross_entropy(token_logits, target) + F.cross_entropy(token_logits.T, target))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        record = {"step": step + 1, "loss": float(loss.detach()), "lr": scheduler.get_last_lr()[0], "seconds": round(time.time() - started, 1)}
        if eval_split is not None and ((step + 1) % eval_every == 0 or step + 1 == steps):
            metrics = evaluate_retrieval(model, eval_split, eval_pooled)
            record.update({k: metrics[k] for k in ("t2v_R@1", "t2v_R@5", "v2t_R@1", "v2t_R@5")})
            bar.set_postfix(loss=f"{record['loss']:.3f}", r1=f"{record['t2v_R@1']:.3f}")
        history.append(record)
    model.requires_grad_(False)
    return history
