"""Typed errors raised by pyratok-hf.

Every error a user can trigger with bad input derives from :class:`PyraTokError`, so callers that run long
jobs can catch one class. Each also derives from the built-in exception a Python user would expect
(``ValueError`` for bad values, ``OSError`` for files), and its message says what to do.
"""


class PyraTokError(Exception):
    """Base class of every error raised on purpose by pyratok-hf."""


class InvalidInputError(PyraTokError, ValueError):
    """Pixel values, token ids or text given to a model have the wrong shape, dtype, range or count."""


class NonFiniteOutputError(InvalidInputError):
    """``encode`` / ``decode`` produced NaN or Inf from finite inputs (e.g. latents scaled to 1e38, text states of
    1e30, or a damaged checkpoint); raised instead of returning the values, so no output looks valid after a failure."""


class ConfigError(PyraTokError, ValueError):
    """A configuration is inconsistent (e.g. levels and encoder taps disagree)."""


class CheckpointError(PyraTokError, OSError):
    """A checkpoint cannot be loaded safely: wrong format, pickle-only, or shapes that do not match its config."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The model path is empty, does not exist, is a file instead of a folder, or is neither a folder nor a Hub repo."""


class ResourceLimitError(PyraTokError, MemoryError):
    """A request would need more memory than allowed; the message names the option (tiling, slicing) to use."""


class MetricInputError(PyraTokError, ValueError):
    """Inputs given to a metric are unusable: empty, mismatched in length or shape, wrong rank, NaN, or out of range."""


class VideoReadError(PyraTokError, ValueError):
    """A video or image cannot be decoded; ``reason`` is a short machine-readable tag.

    Data loaders count skipped samples by ``reason`` (``missing``, ``not_video``, ``corrupt``, ``no_video_stream``,
    ``unsupported_codec``, ``no_frames``, ``too_short``, ``too_large``), so keep these tags stable.
    """

    def __init__(self, message: str, *, reason: str = "corrupt", path=None):
        super().__init__(message)
        self.reason = reason
        self.path = path


class VideoNotFoundError(VideoReadError, FileNotFoundError):
    """The video path does not exist; also a ``FileNotFoundError`` so generic file handling still catches it."""

    def __init__(self, message: str, *, path=None):
        VideoReadError.__init__(self, message, reason="missing", path=path)


class VideoWriteError(PyraTokError, ValueError):
    """Frames cannot be written: wrong shape/dtype/range, unsupported container extension, or encoder failure."""


class DatasetError(PyraTokError, ValueError):
    """A video-text dataset is unusable as a whole (no valid sample, unknown layout, missing columns)."""


class CorpusSourceError(PyraTokError, RuntimeError):
    """A source needed to build the offline corpus (e.g. the CC0 city clip via apt) cannot be obtained."""
