"""``pyratok encode-dataset``: tokenize a whole video dataset into sharded token files, resumably.

Runs as one process (``pyratok encode-dataset DATA -o OUT --model DIR``) or as many, with Accelerate
(``accelerate launch --multi_gpu --num_processes N -m pyratok_hf.cli encode-dataset ...``; on a machine without
GPUs the same command starts N CPU processes joined with gloo) or by hand (``--rank r --world-size n``, e.g. one
job per machine; the last rank to finish writes the manifest). Process ``r`` of ``n`` takes the dataset samples
``i`` with ``i % n == r``, in order, and groups them into shards of ``--samples-per-shard``.

Output folder::

    run.json                      the settings this output was started with (a resume must match them)
    shards/r00000-s000000.safetensors   one shard: per-level ids of its samples + offsets + metadata
    progress/rank00000-of00002.json     per-rank commit log
    manifest.json                 written once every rank has finished: shards, counts, model, skipped samples

**Commit protocol.** A shard is the unit of work: its samples are encoded, the shard file is written atomically
(temporary file + rename), and then the rank's progress file, listing that shard, is rewritten atomically. Only
shards listed in a progress file count as done. After an interruption (even ``kill -9``) a rerun with the same
settings skips the committed shards and redoes the rest; a shard written but not yet committed is simply
rewritten (encoding is deterministic), so there are no duplicates and no gaps.

**Shard format** (safetensors; :func:`load_token_shard` reads it back)::

    sample_index        int64 [N]        index of each sample in the dataset
    input_shape         int64 [N, 3]     (T, H, W) of the clip that was tokenized
    level_{l}.ids       int64 [sum_n t*h*w]   level l's token ids of all samples, each flattened (t, h, w)
    level_{l}.offsets   int64 [N + 1]    sample n's ids are ids[offsets[n]:offsets[n+1]]
    level_{l}.shape     int64 [N, 3]     its (t, h, w) grid
    metadata: format, sample_ids (dataset keys), captions, fps, codebook_bits, num_levels, config_hash

**Hugging Face dataset format** (``--format datasets``): the shards are Parquet files
(``shards/r00000-s000000.parquet``), one row per clip, loadable with
``datasets.load_dataset("parquet", data_files=token_dataset_files(OUT))`` (or any Parquet reader)::

    sample_index  int64          index of the sample in the source dataset
    sample_id     string         its key (file name / id)
    caption       string | null  its caption
    fps           float64
    input_shape   list<int64>    (T, H, W) of the clip that was tokenized
    level_{l}_ids   list<int64>  level l's token ids, flattened (t, h, w)
    level_{l}_shape list<int64>  its (t, h, w) grid

:func:`row_token_ids` turns a row back into per-level grids for ``model.decode``. Writing and resuming follow
the same commit protocol as the safetensors shards.

Bad samples (unreadable, corrupt, too short, failing to encode) are skipped, logged and counted by reason in
the progress files and the manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import signal
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .errors import ConfigError, DatasetError, InvalidInputError, PyraTokError
from .video_io import atomic_save_safetensors, atomic_write_json

logger = logging.getLogger(__name__)

FORMAT = "pyratok-tokens-v1"
#: Test hook: ``kill -9`` this process after it has encoded this many samples (simulates a crash mid-shard).
CRASH_ENV = "PYRATOK_ENCODE_DATASET_CRASH_AFTER"
_NO_CAPTION = "(no caption)"  # stand-in so the shared clip loader does not skip caption-less videos

# Settings that change the tokens: a resume with different values would mix two encodings in one output.
_RUN_KEYS = (
    "data", "split", "video_column", "text_column", "num_frames", "frame_stride", "start", "size", "pad_short_clips",
    "samples_per_shard", "world_size", "num_levels", "use_text", "dtype", "chunk_latent_frames", "model_path", "config_hash",
    "format",
)  # fmt: skip
_RUN_DEFAULTS = {"format": "safetensors"}  # settings added later: what an older run.json without them meant
SHARD_SUFFIX = {"safetensors": ".safetensors", "datasets": ".parquet"}


# ----------------------------------------------------------------------------- CLI
def _parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().replace(",", "x").split("x")
    try:
        height, width = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 256x256 (height x width), got {text!r}") from None
    return height, width


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="a videofolder (metadata.jsonl/csv or .txt sidecars), a save_to_disk folder, a folder of .tar shards, or a shard glob")
    parser.add_argument("-o", "--output-dir", required=True, help="where shards, progress files and manifest.json go")
    parser.add_argument("--model", default=None, help="tokenizer folder (default: the bundled pyratok-tiny)")
    parser.add_argument("--split", default="train", help="split of a DatasetDict / videofolder (default: train)")
    parser.add_argument("--video-column", default="video")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--num-frames", type=int, default=17, help="frames per clip, 1 + 4k (default 17)")
    parser.add_argument("--frame-stride", type=int, default=1)
    parser.add_argument("--start", choices=("first", "center"), default="first", help="which window of a longer video")
    parser.add_argument("--size", type=_parse_size, default=None, help="resize+centre-crop clips to HxW (multiples of 8)")
    parser.add_argument("--pad-short-clips", action="store_true", help="repeat the last frame of short videos instead of skipping them")
    parser.add_argument("--samples-per-shard", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1, help="clips of equal shape encoded together")
    parser.add_argument("--num-levels", type=int, default=None, help="keep the first levels only (coarse to fine)")
    parser.add_argument("--no-text", action="store_true", help="tokenize without caption conditioning")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast dtype of the backbone (quantization stays fp32)")
    parser.add_argument("--device", default=None, help="cpu / cuda / cuda:1 (default: Accelerate's choice)")
    parser.add_argument("--chunk-latent-frames", type=int, default=0, help="stream each clip in chunks of this many latent frames (bounded memory); 0 = whole clip")
    parser.add_argument("--tiling", action="store_true", help="tile frames spatially (large resolutions)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the level blocks")
    parser.add_argument("--rank", type=int, default=None, help="this process's rank when launching by hand (with --world-size)")
    parser.add_argument("--world-size", type=int, default=None, help="number of processes when launching by hand")
    parser.add_argument("--overwrite", action="store_true", help="discard this rank's earlier output instead of resuming")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--format", choices=tuple(SHARD_SUFFIX), default="safetensors",
        help="shard files: safetensors (default) or datasets = Parquet, one row per clip, for datasets.load_dataset('parquet')",
    )  # fmt: skip


# ----------------------------------------------------------------------------- reading the output
def load_token_shard(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read one shard: a list of ``{"index", "sample_id", "caption", "input_shape", "fps", "token_ids"}`` where
    ``token_ids`` is a tuple of per-level LongTensors ``[t, h, w]`` (coarse to fine)."""
    if str(path).endswith(".parquet"):
        return _load_parquet_shard(path)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    if meta.get("format") != FORMAT:
        raise InvalidInputError(f"{path} is not a {FORMAT} token shard (format={meta.get('format')!r}).")
    sample_ids, captions, fps = json.loads(meta["sample_ids"]), json.loads(meta["captions"]), json.loads(meta["fps"])
    levels = int(meta["num_levels"])
    samples = []
    for n, index in enumerate(tensors["sample_index"].tolist()):
        grids = []
        for l in range(levels):
            start, stop = tensors[f"level_{l}.offsets"][n : n + 2].tolist()
            grids.append(tensors[f"level_{l}.ids"][start:stop].view(*tensors[f"level_{l}.shape"][n].tolist()))
        samples.append({
            "index": index, "sample_id": sample_ids[n], "caption": captions[n] or None, "fps": fps[n],
            "input_shape": tuple(tensors["input_shape"][n].tolist()), "token_ids": tuple(grids),
        })  # fmt: skip
    return samples


def _load_parquet_shard(path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    table = pq.read_table(str(path))
    meta = json.loads((table.schema.metadata or {}).get(b"pyratok", b"{}"))
    if meta.get("format") != FORMAT:
        raise InvalidInputError(f"{path} is not a {FORMAT} Parquet token shard (format={meta.get('format')!r}).")
    return [
        {"index": row["sample_index"], "sample_id": row["sample_id"], "caption": row["caption"] or None, "fps": row["fps"],
         "input_shape": tuple(row["input_shape"]), "token_ids": row_token_ids(row)}
        for row in table.to_pylist()
    ]  # fmt: skip


def row_token_ids(row: dict[str, Any]) -> tuple:
    """Per-level LongTensors ``[t, h, w]`` (coarse to fine) of one row of a ``--format datasets`` shard.

    ``model.decode(token_ids=[g[None] for g in row_token_ids(row)], output_shape=tuple(row["input_shape"]))``
    decodes it.
    """
    levels = sorted(int(k[len("level_"):-len("_ids")]) for k in row if k.startswith("level_") and k.endswith("_ids"))
    if levels != list(range(len(levels))) or not levels:
        raise InvalidInputError(f"a token row needs columns level_0_ids .. level_L_ids with their _shape columns, got {sorted(row)}.")
    return tuple(torch.as_tensor(row[f"level_{l}_ids"], dtype=torch.int64).view(*row[f"level_{l}_shape"]) for l in levels)


def token_dataset_files(output_dir: str | os.PathLike) -> list[str]:
    """The shard files of a finished output folder, for ``datasets.load_dataset("parquet", data_files=...)``."""
    output_dir = Path(output_dir)
    manifest_path = output_dir / "manifest.json"
    if not manifest_path.is_file():
        raise DatasetError(f"{output_dir} has no manifest.json: the encode-dataset run has not finished; rerun it to resume.")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return [str(output_dir / shard["file"]) for shard in manifest["shards"] if shard["num_samples"]]


def iter_token_dataset(output_dir: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every tokenized sample of a finished output folder, shard by shard (see :func:`load_token_shard`)."""
    output_dir = Path(output_dir)
    manifest_path = output_dir / "manifest.json"
    if not manifest_path.is_file():
        raise DatasetError(f"{output_dir} has no manifest.json: the encode-dataset run has not finished; rerun it to resume.")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for shard in manifest["shards"]:
        if shard["num_samples"]:
            yield from load_token_shard(output_dir / shard["file"])


# ----------------------------------------------------------------------------- helpers
def config_hash(config) -> str:
    """sha256 of the model config (sorted JSON, without version/name fields), identifying the tokenizer."""
    fields = {k: v for k, v in config.to_dict().items() if k not in ("transformers_version", "_name_or_path", "architectures", "torch_dtype", "dtype")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def _resolve_world(args) -> tuple[int, int, Any]:
    """(rank, world size, accelerate state or None) from --rank/--world-size or Accelerate's environment."""
    if args.rank is not None or args.world_size is not None:
        rank, world = int(args.rank or 0), int(args.world_size or 1)
        if not 0 <= rank < world:
            raise InvalidInputError(f"--rank must be in [0, --world-size), got rank {rank} of {world}.")
        return rank, world, None
    from accelerate import PartialState

    # Without an accelerator, Accelerate only sets up CPU processes (gloo) when asked for the CPU explicitly.
    on_cpu = (args.device or "").startswith("cpu") or not torch.cuda.is_available()
    state = PartialState(cpu=on_cpu)
    launched = max(int(os.environ.get(name, "1") or 1) for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE"))
    if state.num_processes == 1 and launched > 1:
        raise InvalidInputError(
            f"launched as {launched} processes but Accelerate set up {state.num_processes}; every process would encode "
            "the same samples. Check the accelerate launch settings, or pass --rank/--world-size explicitly."
        )
    return state.process_index, state.num_processes, state


class _SampleSource:
    """This rank's samples, in dataset order, as ``(index, key, load)``; ``load()`` decodes the clip.

    Map-style datasets are indexed directly. Tar shards are read in full by every rank (reading bytes is cheap;
    only this rank's samples are decoded), so the global sample numbering is the same everywhere.
    """

    def __init__(self, args, rank: int, world: int):
        from .data.datasets import load_video_text_dataset

        self.rank, self.world = rank, world
        self.dataset = load_video_text_dataset(
            args.data, split=args.split, video_column=args.video_column, text_column=args.text_column,
            num_frames=args.num_frames, frame_stride=args.frame_stride, start=args.start, size=args.size,
            pad_short_clips=args.pad_short_clips, seed=0,
        )  # fmt: skip
        self.map_style = hasattr(self.dataset, "_entry") and hasattr(self.dataset, "__len__")
        if not self.map_style:
            self.dataset.rank, self.dataset.world_size = 0, 1  # we split by sample index ourselves

    def local_count(self) -> int | None:
        if not self.map_style:
            return None
        total = len(self.dataset)
        return len(range(self.rank, total, self.world))

    def __iter__(self) -> Iterator[tuple[int, str, Callable[[], dict]]]:
        ds = self.dataset
        if self.map_style:
            for index in range(self.rank, len(ds), self.world):
                video, text, key, known, metadata = ds._entry(index)
                yield index, str(key), (lambda v=video, t=text, k=key, n=known, m=metadata, i=index: self._load(v, t, str(k), n, m, i))
            return
        for index, raw in enumerate(ds.iter_raw_samples()):
            if index % self.world != self.rank:
                continue
            known = raw.metadata.get("num_frames")
            known = int(known) if isinstance(known, int) else None
            yield index, raw.key, (lambda r=raw, n=known, i=index: self._load(r.video or None, r.text, r.key, n, r.metadata, i))

    def _load(self, video, text, key, known_frames, metadata, index) -> dict:
        from .data.datasets import _clean_caption, _SkipSample

        if video is None:
            raise _SkipSample("missing", "the sample has no video")
        caption = _clean_caption(text, random.Random(index))
        sample = self.dataset._load_clip(
            video, caption or _NO_CAPTION, key, rng=self.dataset._rng(index), known_num_frames=known_frames, metadata=metadata
        )
        sample["text"] = caption
        return sample


class _Progress:
    """A rank's commit log: which of its shards are complete, with their samples and skips."""

    def __init__(self, output_dir: Path, rank: int, world: int):
        self.path = output_dir / "progress" / f"rank{rank:05d}-of{world:05d}.json"
        self.rank, self.world = rank, world
        self.data = {"rank": rank, "world_size": world, "finished": False, "committed": {}}
        if self.path.is_file():
            self.data = json.loads(self.path.read_text(encoding="utf-8"))

    def is_committed(self, shard: int, output_dir: Path) -> bool:
        entry = self.data["committed"].get(str(shard))
        return entry is not None and (entry["num_samples"] == 0 or (output_dir / entry["file"]).is_file())

    def commit(self, shard: int, entry: dict) -> None:
        self.data["committed"][str(shard)] = entry
        atomic_write_json(self.data, self.path)

    def finish(self) -> None:
        self.data["finished"] = True
        atomic_write_json(self.data, self.path)


def _remove_stale_temporaries(output_dir: Path, rank: int) -> None:
    """Temporary files of writes this rank was killed in the middle of (atomic writes leave ``.NAME.*.tmp*``)."""
    for folder, stem in (("shards", f"r{rank:05d}-"), ("progress", f"rank{rank:05d}-")):
        for stale in (output_dir / folder).glob(f".{stem}*.tmp*"):
            stale.unlink(missing_ok=True)


def _check_run_settings(output_dir: Path, settings: dict, rank: int, overwrite: bool) -> None:
    path = output_dir / "run.json"
    if path.is_file() and not overwrite:
        previous = json.loads(path.read_text(encoding="utf-8"))
        changed = [
            f"{k}: {previous.get(k, _RUN_DEFAULTS.get(k))!r} -> {settings.get(k)!r}"
            for k in _RUN_KEYS if previous.get(k, _RUN_DEFAULTS.get(k)) != settings.get(k)
        ]  # fmt: skip
        if changed:
            raise ConfigError(
                f"{output_dir} was started with other settings ({'; '.join(changed)}). Resume with the same settings, "
                "or pass --overwrite / another --output-dir to start over."
            )
        return
    if rank == 0 or not path.is_file():
        atomic_write_json(settings, path)


def _overwrite(output_dir: Path, rank: int) -> None:
    for old in list((output_dir / "shards").glob(f"r{rank:05d}-*")) + list((output_dir / "progress").glob(f"rank{rank:05d}-*")):
        old.unlink(missing_ok=True)
    if rank == 0:
        (output_dir / "manifest.json").unlink(missing_ok=True)


def _write_shard(path: Path, samples: list[dict], num_levels: int, meta: dict) -> None:
    tensors = {
        "sample_index": torch.tensor([s["index"] for s in samples], dtype=torch.int64),
        "input_shape": torch.tensor([s["input_shape"] for s in samples], dtype=torch.int64).view(-1, 3),
    }
    for l in range(num_levels):
        grids = [s["token_ids"][l] for s in samples]
        sizes = torch.tensor([0] + [g.numel() for g in grids], dtype=torch.int64)
        tensors[f"level_{l}.ids"] = torch.cat([g.reshape(-1) for g in grids]) if grids else torch.zeros(0, dtype=torch.int64)
        tensors[f"level_{l}.offsets"] = sizes.cumsum(0)
        tensors[f"level_{l}.shape"] = torch.tensor([list(g.shape) for g in grids], dtype=torch.int64).view(-1, 3)
    metadata = {
        **meta,
        "sample_ids": [s["sample_id"] for s in samples],
        "captions": [s["caption"] or "" for s in samples],
        "fps": [s["fps"] for s in samples],
    }
    atomic_save_safetensors(tensors, path, metadata=metadata)


def _write_parquet_shard(path: Path, samples: list[dict], num_levels: int, meta: dict) -> None:
    """One row per sample (see the module docstring), written atomically like the safetensors shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .video_io import atomic_output_path

    ids = pa.list_(pa.int64())
    columns = {
        "sample_index": pa.array([s["index"] for s in samples], pa.int64()),
        "sample_id": pa.array([str(s["sample_id"]) for s in samples], pa.string()),
        "caption": pa.array([s["caption"] or None for s in samples], pa.string()),
        "fps": pa.array([float(s["fps"]) for s in samples], pa.float64()),
        "input_shape": pa.array([list(map(int, s["input_shape"])) for s in samples], ids),
    }
    for l in range(num_levels):
        columns[f"level_{l}_ids"] = pa.array([s["token_ids"][l].reshape(-1).tolist() for s in samples], ids)
        columns[f"level_{l}_shape"] = pa.array([list(s["token_ids"][l].shape) for s in samples], ids)
    table = pa.table(columns).replace_schema_metadata({"pyratok": json.dumps(meta)})
    with atomic_output_path(path) as temporary:
        pq.write_table(table, str(temporary))


def _write_manifest(output_dir: Path, world: int, settings: dict, model_info: dict) -> bool:
    """Merge every rank's progress into manifest.json once all ranks have finished; return whether written."""
    ranks = []
    for rank in range(world):
        path = output_dir / "progress" / f"rank{rank:05d}-of{world:05d}.json"
        if not path.is_file():
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
        if not data.get("finished"):
            return False
        ranks.append(data)
    shards, skipped = [], []
    for data in ranks:
        for shard_id in sorted(data["committed"], key=int):
            entry = data["committed"][shard_id]
            shards.append({"file": entry["file"], "rank": data["rank"], "shard": int(shard_id), "num_samples": entry["num_samples"],
                           "first_index": entry["first_index"], "last_index": entry["last_index"]})
            skipped += entry["skipped"]
    skipped.sort(key=lambda s: s["index"])
    encoded = sum(s["num_samples"] for s in shards)
    manifest = {
        "format": FORMAT,
        "complete": True,
        "num_samples": encoded,
        "num_skipped": len(skipped),
        "num_dataset_samples": encoded + len(skipped),
        "skipped_by_reason": dict(Counter(s["reason"] for s in skipped)),
        "skipped_samples": skipped,
        "shards": shards,
        "shard_format": settings.get("format", "safetensors"),
        "model": model_info,
        "settings": settings,
        "world_size": world,
        "pyratok_hf_version": __import__("pyratok_hf").__version__,
    }
    atomic_write_json(manifest, output_dir / "manifest.json")
    return True


# ----------------------------------------------------------------------------- encoding
class _Encoder:
    def __init__(self, model, args, device):
        from .inference import compile_model

        self.model = model
        self.args = args
        self.device = device
        self.num_levels = args.num_levels
        self.use_text = (not args.no_text) and model.text_proj is not None and model.pyratok_config.use_text_conditioning
        if args.tiling:
            model.enable_tiling()
        if args.compile:
            compile_model(model)

    def encode(self, clips: torch.Tensor, texts: list[str] | None) -> list[tuple[torch.Tensor, ...]]:
        """``[B, 3, T, H, W]`` -> per sample, per level ``[t, h, w]`` ids on the CPU."""
        from .inference import inference_context
        from .modeling_pyratok import concat_chunks, encode_streaming

        text = texts if (self.use_text and texts is not None) else None
        if self.args.chunk_latent_frames:
            chunks = encode_streaming(
                self.model, clips, chunk_latent_frames=self.args.chunk_latent_frames, text=text,
                num_levels=self.num_levels, dtype=self.args.dtype,
            )  # fmt: skip
            token_ids = concat_chunks(chunks)[0]
        else:
            with inference_context(self.device, self.args.dtype):
                token_ids = self.model.encode(clips.to(self.device), text=text, num_levels=self.num_levels).token_ids
        return [tuple(level[b].cpu() for level in token_ids) for b in range(clips.shape[0])]


def _encode_batch(encoder: _Encoder, batch: list[dict], done: list[dict], skipped: list[dict]) -> None:
    """Encode samples of one shape together; if that fails, one by one so only the bad sample is skipped."""
    if not batch:
        return
    texts = [s["text"] for s in batch]
    try:
        results = encoder.encode(torch.stack([s["pixel_values"] for s in batch]), texts if all(texts) else None)
    except (PyraTokError, RuntimeError) as error:
        if len(batch) > 1:
            for sample in batch:
                _encode_batch(encoder, [sample], done, skipped)
            return
        sample = batch[0]
        logger.warning("Skipping sample %s (encode_error): %s", sample["key"], error)
        skipped.append({"index": sample["index"], "key": sample["key"], "reason": "encode_error"})
        return
    for sample, ids in zip(batch, results):
        done.append({
            "index": sample["index"], "sample_id": sample["key"], "caption": sample["text"], "fps": sample["fps"],
            "input_shape": list(sample["pixel_values"].shape[1:]), "token_ids": ids,
        })  # fmt: skip


def run(args) -> int:
    from tqdm.auto import tqdm

    from . import PyraTokModel, bundled_model_path
    from .data.datasets import _SkipSample
    from .inference import resolve_dtype

    if args.samples_per_shard < 1:
        raise InvalidInputError(f"--samples-per-shard must be >= 1, got {args.samples_per_shard}.")
    if args.batch_size < 1:
        raise InvalidInputError(f"--batch-size must be >= 1, got {args.batch_size}.")
    resolve_dtype(args.dtype)
    shard_format = getattr(args, "format", "safetensors")
    if shard_format not in SHARD_SUFFIX:
        raise InvalidInputError(f"--format must be one of {', '.join(SHARD_SUFFIX)}, got {shard_format!r}.")
    rank, world, state = _resolve_world(args)
    output_dir = Path(args.output_dir)
    (output_dir / "shards").mkdir(parents=True, exist_ok=True)
    (output_dir / "progress").mkdir(parents=True, exist_ok=True)

    model_path = args.model or bundled_model_path()
    if not os.path.isdir(model_path):
        raise InvalidInputError(f"tokenizer folder {model_path} not found; pass --model DIR (a folder saved with save_pretrained).")
    device = torch.device(args.device) if args.device else (state.device if state is not None else torch.device("cpu"))
    model = PyraTokModel.from_pretrained(model_path).eval().to(device)
    config = model.config
    num_levels = model._check_num_levels(args.num_levels)
    settings = {
        "data": os.path.abspath(args.data) if os.path.exists(args.data) else args.data,
        "split": args.split, "video_column": args.video_column, "text_column": args.text_column,
        "num_frames": args.num_frames, "frame_stride": args.frame_stride, "start": args.start,
        "size": list(args.size) if args.size else None, "pad_short_clips": bool(args.pad_short_clips),
        "samples_per_shard": args.samples_per_shard, "world_size": world, "num_levels": num_levels,
        "use_text": not args.no_text, "dtype": args.dtype, "chunk_latent_frames": args.chunk_latent_frames,
        "model_path": os.path.abspath(model_path), "config_hash": config_hash(config), "format": shard_format,
    }  # fmt: skip
    model_info = {
        "path": settings["model_path"], "config_hash": settings["config_hash"], "codebook_bits": config.codebook_bits,
        "num_levels": num_levels, "level_spatial_downsample": list(config.level_spatial_downsample[:num_levels]),
        "level_temporal_downsample": list(config.level_temporal_downsample[:num_levels]),
        "spatial_compression": config.spatial_compression, "temporal_compression": config.temporal_compression,
    }  # fmt: skip
    if args.overwrite:
        _overwrite(output_dir, rank)
    _check_run_settings(output_dir, settings, rank, args.overwrite)
    _remove_stale_temporaries(output_dir, rank)

    progress = _Progress(output_dir, rank, world)
    source = _SampleSource(args, rank, world)
    encoder = _Encoder(model, args, device)
    crash_after = int(os.environ.get(CRASH_ENV, "0") or 0)
    encoded_here = 0
    shard_meta = {"format": FORMAT, "codebook_bits": config.codebook_bits, "num_levels": num_levels,
                  "config_hash": settings["config_hash"], "rank": rank, "world_size": world}  # fmt: skip
    committed_samples = sum(e["num_samples"] + len(e["skipped"]) for e in progress.data["committed"].values())
    bar = tqdm(total=source.local_count(), initial=committed_samples, desc=f"encode-dataset [rank {rank}/{world}]",
               unit="clip", disable=args.no_progress or (state is not None and not state.is_local_main_process))  # fmt: skip

    def flush(shard: int, indices: list[int], done: list[dict], skipped: list[dict]) -> None:
        name = f"shards/r{rank:05d}-s{shard:06d}{SHARD_SUFFIX[shard_format]}"
        done.sort(key=lambda s: s["index"])
        if done:
            write = _write_parquet_shard if shard_format == "datasets" else _write_shard
            write(output_dir / name, done, num_levels, {**shard_meta, "shard": shard})
        progress.commit(shard, {
            "file": name if done else None, "num_samples": len(done), "skipped": sorted(skipped, key=lambda s: s["index"]),
            "first_index": indices[0], "last_index": indices[-1],
        })  # fmt: skip

    shard, indices, pending, done, skipped = None, [], [], [], []
    for position, (index, key, load) in enumerate(source):
        this_shard = position // args.samples_per_shard
        if this_shard != shard:
            if shard is not None and indices:
                _encode_batch(encoder, pending, done, skipped)
                flush(shard, indices, done, skipped)
            shard, indices, pending, done, skipped = this_shard, [], [], [], []
        if progress.is_committed(this_shard, output_dir):
            continue  # done in an earlier run: read past it without decoding
        indices.append(index)
        try:
            sample = load()
        except _SkipSample as skip:
            reason, detail = skip.reason, skip.detail
        except (PyraTokError, OSError, ValueError, RuntimeError) as error:  # a bad sample must not stop the run
            reason, detail = "load_error", f"{type(error).__name__}: {error}"
        else:
            reason = None
        if reason is not None:
            logger.warning("Skipping sample %s (%s): %s", key, reason, detail)
            skipped.append({"index": index, "key": key, "reason": reason})
            bar.update(1)
            continue
        sample.update(index=index, key=key)
        if pending and (pending[0]["pixel_values"].shape != sample["pixel_values"].shape or bool(pending[0]["text"]) != bool(sample["text"])):
            _encode_batch(encoder, pending, done, skipped)
            pending = []
        pending.append(sample)
        if len(pending) >= args.batch_size:
            _encode_batch(encoder, pending, done, skipped)
            pending = []
        bar.update(1)
        encoded_here += 1
        if crash_after and encoded_here >= crash_after:
            os.kill(os.getpid(), signal.SIGKILL)
    if shard is not None and indices:
        _encode_batch(encoder, pending, done, skipped)
        flush(shard, indices, done, skipped)
    bar.close()
    progress.finish()

    if state is not None and world > 1:
        state.wait_for_everyone()
    wrote = (rank == 0 or state is None) and _write_manifest(output_dir, world, settings, model_info)
    if wrote:
        manifest = json.loads((output_dir / "manifest.json").read_text(encoding="utf-8"))
        logger.info(
            "encode-dataset: %d samples in %d shards, %d skipped %s -> %s",
            manifest["num_samples"], len(manifest["shards"]), manifest["num_skipped"], manifest["skipped_by_reason"], output_dir / "manifest.json",
        )
    elif state is None and world > 1:
        logger.info("rank %d of %d finished; manifest.json is written by the last rank to finish.", rank, world)
    return 0
