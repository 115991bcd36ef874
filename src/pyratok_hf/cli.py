"""``pyratok`` command line.

Each subcommand lives next to the code it drives; this file only wires them up, importing each lazily so
``pyratok --help`` stays fast. Errors of the package (:class:`~pyratok_hf.errors.PyraTokError`) end the
command with exit status 2 and one readable line, never a traceback.
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
    ("generate", "pyratok_hf.pipeline_pyratok_t2v", "add_cli_args", "run_cli", "generate a video from a text prompt"),
    ("evaluate", "pyratok_hf.evaluation.cli", "add_args", "run", "evaluate a model on a task; write JSON, markdown and plots"),
    ("space", "pyratok_hf.space_launcher", "add_args", "run", "launch the Gradio demo locally"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyratok", description="PyraTok video tokenizer: tokenize, reconstruct, train, generate, evaluate.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug information")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, add_fn, run_fn, help_text in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module, _add=add_fn, _run=run_fn)
        if name in _requested_commands():
            getattr(importlib.import_module(module), add_fn)(p)
    return parser


def _requested_commands() -> set[str]:
    # Only the chosen subcommand's module is imported (its arguments are added on demand).
    return {a for a in sys.argv[1:] if not a.startswith("-")}


def main(argv: list[str] | None = None) -> int:
    from .errors import PyraTokError

    if argv is not None:
        sys.argv = [sys.argv[0]] + list(argv)
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:])
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 1
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        result = getattr(importlib.import_module(args._module), args._run)(args)
    except (PyraTokError, OSError) as err:  # OSError: missing input, unwritable output, disk full
        message = " ".join(str(err).split())  # one line even when a library's message spans several
        print(f"pyratok {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pyratok {args.command}: interrupted; outputs written so far are complete files.", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
