"""File writing shared by both halves: nothing half-written is ever left in place.

Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHUNK = 4 << 20


@contextlib.contextmanager
def atomic_path(path: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield an empty temporary file beside *path*; on success it replaces *path*, else it goes.

    The temporary name starts with a dot and ends in ``.tmp``, so a reader of the
    directory never takes it for the real file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write *data* to *path* through a temporary name in the same directory and a rename."""
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)


def hash_file(path: Path) -> Any:
    """A sha256 object fed with the whole of *path* (to continue with more bytes, or digest)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h
