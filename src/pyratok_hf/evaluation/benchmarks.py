"""Dataset-level evaluations on the offline corpus, the pixel-statistics baseline, and the zero-shot benchmark.

Evaluators (each returns a JSON-ready dict with ``metrics`` and details, and writes PNGs to ``plot_dir``):

* :func:`evaluate_reconstruction`: PSNR / SSIM / bits per pixel when decoding the first ``k`` levels
  (``k = 1..L``), and codebook usage / perplexity per level;
* :func:`evaluate_retrieval`: text -> video and video -> text R@1 / R@5 among the captions of a split
  (identical captions count as positives of each other's videos);
* :func:`evaluate_localization`: mAP over tIoU 0.1:0.1:0.7 (THUMOS'14 protocol) on ``procedural_long`` clips;
  each moving segment of the metadata is a query (its label, e.g. "the red circle moves left"), its class is
  the action ("moving left"), and the prediction is the top segment of :func:`pyratok_hf.tasks.localize_scores`;
* :func:`evaluate_segmentation`: mIoU and region similarity J for each described object ("the red circle")
  of the short procedural clips, against the corpus mask files;
* :func:`evaluate_generation`: prompt following of generated clips (see
  :mod:`pyratok_hf.evaluation.prompt_following`) on held-out single-object captions, vs shuffled captions
  and vs the real clips of those captions.

**Baseline (b)** (:class:`PixelStatisticsBaseline`): text is embedded with raw all-MiniLM-L6-v2 (mean-pooled
last hidden states, L2-normalised; no PyraTok weights). A video is described by pixel statistics, defined
per pixel so that clip, frame and pixel features are averages of the same thing:

* a one-hot RGB colour bin (4 bins per channel, 64 bins): averaged over a clip it is the colour histogram;
* motion: pixels that differ from the per-pixel temporal median (the static background) by more than 0.15
  (in [-1, 1] units) are foreground; the foreground centroid's displacement from the previous frame
  ``(dx, dy)`` (in units of the frame side) is given to every foreground pixel, plus a foreground indicator.
  Averaged over a clip this is the foreground-weighted mean motion vector and the foreground fraction.

These 67 features are standardised and mapped to the 384-d text space by **ridge least squares fitted on the
train split** (video features -> caption embeddings, ridge 1e-2, with a bias). Clip, per-frame and per-pixel
embeddings use the same map, so the baseline runs every zero-shot task through exactly the same code as
PyraTok (per-frame curves for localization, per-pixel maps for segmentation).

:func:`run_zero_shot_benchmark` evaluates several models and the baseline and writes ``benchmark.json`` and a
markdown table ``benchmark.md``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers.modeling_outputs import BaseModelOutputWithPooling

from ..errors import CheckpointError, DatasetError, InvalidInputError, PyraTokError
from ..video_io import atomic_write_json, atomic_write_text, read_video

logger = logging.getLogger(__name__)

__all__ = [
    "ClipRecord",
    "PixelStatisticsBaseline",
    "evaluate_generation",
    "evaluate_localization",
    "evaluate_reconstruction",
    "evaluate_retrieval",
    "evaluate_segmentation",
    "load_model",
    "load_records",
    "run_zero_shot_benchmark",
    "split_folder",
]


def _tqdm(iterable, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Data access
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class ClipRecord:
    """One row of a split's ``metadata.jsonl``: the video path, its caption and the other fields."""

    path: Path
    text: str | None
    metadata: dict
    folder: Path

    @property
    def id(self) -> str:
        return str(self.metadata.get("id") or self.path.stem)

    @property
    def kind(self) -> str | None:
        return self.metadata.get("kind")

    def read(self) -> tuple[torch.Tensor, float]:
        """Decoded frames ``[3, T, H, W]`` in [-1, 1] and the frame rate."""
        clip = read_video(self.path)
        return clip.frames, float(clip.fps or self.metadata.get("fps") or 8.0)


def split_folder(data_dir: str | os.PathLike, split: str) -> Path:
    """``DATA/split`` when it holds a ``metadata.jsonl`` (corpus layout), else ``DATA`` itself if it does."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory; pass the corpus folder (with train/ and val/) or one split folder.")
    for candidate in (root / split, root):
        if (candidate / "metadata.jsonl").is_file() or (candidate / "metadata.csv").is_file():
            return candidate
    raise DatasetError(f"{root}: no metadata.jsonl in {root / split} or {root}; build a corpus with `pyratok build-corpus OUT`.")


def load_records(
    data_dir: str | os.PathLike,
    split: str = "val",
    *,
    where: Callable[[ClipRecord], bool] | None = None,
    max_samples: int | None = None,
    what: str = "clips",
) -> list[ClipRecord]:
    """The split's rows (optionally filtered by ``where``), at most ``max_samples``; empty -> DatasetError."""
    from ..data.datasets import VideoFolderDataset

    folder = split_folder(data_dir, split)
    dataset = VideoFolderDataset(folder)
    records = [ClipRecord(Path(e["path"]), e["text"], dict(e["metadata"]), folder) for e in dataset.entries]
    if where is not None:
        records = [r for r in records if where(r)]
    if max_samples is not None:
        if max_samples < 1:
            raise InvalidInputError(f"max_samples must be at least 1, got {max_samples}.")
        records = records[:max_samples]
    if not records:
        raise DatasetError(f"{folder}: found no {what} to evaluate on (split {split!r}). " + _BIGGER_CORPUS)
    return records


_BIGGER_CORPUS = (
    "Build a larger corpus, e.g. `pyratok build-corpus data/corpus` (default size: 480 train / 80 val short clips "
    "plus long ones; raise --num-val for more), then pass --data data/corpus; or evaluate another split with --split train."
)


def _too_few(task: str, what: str, records: list, data_dir, split: str, max_samples: int | None, need: int = 2) -> DatasetError:
    limit = f" (--max-samples {max_samples} kept only {len(records)})" if max_samples is not None and max_samples < need else ""
    return DatasetError(
        f"{task} needs at least {need} {what} in split {split!r} of {data_dir}, found {len(records)}{limit}. "
        + ("Pass --max-samples 2 or more." if limit else _BIGGER_CORPUS)
    )


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """A :class:`~pyratok_hf.PyraTokModel` in eval mode from a saved folder (or a Hub id when online), through the
    loader every command uses (:func:`pyratok_hf.commands.load_model`: same checks, same messages)."""
    from ..commands import load_model as load_for_command

    try:
        return load_for_command(str(path), str(device))
    except PyraTokError:
        raise
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot load a PyraTok model from {path!r}: {err}. Pass a folder written by save_pretrained.") from err


def _plot_path(plot_dir: str | os.PathLike | None, name: str) -> Path | None:
    return None if plot_dir is None else Path(plot_dir) / name


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")[:60] or "clip"


# ----------------------------------------------------------------------------------------------------------------
# Reconstruction
# ----------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_reconstruction(
    model: Any,
    data_dir: str | os.PathLike,
    *,
    split: str = "val",
    max_samples: int | None = None,
    num_frames: int = 17,
    size: tuple[int, int] | None = None,
    plot_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Reconstruction quality per number of decoded levels and codebook usage per level.

    Clips come from :func:`pyratok_hf.data.load_video_text_dataset` (``num_frames`` from the start of each
    video, optional resize). Row ``k`` of ``per_levels`` decodes the first ``k`` levels (coarse to fine); its
    ``bpp`` counts the bits of those levels' tokens (K bits each) per input pixel.
    """
    from ..data import load_video_text_dataset
    from ..metrics import CodebookUsageAccumulator, bits_per_pixel, psnr, ssim
    from ..tasks.retrieval import model_device
    from ..tasks.visualize import plot_bars, plot_frame_grid

    folder = split_folder(data_dir, split)
    dataset = load_video_text_dataset(folder, num_frames=num_frames, start="first", size=size, default_caption="video")
    count = len(dataset) if max_samples is None else min(len(dataset), int(max_samples))
    if count < 1:
        raise DatasetError(f"{folder}: no clips to reconstruct.")
    levels = int(model.config.num_levels)
    bits = int(model.config.codebook_bits)
    usage = CodebookUsageAccumulator(bits, num_levels=levels)
    sums = {k: {"psnr": 0.0, "ssim": 0.0, "bpp": 0.0} for k in range(1, levels + 1)}
    device = model_device(model)
    example = None
    for index in _tqdm(range(count), desc="reconstruction", disable=not progress):
        video = dataset[index]["pixel_values"].unsqueeze(0).to(device)
        encoded = model.encode(video)
        usage.update([ids.cpu() for ids in encoded.token_ids])
        for k in range(1, levels + 1):
            decoded = model.decode(token_ids=encoded.token_ids[:k], output_shape=encoded.input_shape).sample.float().cpu().clamp(-1, 1)
            reference = video.float().cpu()
            window = min(11, reference.shape[-1], reference.shape[-2])
            window -= 1 - window % 2  # odd window that fits the frame
            sums[k]["psnr"] += float(psnr(decoded, reference, max_psnr=100.0).mean())
            sums[k]["ssim"] += float(ssim(decoded, reference, window_size=max(window, 1)).mean())
            sums[k]["bpp"] += bits_per_pixel([ids.cpu() for ids in encoded.token_ids[:k]], bits, tuple(reference.shape))
            if index == 0 and k == levels:
                example = (reference[0], decoded[0])
    per_levels = [{"levels": k, **{name: value / count for name, value in sums[k].items()}} for k in range(1, levels + 1)]
    result: dict[str, Any] = {
        "task": "reconstruction",
        "num_clips": count,
        "metrics": {"psnr": per_levels[-1]["psnr"], "ssim": per_levels[-1]["ssim"], "bpp": per_levels[-1]["bpp"]},
        "per_levels": per_levels,
        "codebook_usage": usage.compute(),
        "plots": [],
    }
    if plot_dir is not None:
        result["plots"].append(str(plot_bars({f"{r['levels']} lv": {"PSNR (dB)": r["psnr"]} for r in per_levels}, Path(plot_dir) / "reconstruction_psnr.png", title="PSNR vs decoded levels", ylabel="dB")))
        result["plots"].append(str(plot_bars({f"level {u['level']}": {"perplexity": u["perplexity"]} for u in result["codebook_usage"]}, Path(plot_dir) / "codebook_perplexity.png", title="codebook perplexity per level")))
        if example is not None:
            result["plots"].append(str(plot_frame_grid({"input": example[0], "reconstruction": example[1]}, Path(plot_dir) / "reconstruction_example.png")))
    return result


# ----------------------------------------------------------------------------------------------------------------
# Retrieval
# ----------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_retrieval(
    embedder: Any,
    data_dir: str | os.PathLike,
    *,
    split: str = "val",
    max_samples: int | None = None,
    plot_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """R@1 / R@5 both ways among the captioned clips of ``split`` (identical captions are mutual positives)."""
    from ..tasks.retrieval import embed_videos, retrieve

    records = load_records(data_dir, split, where=lambda r: bool(r.text), max_samples=max_samples, what="captioned clips")
    if len(records) < 2:
        raise _too_few("retrieval", "captioned clips", records, data_dir, split, max_samples)
    features = []
    for record in _tqdm(records, desc="retrieval: encoding clips", disable=not progress):
        frames, _ = record.read()
        features.append(embed_videos(embedder, [frames])[0])
    texts = [r.text.strip() for r in records]
    positives = torch.tensor([[a == b for b in texts] for a in texts])
    result = retrieve(embedder, None, texts, positives=positives, ks=(1, 5), video_features=torch.stack(features))
    out: dict[str, Any] = {
        "task": "retrieval",
        "num_clips": len(records),
        "metrics": result.metrics,
        "chance_R@1": float(positives.float().sum(1).mean() / len(records)),
        "plots": [],
    }
    path = _plot_path(plot_dir, "retrieval_similarity.png")
    if path is not None:
        out["plots"].append(str(result.plot(path, video_names=[r.id for r in records])))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Localization
# ----------------------------------------------------------------------------------------------------------------


def _moving_segments(record: ClipRecord) -> list[dict]:
    return [s for s in record.metadata.get("segments") or [] if s.get("action") and s["action"] != "static" and s.get("label")]


@torch.no_grad()
def evaluate_localization(
    embedder: Any,
    data_dir: str | os.PathLike,
    *,
    split: str = "val",
    max_samples: int | None = None,
    window: int = 25,
    threshold: float | None = None,
    std_factor: float = 0.5,
    level: int = 0,
    tiou_thresholds: Sequence[float] | None = None,
    plot_dir: str | os.PathLike | None = None,
    num_plots: int = 4,
    progress: bool = True,
) -> dict[str, Any]:
    """mAP over tIoU of zero-shot localization on ``procedural_long`` clips (see the module docstring)."""
    from ..metrics import THUMOS14_TIOU_THRESHOLDS, temporal_action_localization_map, temporal_iou
    from ..tasks.localization import frame_scores_for_queries, localize_scores

    records = load_records(
        data_dir,
        split,
        where=lambda r: r.kind == "procedural_long" and bool(_moving_segments(r)),
        max_samples=max_samples,
        what="procedural_long clips with moving segments (build the corpus with num_long_val > 0)",
    )
    predictions, ground_truth, per_query, plots = [], [], [], []
    for record in _tqdm(records, desc="localization", disable=not progress):
        frames, fps = record.read()
        segments = _moving_segments(record)
        queries = [s["label"] for s in segments]
        scores, _ = frame_scores_for_queries(embedder, frames, queries, level=level)
        for q, seg in enumerate(segments):
            result = localize_scores(scores[q], [queries[q]], window=window, threshold=threshold, std_factor=std_factor, fps=fps)
            gt = (int(seg["start_frame"]), int(seg["end_frame"]))
            ground_truth.append((record.id, seg["action"], *gt))
            best = result.segments[0] if result.segments else None
            if best is not None:
                predictions.append((record.id, seg["action"], best.start_frame, best.end_frame, best.score))
            tiou = float(temporal_iou([best.start_frame, best.end_frame], list(gt))) if best is not None else 0.0
            per_query.append({"clip": record.id, "query": queries[q], "ground_truth": list(gt), "prediction": best.to_dict() if best else None, "tiou": tiou})
            if plot_dir is not None and len(plots) < num_plots:
                path = Path(plot_dir) / f"localization_{len(plots):02d}_{_safe_name(record.id)}.png"
                plots.append(str(result.plot(path, ground_truth=[gt])))
    thresholds = tuple(tiou_thresholds) if tiou_thresholds is not None else THUMOS14_TIOU_THRESHOLDS
    summary = temporal_action_localization_map(predictions, ground_truth, tiou_thresholds=thresholds)
    # Reference: predicting the whole clip for every query, what a model with flat scores gets.
    lengths = {r.id: int(r.metadata.get("num_frames") or 0) for r in records}
    whole_clip = [(vid, label, 0, max(lengths.get(vid, 0), end), 0.0) for vid, label, _, end in ground_truth]
    reference = temporal_action_localization_map(whole_clip, ground_truth, tiou_thresholds=thresholds)["mAP"]
    tious = [q["tiou"] for q in per_query]
    return {
        "task": "localization",
        "num_clips": len(records),
        "num_queries": len(per_query),
        "metrics": {
            "mAP": summary["mAP"],
            **{f"mAP@{t:g}": v for t, v in summary["mAP_per_threshold"].items()},
            "mean_tIoU_top1": float(np.mean(tious)),
            "R@1_tIoU>=0.5": float(np.mean([t >= 0.5 for t in tious])),
        },
        "whole_clip_reference_mAP": reference,
        "settings": {"window": window, "threshold": threshold if threshold is not None else f"mean + {std_factor} std", "level": level},
        "per_query": per_query,
        "plots": plots,
    }


# ----------------------------------------------------------------------------------------------------------------
# Segmentation
# ----------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_segmentation(
    embedder: Any,
    data_dir: str | os.PathLike,
    *,
    split: str = "val",
    max_samples: int | None = None,
    threshold: float = 0.5,
    crf: bool = False,
    level: int = -1,
    plot_dir: str | os.PathLike | None = None,
    num_plots: int = 4,
    progress: bool = True,
) -> dict[str, Any]:
    """mIoU / J of each described object ("the red circle") in short procedural clips, against the mask files."""
    from ..data.corpus import load_masks
    from ..metrics import mean_iou, per_frame_iou
    from ..tasks.segmentation import segment, semantic_units

    records = load_records(
        data_dir,
        split,
        where=lambda r: r.kind == "procedural" and bool(r.metadata.get("mask_file")) and bool(r.metadata.get("objects")),
        max_samples=max_samples,
        what="procedural clips with mask files",
    )
    per_query_iou, per_object_j, intersections, unions, plots, details = [], [], 0, 0, [], []
    whole_frame_iou = []  # reference: every pixel predicted as the object (IoU = the object's area share)
    for record in _tqdm(records, desc="segmentation", disable=not progress):
        frames, _ = record.read()
        masks = torch.from_numpy(load_masks(record.folder / record.metadata["mask_file"]).astype(np.int64))
        frame_count = min(frames.shape[1], masks.shape[0])
        if frames.shape[1] != masks.shape[0] or tuple(masks.shape[1:]) != tuple(frames.shape[2:]):
            if tuple(masks.shape[1:]) != tuple(frames.shape[2:]):
                raise DatasetError(f"{record.id}: mask frames {tuple(masks.shape[1:])} differ from video frames {tuple(frames.shape[2:])}.")
            logger.warning("%s: %d video frames but %d mask frames; using the first %d.", record.id, frames.shape[1], masks.shape[0], frame_count)
        frames, masks = frames[:, :frame_count], masks[:frame_count]
        objects = record.metadata["objects"]
        queries = [f"the {o['color']} {o['shape']}" for o in objects]
        units = [" ".join(semantic_units(q)) for q in queries]
        result = segment(embedder, frames, " and ".join(queries), units=units, threshold=threshold, crf=crf, level=level)
        truth = torch.stack([masks == int(o["index"]) for o in objects])
        scores = mean_iou(result.masks, truth)
        per_query_iou.extend(scores["per_query_iou"])
        whole_frame_iou.extend(mean_iou(torch.ones_like(truth), truth)["per_query_iou"])
        intersections += sum(scores["intersection"])
        unions += sum(scores["union"])
        per_object_j.extend(per_frame_iou(result.masks, truth).mean(dim=1).tolist())
        details.append({"clip": record.id, "queries": queries, "iou": scores["per_query_iou"]})
        if plot_dir is not None and len(plots) < num_plots:
            path = Path(plot_dir) / f"segmentation_{len(plots):02d}_{_safe_name(record.id)}.png"
            plots.append(str(result.plot(path, frames=frames)))
    return {
        "task": "segmentation",
        "num_clips": len(records),
        "num_queries": len(per_query_iou),
        "metrics": {"mIoU": float(np.mean(per_query_iou)), "J": float(np.mean(per_object_j)), "overall_iou": intersections / unions if unions else 1.0},
        "whole_frame_reference_mIoU": float(np.mean(whole_frame_iou)),
        "settings": {"threshold": threshold, "crf": bool(crf), "level": level},
        "per_clip": details,
        "plots": plots,
    }


# ----------------------------------------------------------------------------------------------------------------
# Generation (prompt following)
# ----------------------------------------------------------------------------------------------------------------


def _single_object_caption(record: ClipRecord) -> bool:
    objects = record.metadata.get("objects") or []
    return record.kind == "procedural" and len(objects) == 1 and record.metadata.get("template") in ("constant", None) and bool(record.text)


def pipeline_generator(path: str | os.PathLike, *, num_frames: int = 17, height: int = 64, width: int = 64, device: str = "cpu", **call_kwargs: Any):
    """``fn(prompt, seed) -> [3, T, H, W]`` in [-1, 1] from a saved :class:`~pyratok_hf.PyraTokT2VPipeline` folder."""
    from ..pipeline_pyratok_t2v import PyraTokT2VPipeline

    try:
        pipe = PyraTokT2VPipeline.from_pretrained(str(path)).to(device)
    except PyraTokError:
        raise
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot load a text-to-video pipeline from {path!r}: {err}") from err
    pipe.set_progress_bar_config(disable=True)

    def generate(prompt: str, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(seed))
        out = pipe(prompt, num_frames=num_frames, height=height, width=width, generator=generator, output_type="pt", **call_kwargs)
        video = out.frames[0]  # [F, 3, H, W] in [0, 1]
        return video.permute(1, 0, 2, 3).float().cpu() * 2 - 1

    return generate


def evaluate_generation(
    generate: Callable[[str, int], torch.Tensor],
    data_dir: str | os.PathLike,
    *,
    split: str = "val",
    max_samples: int | None = None,
    seed: int = 0,
    plot_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Prompt following of ``generate(prompt, seed)`` on held-out single-object procedural captions.

    Reports the checker's colour / direction accuracy on (generated video, its prompt), on the same videos
    with shuffled prompts (chance level), and on the real clips of those captions (the checker's ceiling).
    """
    from ..tasks.visualize import plot_bars, plot_frame_grid
    from .prompt_following import prompt_following_report

    records = load_records(data_dir, split, where=_single_object_caption, max_samples=max_samples, what="single-object procedural captions")
    if len(records) < 2:
        raise _too_few("the generation evaluation", "held-out single-object procedural captions", records, data_dir, split, max_samples)
    captions = [r.text for r in records]
    generated = [generate(caption, seed + i) for i, caption in enumerate(_tqdm(captions, desc="generation", disable=not progress))]
    report = prompt_following_report(generated, captions, seed=seed)
    real = prompt_following_report([r.read()[0] for r in records], captions, seed=seed)
    out: dict[str, Any] = {
        "task": "generation",
        "num_prompts": len(records),
        "metrics": {
            "color_accuracy": report["matched"]["color_accuracy"],
            "direction_accuracy": report["matched"]["direction_accuracy"],
            "both_accuracy": report["matched"]["both_accuracy"],
            "shuffled_color_accuracy": report["shuffled"]["color_accuracy"],
            "shuffled_direction_accuracy": report["shuffled"]["direction_accuracy"],
            "real_clips_color_accuracy": real["matched"]["color_accuracy"],
            "real_clips_direction_accuracy": real["matched"]["direction_accuracy"],
        },
        "generated": report,
        "real_clips": real["matched"],
        "plots": [],
    }
    if plot_dir is not None:
        bars = {
            setting: {"colour": block["color_accuracy"] or 0.0, "direction": block["direction_accuracy"] or 0.0}
            for setting, block in (("generated", report["matched"]), ("shuffled prompts", report["shuffled"]), ("real clips", real["matched"]))
        }
        out["plots"].append(str(plot_bars(bars, Path(plot_dir) / "prompt_following.png", title="prompt following (checker accuracy)", ylabel="accuracy")))
        out["plots"].append(str(plot_frame_grid({_safe_name(c)[:22]: v for c, v in list(zip(captions, generated))[:4]}, Path(plot_dir) / "generation_examples.png")))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Baseline (b): MiniLM text vs pixel statistics
# ----------------------------------------------------------------------------------------------------------------


class PixelStatisticsBaseline:
    """Baseline (b) of the zero-shot benchmark (definition in the module docstring).

    Exposes the same ``get_text_features`` / ``get_video_features`` / ``config`` interface as PyraTok, with
    pixels as "tokens" (no temporal or spatial compression, one level).
    """

    bins_per_channel = 4
    foreground_threshold = 0.15

    def __init__(self, text_encoder: Any, ridge: float = 1e-2):
        self.text_encoder = text_encoder
        self.ridge = float(ridge)
        self.projection: torch.Tensor | None = None  # [F + 1, D] on standardised features (+ bias)
        self.feature_mean: torch.Tensor | None = None
        self.feature_std: torch.Tensor | None = None
        self.config = SimpleNamespace(
            temporal_compression=1, spatial_compression=1, num_levels=1, level_spatial_downsample=[1], level_temporal_downsample=[1],
            contrastive_temperature=0.07, projection_dim=int(text_encoder.hidden_size),
        )  # fmt: skip

    @classmethod
    def with_minilm(cls, **kwargs: Any) -> "PixelStatisticsBaseline":
        from ..configuration_pyratok import MINILM_NAME
        from ..text_encoder import FrozenTextEncoder

        return cls(FrozenTextEncoder.from_pretrained(MINILM_NAME, pooling="mean"), **kwargs)

    @property
    def num_features(self) -> int:
        return self.bins_per_channel**3 + 3

    def eval(self) -> "PixelStatisticsBaseline":
        return self

    # -- features
    def pixel_features(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(colour bin index [T, H, W], motion features [T, H, W, 3])`` of one ``[3, T, H, W]`` video."""
        frames = frames.float().cpu().clamp(-1, 1)
        b = self.bins_per_channel
        levels = ((frames + 1) / 2 * b).long().clamp(0, b - 1)  # [3, T, H, W]
        bins = levels[0] * b * b + levels[1] * b + levels[2]
        background = frames.median(dim=1, keepdim=True).values
        foreground = (frames - background).abs().amax(dim=0) > self.foreground_threshold  # [T, H, W]
        num_frames, height, width = foreground.shape
        ys = torch.arange(height, dtype=torch.float32).view(1, -1, 1)
        xs = torch.arange(width, dtype=torch.float32).view(1, 1, -1)
        count = foreground.sum(dim=(1, 2)).float()
        cx = (foreground * xs).sum(dim=(1, 2)) / count.clamp_min(1)
        cy = (foreground * ys).sum(dim=(1, 2)) / count.clamp_min(1)
        present = count > 0
        velocity = torch.zeros(num_frames, 2)
        if num_frames > 1:
            both = present[1:] & present[:-1]
            step = torch.stack([cx[1:] - cx[:-1], cy[1:] - cy[:-1]], dim=1) / max(height, width)
            velocity[1:] = torch.where(both[:, None], step, torch.zeros_like(step))
            velocity[0] = velocity[1]
        motion = torch.cat([velocity.view(num_frames, 1, 1, 2).expand(-1, height, width, -1), torch.ones(num_frames, height, width, 1)], dim=-1)
        return bins, motion * foreground.unsqueeze(-1)

    def clip_features(self, frames: torch.Tensor, pooling: str = "clip") -> torch.Tensor:
        """Raw (unstandardised) features: ``[F]`` (clip), ``[T, F]`` (frame) or ``[T, H, W, F]`` (token)."""
        bins, motion = self.pixel_features(frames)
        onehot = F.one_hot(bins, self.bins_per_channel**3).float()
        per_pixel = torch.cat([onehot, motion], dim=-1)
        if pooling == "token":
            return per_pixel
        per_frame = per_pixel.mean(dim=(1, 2))
        return per_frame if pooling == "frame" else per_frame.mean(0)

    # -- fitting
    @torch.no_grad()
    def fit(self, videos: Sequence[torch.Tensor], captions: Sequence[str]) -> "PixelStatisticsBaseline":
        """Ridge least squares from standardised clip features to the captions' MiniLM embeddings."""
        if len(videos) != len(captions) or len(videos) < 2:
            raise InvalidInputError(f"fit needs at least two (video, caption) pairs, got {len(videos)} videos and {len(captions)} captions.")
        features = torch.stack([self.clip_features(v) for v in videos]).double()
        self.feature_mean = features.mean(0)
        self.feature_std = features.std(0).clamp_min(1e-6)
        design = torch.cat([(features - self.feature_mean) / self.feature_std, torch.ones(len(videos), 1, dtype=torch.float64)], dim=1)
        targets = self.get_text_features(list(captions)).pooler_output.double()
        gram = design.T @ design + self.ridge * len(videos) * torch.eye(design.shape[1], dtype=torch.float64)
        self.projection = torch.linalg.solve(gram, design.T @ targets).float()
        return self

    def fit_on_split(self, data_dir: str | os.PathLike, split: str = "train", max_samples: int | None = None, progress: bool = True) -> "PixelStatisticsBaseline":
        records = load_records(data_dir, split, where=lambda r: bool(r.text), max_samples=max_samples, what="captioned training clips")
        videos = [r.read()[0] for r in _tqdm(records, desc="baseline: reading train clips", disable=not progress)]
        return self.fit(videos, [r.text for r in records])

    # -- the PyraTok-like interface
    @torch.no_grad()
    def get_text_features(self, text: Sequence[str] | str, normalize: bool = True) -> BaseModelOutputWithPooling:
        encoding = self.text_encoder(text)
        pooled = encoding.pooled.float().cpu()
        return BaseModelOutputWithPooling(last_hidden_state=encoding.states, pooler_output=F.normalize(pooled, dim=-1) if normalize else pooled)

    @torch.no_grad()
    def get_video_features(self, pixel_values: torch.Tensor, pooling: str = "clip", level: int | None = None, normalize: bool = True, **_: Any) -> BaseModelOutputWithPooling:
        if self.projection is None:
            raise InvalidInputError("the baseline is not fitted; call fit() or fit_on_split() first.")
        if pooling not in ("clip", "frame", "token"):
            raise InvalidInputError(f"pooling must be 'clip', 'frame' or 'token', got {pooling!r}.")
        if pixel_values.dim() == 4:
            pixel_values = pixel_values.unsqueeze(0)
        outputs = []
        for video in pixel_values:
            raw = self.clip_features(video, pooling)
            standardised = (raw - self.feature_mean.float()) / self.feature_std.float()
            embedded = standardised @ self.projection[:-1] + self.projection[-1]
            outputs.append(F.normalize(embedded, dim=-1) if normalize else embedded)
        return BaseModelOutputWithPooling(pooler_output=torch.stack(outputs))


# ----------------------------------------------------------------------------------------------------------------
# The zero-shot benchmark
# ----------------------------------------------------------------------------------------------------------------

BASELINE_NAME = "baseline (b): MiniLM text vs pixel statistics"
_COLUMNS = (
    ("retrieval", "t2v_R@1", "T2V R@1"),
    ("retrieval", "t2v_R@5", "T2V R@5"),
    ("retrieval", "v2t_R@1", "V2T R@1"),
    ("retrieval", "v2t_R@5", "V2T R@5"),
    ("localization", "mAP", "Loc. mAP (tIoU .1:.7)"),
    ("segmentation", "mIoU", "Seg. mIoU"),
    ("segmentation", "J", "Seg. J"),
)


def _run_zero_shot_tasks(embedder: Any, data_dir: Any, split: str, max_samples: int | None, plot_dir: Path | None, options: dict) -> dict[str, Any]:
    """Retrieval, localization and segmentation for one embedder; a task without data is reported, not fatal."""
    results: dict[str, Any] = {}
    common = {"split": split, "max_samples": max_samples, "plot_dir": plot_dir, "progress": options.get("progress", True)}
    runs = {
        "retrieval": lambda: evaluate_retrieval(embedder, data_dir, **common),
        "localization": lambda: evaluate_localization(embedder, data_dir, window=options.get("window", 25), num_plots=2, **common),
        "segmentation": lambda: evaluate_segmentation(embedder, data_dir, crf=options.get("crf", False), num_plots=2, **common),
    }
    for task, run in runs.items():
        try:
            results[task] = run()
        except DatasetError as err:
            logger.warning("%s skipped: %s", task, err)
            results[task] = {"task": task, "skipped": str(err), "metrics": {}}
    return results


def _format(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def benchmark_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown table (values in %) of the headline metrics of each evaluated model."""
    header = "| model | " + " | ".join(c[2] for c in _COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(_COLUMNS) + 1)]
    for name, tasks in results.items():
        cells = [_format(tasks.get(task, {}).get("metrics", {}).get(key)) for task, key, _ in _COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_zero_shot_benchmark(
    model_paths: dict[str, str | os.PathLike],
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    split: str = "val",
    train_split: str = "train",
    max_samples: int | None = None,
    include_baseline: bool = True,
    window: int = 25,
    crf: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate each model (name -> saved folder) and baseline (b) on retrieval, localization, segmentation.

    Writes ``benchmark.json`` (all results), ``benchmark.md`` (the table and how to read it) and each
    model's plots under ``out_dir/<model>/``. Returns the results dict (``{"results": {name: {task: ...}},
    "table": markdown}``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not model_paths and not include_baseline:
        raise InvalidInputError("nothing to benchmark: give at least one model (CLI: --model NAME=PATH) or keep the baseline.")
    options = {"window": window, "crf": crf, "progress": progress}
    results: dict[str, dict[str, Any]] = {}
    started = time.time()
    for name, path in model_paths.items():
        logger.info("benchmark: %s (%s)", name, path)
        model = load_model(path, device)
        results[name] = _run_zero_shot_tasks(model, data_dir, split, max_samples, out / _safe_name(name), options)
        results[name]["model_path"] = str(path)
        del model
    if include_baseline:
        baseline = PixelStatisticsBaseline.with_minilm()
        baseline.fit_on_split(data_dir, train_split, max_samples=None if max_samples is None else 4 * max_samples, progress=progress)
        results[BASELINE_NAME] = _run_zero_shot_tasks(baseline, data_dir, split, max_samples, out / "baseline_b", options)
    table = benchmark_table(results)
    first = results[next(iter(results))]
    chance = first.get("retrieval", {}).get("chance_R@1")
    whole_clip = first.get("localization", {}).get("whole_clip_reference_mAP")
    whole_frame = first.get("segmentation", {}).get("whole_frame_reference_mIoU")
    markdown = "\n".join(
        [
            "# PyraTok zero-shot benchmark",
            "",
            f"Data: `{data_dir}` (split `{split}`; baseline fitted on `{train_split}`), max samples per task: {max_samples or 'all'}, "
            f"localization window {window} frames, segmentation CRF {'on' if crf else 'off'}. Values in %.",
            "",
            table,
            "",
            "* Retrieval: recall@k among the split's captions (identical captions are mutual positives)"
            + (f"; chance R@1 = {100 * chance:.1f}%." if chance is not None else "."),
            "* Localization: mAP over tIoU 0.1:0.1:0.7 on `procedural_long` clips; queries are the moving segments' labels"
            + (f"; predicting the whole clip scores {100 * whole_clip:.1f}%." if whole_clip is not None else "."),
            "* Segmentation: mIoU / J of each object (\"the red circle\") of the short procedural clips against the mask files"
            + (f"; predicting every pixel scores {100 * whole_frame:.1f}% mIoU." if whole_frame is not None else "."),
            "* Baseline (b): raw MiniLM text embeddings vs a ridge least-squares projection (fitted on the train split) of "
            "per-pixel colour bins and foreground motion; see `pyratok_hf.evaluation.benchmarks`.",
            f"* Wall time: {time.time() - started:.0f} s.",
            "",
        ]
    )
    payload = {"data_dir": str(data_dir), "split": split, "train_split": train_split, "max_samples": max_samples, "results": results, "table": table}
    atomic_write_json(payload, out / "benchmark.json")
    atomic_write_text(markdown, out / "benchmark.md")
    return payload
