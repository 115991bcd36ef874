"""The Gradio demo (also the Hugging Face Space in ``space/``): tokenize & reconstruct, text to video, zero-shot.

Runs on CPU with the bundled models (and uses the ``spaces`` GPU decorator when that package exists).
Inputs are checked before any work: file type, upload size, duration and resolution, with friendly
messages; uploaded paths must lie inside Gradio's upload folder or the bundled examples, so a crafted
request cannot read other files. Requests are queued.
"""

from __future__ import annotations

import functools
import os
import threading
import tempfile
from pathlib import Path

import torch

ALLOWED_EXTENSIONS = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif", ".mpg", ".mpeg", ".m4v"}
MAX_UPLOAD_MB = 50
MAX_SECONDS = 10.0
MAX_SOURCE_SIDE = 4096
WORK_SIDE = 128  # frames are downscaled so the longer side is at most this (CPU budget)
MAX_FRAMES = 49
MAX_PROMPT_CHARS = 300

try:  # ZeroGPU on Hugging Face Spaces; a no-op locally
    import spaces

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - depends on the environment

    def gpu(fn=None, **_kwargs):
        return fn if fn is not None else (lambda f: f)


class UserInputError(ValueError):
    """Shown to the user as is (wrapped into ``gr.Error`` by the handlers)."""


def _examples_dir() -> Path:
    return Path(__file__).resolve().parent / "assets"


def upload_dir() -> Path:
    """Where Gradio stores uploads (``GRADIO_TEMP_DIR``, default ``<tmp>/gradio``)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def _allowed_roots() -> list[Path]:
    # Only Gradio's upload folder and our bundled examples: nothing else on the machine can be named.
    return [_examples_dir().resolve(), upload_dir().resolve()]


def check_video_file(path) -> Path:
    """Validate an uploaded video path: inside the allowed folders, a known type, not too big."""
    if isinstance(path, dict):  # gradio FileData
        video = path.get("video")
        path = path.get("path") or (video.get("path") if isinstance(video, dict) else video)
    if path is None or path == "":
        raise UserInputError("Please upload a video or pick an example.")
    # Only absolute paths (str / PathLike) are accepted: anything else (bytes, numbers, relative names) would
    # be resolved against the server's working directory, and a NUL byte makes os calls raise ValueError.
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(text, str) or "\x00" in text or not os.path.isabs(text):
        raise UserInputError("That file is not an upload of this app.")
    resolved = Path(text).resolve()  # follows symlinks and removes "..", so the check below sees the real file
    if not any(resolved == root or root in resolved.parents for root in _allowed_roots()):
        raise UserInputError("That file is not an upload of this app.")
    if not resolved.is_file():
        raise UserInputError("The uploaded file is missing; please upload it again.")
    if resolved.suffix.lower() not in ALLOWED_EXTENSIONS:
        raise UserInputError(f"Unsupported file type {resolved.suffix or '(none)'}; use one of {', '.join(sorted(ALLOWED_EXTENSIONS))}.")
    size_mb = resolved.stat().st_size / 2**20
    if size_mb > MAX_UPLOAD_MB:
        raise UserInputError(f"The file is {size_mb:.0f} MB; the limit is {MAX_UPLOAD_MB} MB.")
    return resolved


def load_clip(path, zero_shot: bool = False) -> tuple[torch.Tensor, float]:
    """Read at most ``MAX_SECONDS`` (and ``MAX_FRAMES``) and downscale to ``WORK_SIDE``; friendly errors.

    ``zero_shot``: decode at the size every zero-shot entry point uses (``tasks.retrieval.MAX_FILE_SIDE``), so
    the tabs answer as ``classify`` / the transformers pipeline / ``pyratok evaluate`` do on the same file.
    """
    from .errors import PyraTokError
    from .video_io import probe_video, read_video

    resolved = check_video_file(path)
    try:
        info = probe_video(resolved)
    except PyraTokError as err:
        raise UserInputError(f"Could not read this video: {err}") from err
    height, width = int(getattr(info, "height", 0) or 0), int(getattr(info, "width", 0) or 0)
    if max(height, width) > MAX_SOURCE_SIDE:
        raise UserInputError(f"The video is {width}x{height}; the limit is {MAX_SOURCE_SIDE} pixels per side.")
    fps = float(getattr(info, "fps", 0) or 25.0)
    frames_limit = max(1, min(MAX_FRAMES, int(MAX_SECONDS * fps)))
    scale = WORK_SIDE / max(height, width, 1)
    size = None
    if zero_shot:
        from .tasks.retrieval import file_read_size

        size = file_read_size(resolved)
    elif scale < 1:
        size = (max(8, int(round(height * scale / 8)) * 8), max(8, int(round(width * scale / 8)) * 8))
    try:
        clip = read_video(resolved, max_frames=frames_limit, size=size)
    except PyraTokError as err:
        raise UserInputError(f"Could not read this video: {err}") from err
    return clip.frames, clip.fps


# The Wan backbone keeps its causal feature cache on the model instance, so two requests must not run
# through one model at the same time: every handler holds this lock while it uses a model.
MODEL_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def tokenizer_model():
    from . import PyraTokModel, bundled_model_path

    return PyraTokModel.from_pretrained(bundled_model_path()).eval()


@functools.lru_cache(maxsize=1)
def t2v_pipeline():
    from . import bundled_pipeline_path
    from .pipeline_pyratok_t2v import PyraTokT2VPipeline

    path = bundled_pipeline_path()
    if not os.path.isfile(os.path.join(path, "model_index.json")):
        raise UserInputError("The text-to-video model is not bundled with this installation.")
    return PyraTokT2VPipeline.from_pretrained(path)


def default_guidance_scale() -> float:
    """The bundled prior's own guidance scale (its ``config.guidance_scale``), read without loading any weights."""
    import json

    from . import bundled_pipeline_path

    try:
        with open(os.path.join(bundled_pipeline_path(), "prior", "config.json"), encoding="utf-8") as handle:
            return float(json.load(handle).get("guidance_scale", 3.0))
    except (OSError, ValueError, TypeError):
        return 3.0


def _out(suffix: str) -> str:
    handle, path = tempfile.mkstemp(suffix=suffix, prefix="pyratok_")
    os.close(handle)
    return path


# ----------------------------------------------------------------------------- handlers (plain functions, testable)
@gpu
def reconstruct_video(video, num_levels: int = 4, prompt: str = ""):
    from .commands import reconstruct
    from .video_io import write_video
    from .visualization import plot_side_by_side, plot_token_pyramid

    frames, fps = load_clip(video)
    model = tokenizer_model()
    levels = int(max(1, min(int(num_levels or model.config.num_levels), model.config.num_levels)))
    prompt = (prompt or "").strip()[:MAX_PROMPT_CHARS] or None
    recon, token_ids, metrics = reconstruct(model, frames, prompt, levels)
    video_out = str(write_video(recon, _out(".mp4"), fps=fps))
    pyramid = plot_token_pyramid(token_ids, model.config.codebook_bits, _out(".png"))
    side = plot_side_by_side(frames, recon, _out(".png"))
    summary = {k: metrics[k] for k in ("psnr_db", "ssim", "bits_per_pixel", "num_levels", "token_grids")}
    return video_out, pyramid, side, summary


@gpu
def text_to_video(prompt: str, seed: int = 0, guidance_scale: float | None = None):
    from .video_io import write_video

    if not isinstance(prompt, str):
        raise UserInputError("The prompt must be text.")
    prompt = prompt.strip()[:MAX_PROMPT_CHARS]
    pipe = t2v_pipeline()
    generator = torch.Generator().manual_seed(int(seed))
    scale = None if guidance_scale is None else float(guidance_scale)  # None: the prior's own scale
    out = pipe(prompt, guidance_scale=scale, generator=generator, output_type="pt")
    frames = out.frames[0]  # [F, 3, H, W] in [0, 1]
    video = frames.permute(1, 0, 2, 3) * 2 - 1
    return str(write_video(video, _out(".mp4"), fps=8))


def _labels(text: str) -> list[str]:
    labels = [t.strip() for t in (text or "").replace("\n", ",").split(",") if t.strip()]
    if len(labels) < 2:
        raise UserInputError("Type at least two labels, separated by commas.")
    if len(labels) > 50:
        raise UserInputError("At most 50 labels.")
    return [label[:MAX_PROMPT_CHARS] for label in labels]


@gpu
def zero_shot_classify(video, labels_text: str):
    from .tasks.retrieval import classify

    frames, _ = load_clip(video, zero_shot=True)
    labels = _labels(labels_text)
    result = classify(tokenizer_model(), frames, labels)
    return {label: float(p) for label, p in zip(result.labels, result.probabilities[0].tolist())}


@gpu
def zero_shot_localize(video, query: str):
    from .tasks.localization import localize

    frames, fps = load_clip(video, zero_shot=True)
    query = (query or "").strip()[:MAX_PROMPT_CHARS]
    if not query:
        raise UserInputError("Describe the action to find.")
    result = localize(tokenizer_model(), frames, query, fps=fps, window=min(25, frames.shape[1]))
    plot = str(result.plot(_out(".png")))
    return plot, {"segments": [segment.to_dict() for segment in result.merged_segments]}


@gpu
def zero_shot_segment(video, query: str, use_crf: bool = False):
    from .errors import PyraTokError
    from .tasks.segmentation import segment

    frames, _ = load_clip(video, zero_shot=True)
    try:
        result = segment(tokenizer_model(), frames, (query or "")[:MAX_PROMPT_CHARS], crf=bool(use_crf))
    except PyraTokError as err:
        raise UserInputError(str(err)) from err
    return str(result.plot(_out(".png"), frames=frames))


# ----------------------------------------------------------------------------- UI
def _wrap(fn):
    """Turn our input errors into gr.Error so the user sees the message, not a stack trace."""
    import gradio as gr

    from .errors import PyraTokError

    @functools.wraps(fn)
    def handler(*args):
        try:
            with MODEL_LOCK:
                return fn(*args)
        except (UserInputError, PyraTokError) as err:
            raise gr.Error(str(err)) from err

    return handler


def build_demo():
    import gradio as gr

    example = str(_examples_dir() / "city_sample.mp4")
    with gr.Blocks(title="PyraTok: language-aligned pyramidal video tokenizer") as demo:
        gr.Markdown(
            "# PyraTok\nA video becomes a pyramid of binary tokens (coarse to fine) aligned with language. "
            f"Limits: {MAX_UPLOAD_MB} MB, {MAX_SECONDS:.0f} s, {MAX_SOURCE_SIDE}px; clips are downscaled to {WORK_SIDE}px "
            "and run on the bundled tiny CPU models."
        )
        with gr.Tab("Tokenize & reconstruct"):
            with gr.Row():
                video_in = gr.Video(label="input video", sources=["upload"])
                video_out = gr.Video(label="reconstruction")
            with gr.Row():
                levels = gr.Slider(1, 4, value=4, step=1, label="pyramid levels used for decoding")
                prompt = gr.Textbox(label="optional description (conditions the quantizer)")
            run = gr.Button("Tokenize and reconstruct", variant="primary")
            with gr.Row():
                pyramid = gr.Image(label="token pyramid (one panel per level)")
                side = gr.Image(label="input vs reconstruction")
            metrics = gr.JSON(label="metrics")
            gr.Examples([[example, 4, ""]], inputs=[video_in, levels, prompt])
            run.click(_wrap(reconstruct_video), [video_in, levels, prompt], [video_out, pyramid, side, metrics], api_name="reconstruct")
        with gr.Tab("Text to video"):
            t2v_prompt = gr.Textbox(label="prompt", value="a red circle moves right on a black background")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="seed")
                guidance = gr.Slider(1.0, 8.0, value=default_guidance_scale(), step=0.5, label="guidance scale")
            generate = gr.Button("Generate", variant="primary")
            generated = gr.Video(label="generated clip")
            generate.click(_wrap(text_to_video), [t2v_prompt, seed, guidance], generated, api_name="generate")
        with gr.Tab("Zero-shot"):
            zs_video = gr.Video(label="video", sources=["upload"])
            gr.Examples([[example]], inputs=[zs_video])
            with gr.Tab("Classify"):
                labels = gr.Textbox(label="labels, comma separated", value="skyscrapers at night, a red circle, a cat, a galaxy")
                classify_btn = gr.Button("Classify")
                label_out = gr.Label(label="scores")
                classify_btn.click(_wrap(zero_shot_classify), [zs_video, labels], label_out, api_name="classify")
            with gr.Tab("Localize an action"):
                query = gr.Textbox(label="action", value="the camera tilts up")
                localize_btn = gr.Button("Localize")
                timeline = gr.Image(label="timeline")
                segments = gr.JSON(label="segments")
                localize_btn.click(_wrap(zero_shot_localize), [zs_video, query], [timeline, segments], api_name="localize")
            with gr.Tab("Segment an object"):
                seg_query = gr.Textbox(label="object", value="the lit windows")
                use_crf = gr.Checkbox(label="dense-CRF refinement", value=False)
                segment_btn = gr.Button("Segment")
                heat = gr.Image(label="heat maps")
                segment_btn.click(_wrap(zero_shot_segment), [zs_video, seg_query, use_crf], heat, api_name="segment")
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


def launch(host: str = "127.0.0.1", port: int | None = None, share: bool = False, **kwargs):
    demo = build_demo()
    return demo.launch(server_name=host, server_port=port, share=share, max_file_size=f"{MAX_UPLOAD_MB}mb", **kwargs)
