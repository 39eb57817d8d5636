"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the course writes for later (checkpoints' JSON state, run configs and metrics, grading
reports, generated notebooks, the cached LLM) is written to a temporary file in the same folder,
flushed to disk, then moved over the target with ``os.replace`` (atomic on POSIX and Windows). A
crash or a kill in the middle leaves the previous version intact.

>>> import json, tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "state.json"
>>> atomic_write_json(p, {"step": 3}); json.loads(p.read_text())["step"]
3
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json"]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, ``os.replace``).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"; atomic_write_bytes(p, b"ok"); p.read_bytes()
    b'ok'
    """
    path = Path(path)
    # mkstemp creates the file exclusively (a link planted at a guessable name is never followed), with mode
    # 0600; the final file gets the usual permissions of a new file instead.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"; atomic_write_text(p, "héllo"); p.read_text(encoding="utf-8")
    'héllo'
    """
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike[str], data: Any, indent: int | None = 1) -> None:
    """Write ``data`` as JSON (UTF-8) to ``path`` atomically.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"; atomic_write_json(p, [1, 2]); p.read_text()
    '[\\n 1,\\n 2\\n]'
    """
    atomic_write_text(path, json.dumps(data, indent=indent, ensure_ascii=False))
