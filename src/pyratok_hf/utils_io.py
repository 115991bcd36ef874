"""Small filesystem helpers shared by the savers (pipeline, prior training, tokenizer training).

This module imports nothing else of the package, so any module may use it without creating an import cycle.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike):
    """Yield a temporary folder next to ``path``; on success it replaces ``path``, on error it is deleted.

    A folder cannot be ``os.replace``-d onto a non-empty one, so an existing ``path`` is first renamed aside,
    the new folder renamed in, and the old one removed: readers see the old or the new complete folder.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        yield str(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o777 & ~umask)
        backup = None
        if target.exists():
            backup = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
            os.rmdir(backup)
            os.rename(target, backup)
        os.rename(temporary, target)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


__all__ = ["atomic_directory"]
