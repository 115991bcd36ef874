"""One progress bar per long command (tqdm on stderr).

Bars are shown when stderr is a terminal, hidden otherwise (logs, pipes, tests) and with ``--quiet``;
``PYRATOK_PROGRESS=1`` forces them on and ``PYRATOK_PROGRESS=0`` off.
"""

from __future__ import annotations

import os
import sys


def progress_enabled(quiet: bool = False) -> bool | None:
    """tqdm's ``disable`` argument, inverted: True (show), False (hide) or None (show on a terminal only)."""
    forced = os.environ.get("PYRATOK_PROGRESS", "").strip()
    if quiet or forced == "0":
        return False
    if forced == "1":
        return True
    return None


def progress_bar(total=None, desc: str | None = None, unit: str = "it", quiet: bool = False, **kwargs):
    """A tqdm bar on stderr that disappears when closed (the command then prints its summary)."""
    from tqdm.std import tqdm

    stream = sys.stderr
    enabled = progress_enabled(quiet)
    if enabled is None:  # a terminal only; a stream without isatty (a log, a test's stand-in) is not one
        try:
            enabled = bool(stream.isatty())
        except (AttributeError, ValueError, OSError):
            enabled = False
    kwargs.setdefault("leave", False)
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=stream, dynamic_ncols=True, **kwargs)


class Stages:
    """A bar over the named stages of one job: ``with Stages(["read", "encode"], "encode") as s: s.next("read")``."""

    def __init__(self, names, command: str, quiet: bool = False):
        self.names = list(names)
        self.command = command
        self.bar = progress_bar(total=len(self.names), desc=command, unit="step", quiet=quiet,
                                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]")  # fmt: skip
        self._started = False

    def next(self, name: str) -> None:
        """Mark the previous stage done and start ``name``."""
        self.bar.set_description_str(f"{self.command}: {name}", refresh=not self._started)
        if self._started:
            self.bar.update(1)  # redraws with the new stage's name
        self._started = True

    def close(self) -> None:
        if self._started and self.bar.n < self.bar.total:
            self.bar.update(1)
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close() if exc[0] is not None else self.close()
        return False
