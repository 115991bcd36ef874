"""The everyday commands: ``pyratok reconstruct``, ``pyratok encode`` and ``pyratok decode``.

Token files are safetensors: one int64 tensor per level (``level_0`` coarse ... ``level_{L-1}`` fine) and
metadata naming the model, K, the original size and fps, so ``pyratok decode`` can check it is decoding with
the model that made them. Every output is written atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time

from .errors import CheckpointError, InvalidInputError, PyraTokError

logger = logging.getLogger(__name__)

TOKEN_FORMAT = "pyratok-tokens/1"


# ----------------------------------------------------------------------------- shared helpers
def load_model(name_or_path: str | None = None, device: str | None = None):
    """A PyraTokModel from a folder or Hub id; default: the bundled pyratok-tiny."""
    import torch

    from . import PyraTokModel, bundled_model_path

    path = name_or_path or bundled_model_path()
    if name_or_path is None and not os.path.isfile(os.path.join(path, "config.json")):
        raise PyraTokError(f"the bundled model is missing at {path}; reinstall the package or pass --model PATH_OR_ID.")
    local = os.path.isabs(path) or path.startswith(".") or os.path.exists(path)
    if name_or_path is not None and local and not os.path.isdir(path):
        raise CheckpointError(f"model folder {path} not found; pass a folder written by save_pretrained (or a Hub id).")
    try:
        model = PyraTokModel.from_pretrained(path)
    except PyraTokError:
        raise
    except OSError as err:
        if not local and _hub_offline():
            raise CheckpointError(
                f"--model {path}: no such local folder, and it is not in the Hugging Face cache; the Hub is offline "
                "(HF_HUB_OFFLINE=1), so it cannot be downloaded. Pass a folder written by save_pretrained, or go online "
                "and unset HF_HUB_OFFLINE."
            ) from None
        raise
    except Exception as err:  # noqa: BLE001 - safetensors raises its own SafetensorError for damaged files
        if type(err).__name__ == "SafetensorError" or type(err).__module__.split(".")[0] == "safetensors":
            raise CheckpointError(f"the weights of {path} are damaged or truncated ({err}); re-download or re-save the model.") from None
        raise
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval()


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except (ImportError, AttributeError):
        return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def check_output_paths(*paths) -> None:
    """Refuse, before any work, output paths that cannot be written (a read-only place, a path under a file, a
    folder given as a file), so a run never writes some of its outputs and then fails on the last one. Missing
    folders are fine: the writers create them."""
    import tempfile

    for path in paths:
        if not path:
            continue
        path = os.fspath(path)
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a directory; name a file to write.")
        ancestor = os.path.dirname(os.path.abspath(path))
        while not os.path.exists(ancestor):
            ancestor = os.path.dirname(ancestor)
        if not os.path.isdir(ancestor):
            raise NotADirectoryError(f"cannot write {path}: {ancestor} is a file, not a folder.")
        try:  # a real probe: permission bits say nothing for root, and /proc or a read-only mount refuse anyway
            with tempfile.TemporaryFile(dir=ancestor, prefix=".pyratok-probe-"):
                pass
        except OSError as err:
            import errno

            why = f" ({err.strerror})" if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else ""
            raise PermissionError(f"cannot write {path}: no new file can be created in {ancestor}{why}.") from None


def _remove_outputs(paths) -> None:
    for path in paths:
        try:
            os.remove(path)
        except OSError:
            pass


def config_fingerprint(model) -> str:
    data = json.dumps({k: v for k, v in model.config.to_dict().items() if k not in ("transformers_version", "_name_or_path")}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def add_model_args(parser) -> None:
    parser.add_argument("--model", default=None, help="model folder or Hub id (default: the bundled pyratok-tiny)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--max-frames", type=int, default=None, help="read at most this many frames")
    parser.add_argument("--size", default=None, help="resize frames to HxW before tokenizing, e.g. 64x64")
    parser.add_argument("--prompt", default=None, help="text describing the video (conditions the quantizer)")
    parser.add_argument("--tile", action="store_true", help="force spatial tiling (large frames are tiled automatically)")


def _parse_size(text: str | None):
    if not text:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InvalidInputError(f"--size must look like 64x64, got {text!r}.") from None
    return h, w


def _read(args):
    from .video_io import read_video

    return read_video(args.video, max_frames=args.max_frames, size=_parse_size(args.size))


# ----------------------------------------------------------------------------- reconstruct
def add_reconstruct_args(parser) -> None:
    parser.add_argument("video", help="input video (mp4, webm, gif, ... or an image)")
    parser.add_argument("-o", "--output", required=True, help="reconstructed video path (.mp4 or .gif)")
    parser.add_argument("--json", default=None, help="write metrics (PSNR, SSIM, bits per pixel, codebook use) here")
    parser.add_argument(
        "--images", action=argparse.BooleanOptionalAction, default=True,
        help="write OUTPUT_side_by_side.png and OUTPUT_token_pyramid.png next to the output (default: on; --no-images: the video only)",
    )  # fmt: skip
    parser.add_argument("--num-levels", type=int, default=None, help="decode with only the first N (coarsest) levels")
    add_model_args(parser)


def reconstruct(model, frames: torch.Tensor, prompt: str | None = None, num_levels: int | None = None):
    """Tokenize ``frames`` ``[3, T, H, W]`` and decode; returns (reconstruction [3,T,H,W], token ids, metrics)."""
    import torch

    with torch.inference_mode():
        return _reconstruct(model, frames, prompt, num_levels)


def _reconstruct(model, frames, prompt, num_levels):
    from .metrics.functional import bits_per_pixel, codebook_usage, psnr, ssim

    video = frames.unsqueeze(0).to(next(model.parameters()).device)
    enc = model.encode(video, text=prompt)
    recon = model.decode(token_ids=enc.token_ids, num_levels=num_levels, output_shape=enc.input_shape).sample
    used = enc.token_ids[: num_levels or len(enc.token_ids)]
    metrics = {
        "psnr_db": round(float(psnr(recon.float().cpu(), video.float().cpu()).mean()), 3),
        "ssim": round(float(ssim(recon.float().cpu(), video.float().cpu()).mean()), 4),
        "bits_per_pixel": round(float(bits_per_pixel([ids.cpu() for ids in used], model.config.codebook_bits, tuple(video.shape[2:]))), 5),
        "num_levels": len(used),
        "token_grids": [list(ids.shape[1:]) for ids in enc.token_ids],
        "codebook_usage": codebook_usage([ids.cpu() for ids in enc.token_ids], model.config.codebook_bits),
    }
    return recon[0].cpu(), enc.token_ids, metrics


def run_reconstruct(args) -> int:
    from .progress import Stages
    from .video_io import atomic_write_json, write_video

    stem = os.path.splitext(args.output)[0]
    picture_paths = {"side_by_side": stem + "_side_by_side.png", "token_pyramid": stem + "_token_pyramid.png"} if args.images else {}
    check_output_paths(args.output, args.json, *picture_paths.values())
    written: list[str] = []
    with Stages(["load model", "read video", "tokenize + decode", "write outputs"], "reconstruct", quiet=getattr(args, "quiet", False)) as stages:
        stages.next("load model")
        model = load_model(args.model, args.device)
        if args.tile:
            model.enable_tiling()
        stages.next("read video")
        clip = _read(args)
        stages.next("tokenize + decode")
        started = time.time()
        recon, token_ids, metrics = reconstruct(model, clip.frames, args.prompt, args.num_levels)
        metrics["seconds"] = round(time.time() - started, 3)
        metrics["input"] = {"path": str(args.video), "frames": clip.frames.shape[1], "height": clip.frames.shape[2], "width": clip.frames.shape[3], "fps": clip.fps}
        stages.next("write outputs")
        try:  # the outputs are one unit: a failure on any removes the others
            write_video(recon, args.output, fps=clip.fps)
            written.append(args.output)
            pictures = {}
            if args.images:
                from .visualization import plot_side_by_side, plot_token_pyramid

                pictures["side_by_side"] = plot_side_by_side(clip.frames, recon, picture_paths["side_by_side"])
                written.append(picture_paths["side_by_side"])
                pictures["token_pyramid"] = plot_token_pyramid(token_ids, model.config.codebook_bits, picture_paths["token_pyramid"])
                written.append(picture_paths["token_pyramid"])
            metrics["outputs"] = {"video": args.output, **pictures}
            if args.json:
                atomic_write_json(metrics, args.json)
        except BaseException:
            _remove_outputs(written)
            raise
    grids = " | ".join("x".join(map(str, g)) for g in metrics["token_grids"])
    which = "bundled pyratok-tiny, a 1.3M-parameter model trained on a 2-core CPU" if args.model is None else args.model
    print(
        f"reconstruction: {metrics['psnr_db']:.1f} dB PSNR at {metrics['bits_per_pixel']:.3f} bits/pixel ({which}; "
        "docs/results.md says what to expect)"
    )
    print(
        f"reconstructed {metrics['input']['frames']} frames of {metrics['input']['width']}x{metrics['input']['height']} "
        f"in {metrics['seconds']:.2f}s: PSNR {metrics['psnr_db']:.2f} dB, SSIM {metrics['ssim']:.3f}, "
        f"{metrics['bits_per_pixel']:.4f} bits/pixel\n  token grids (t x h x w per level): {grids}\n  wrote {args.output}"
        + "".join(f", {p}" for p in pictures.values()) + (f", {args.json}" if args.json else "")
    )
    return 0


# ----------------------------------------------------------------------------- encode / decode
def add_encode_args(parser) -> None:
    parser.add_argument("video", help="input video")
    parser.add_argument("-o", "--output", required=True, help="token file (.safetensors)")
    add_model_args(parser)


def save_tokens(path: str, token_ids, model, input_shape, fps: float, model_id: str, prompt: str | None = None) -> None:
    import torch

    from .video_io import atomic_save_safetensors

    tensors = {f"level_{i}": ids.detach().cpu().contiguous().to(torch.int64) for i, ids in enumerate(token_ids)}
    metadata = {
        "format": TOKEN_FORMAT,
        "model": model_id,
        "config_fingerprint": config_fingerprint(model),
        "codebook_bits": str(model.config.codebook_bits),
        "num_levels": str(len(token_ids)),
        "input_shape": json.dumps(list(input_shape)),
        "fps": str(fps),
        "prompt": prompt or "",
    }
    atomic_save_safetensors(tensors, path, metadata=metadata)


def load_tokens(path: str):
    """Read a token file; returns (list of id tensors, metadata). Typed errors for anything malformed."""
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise FileNotFoundError(f"token file {path} not found")
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
            keys = sorted(handle.keys())
            tensors = {k: handle.get_tensor(k) for k in keys}
    except Exception as err:  # safetensors raises several types for corrupt headers
        raise InvalidInputError(f"{path} is not a readable safetensors token file ({err}); re-run pyratok encode.") from err
    if metadata.get("format") != TOKEN_FORMAT:
        raise InvalidInputError(f"{path} is not a PyraTok token file (format {metadata.get('format')!r}); make it with pyratok encode.")
    levels = [f"level_{i}" for i in range(len(keys))]
    if not keys or keys != sorted(levels):
        raise InvalidInputError(f"{path}: expected tensors level_0..level_{max(len(keys) - 1, 0)}, found {keys}.")
    _check_token_metadata(path, metadata, [tensors[name] for name in levels])
    return [tensors[name] for name in levels], metadata


def _check_token_metadata(path: str, metadata: dict, token_ids: list) -> None:
    """The fields ``pyratok decode`` reads must parse, so a damaged file is an InvalidInputError, not a traceback."""
    import torch

    for i, ids in enumerate(token_ids):
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool or ids.dim() not in (3, 4):
            raise InvalidInputError(f"{path}: level_{i} must be an integer grid [t, h, w] or [B, t, h, w], got {ids.dtype} {tuple(ids.shape)}.")
    try:
        shape = json.loads(metadata["input_shape"]) if "input_shape" in metadata else [1, 1, 1]
        fps = float(metadata.get("fps", 8.0))
        num_levels = int(metadata.get("num_levels", len(token_ids)))
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{path}: damaged metadata ({err}); re-run pyratok encode.") from None
    if shape is not None and (not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)):
        raise InvalidInputError(f"{path}: metadata input_shape must be [T, H, W] of positive integers, got {metadata.get('input_shape')!r}.")
    if not (fps > 0 and fps < float("inf")):
        raise InvalidInputError(f"{path}: metadata fps must be a positive number, got {metadata.get('fps')!r}.")
    if num_levels != len(token_ids):
        raise InvalidInputError(f"{path}: metadata says {num_levels} levels but the file holds {len(token_ids)}; the file is damaged.")


def run_encode(args) -> int:
    import torch

    from .progress import Stages

    check_output_paths(args.output)
    with Stages(["load model", "read video", "tokenize", "write tokens"], "encode", quiet=getattr(args, "quiet", False)) as stages:
        stages.next("load model")
        model = load_model(args.model, args.device)
        if args.tile:
            model.enable_tiling()
        stages.next("read video")
        clip = _read(args)
        stages.next("tokenize")
        with torch.inference_mode():
            enc = model.encode(clip.frames.unsqueeze(0).to(next(model.parameters()).device), text=args.prompt)
        stages.next("write tokens")
        save_tokens(args.output, enc.token_ids, model, enc.input_shape, clip.fps, args.model or "bundled:pyratok-tiny", args.prompt)
    total = sum(ids.numel() for ids in enc.token_ids)
    print(f"wrote {args.output}: {total} tokens in {len(enc.token_ids)} levels "
          f"({' | '.join('x'.join(map(str, ids.shape[1:])) for ids in enc.token_ids)}), {model.config.codebook_bits} bits each")
    return 0


def add_decode_args(parser) -> None:
    parser.add_argument("tokens", help="token file written by pyratok encode")
    parser.add_argument("-o", "--output", required=True, help="output video (.mp4 or .gif)")
    parser.add_argument("--model", default=None, help="model folder or Hub id (default: the bundled pyratok-tiny)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--num-levels", type=int, default=None, help="decode with only the first N levels")


def run_decode(args) -> int:
    import torch

    from .progress import Stages
    from .video_io import write_video

    check_output_paths(args.output)
    with Stages(["read tokens", "load model", "decode", "write video"], "decode", quiet=getattr(args, "quiet", False)) as stages:
        stages.next("read tokens")
        token_ids, metadata = load_tokens(args.tokens)
        stages.next("load model")
        model = load_model(args.model, args.device)
        if metadata.get("config_fingerprint") not in (None, config_fingerprint(model)):
            raise InvalidInputError(
                f"{args.tokens} was made by model {metadata.get('model')!r} with a different config; decode with that model (--model)."
            )
        shape = tuple(json.loads(metadata.get("input_shape", "null")) or ()) or None
        stages.next("decode")
        with torch.inference_mode():
            video = model.decode(token_ids=[t.unsqueeze(0) if t.dim() == 3 else t for t in token_ids], num_levels=args.num_levels, output_shape=shape).sample
        stages.next("write video")
        write_video(video[0].cpu(), args.output, fps=float(metadata.get("fps", 8.0)))
    print(f"wrote {args.output}: {video.shape[2]} frames of {video.shape[4]}x{video.shape[3]}")
    return 0


# ----------------------------------------------------------------------------- build-corpus
def add_build_corpus_args(parser) -> None:
    import argparse

    parser.add_argument("corpus_args", nargs=argparse.REMAINDER, help="OUT_DIR [--seed N] [--num-train N] ... (see pyratok build-corpus OUT --help)")


def run_build_corpus(args) -> int:
    from .data.corpus import main_build_corpus

    corpus_args = [a for a in args.corpus_args if a not in ("-q", "--quiet")]
    if (getattr(args, "quiet", False) or len(corpus_args) < len(args.corpus_args)) and "--no-progress" not in corpus_args:
        corpus_args.append("--no-progress")  # pyratok --quiet build-corpus OUT / build-corpus OUT --quiet
    return main_build_corpus(corpus_args)
