"""``pyratok space [--host 127.0.0.1] [--port N]``: run the Gradio demo locally."""

from __future__ import annotations


def add_args(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: localhost only)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    parser.add_argument("--share", action="store_true", help="create a public Gradio link (needs internet)")


def run(args) -> int:
    import importlib.util

    from .errors import PyraTokError

    if importlib.util.find_spec("gradio") is None:
        raise PyraTokError('the demo needs Gradio, which is not installed: pip install "pyratok-hf[space]" (or make install).')
    from .space_app import launch

    launch(host=args.host, port=args.port, share=args.share)
    return 0
