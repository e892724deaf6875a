"""Files shared by both halves: nothing half-written is ever left in place; their sha256.

Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

# Reads of a local file (hashing, copying, feeding gpg): big, so per-call overhead is negligible.
FILE_CHUNK = 4 << 20
# A sha256 as the lock, the manifest and the cache write it: 64 lowercase hex digits (use fullmatch).
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# ".NAME.PID-XXXXXXXX.tmp": a temporary file or folder and the process that made it.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[^.]+\.tmp$")


def temp_prefix(name: str) -> str:
    """The ``mkstemp`` prefix for a temporary *name*: ``.NAME.PID-`` (suffix ``.tmp``)."""
    return f".{name}.{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, as another user
    return True


def remove_stale_temporaries(directory: Path) -> list[str]:
    """Remove the temporary files and folders in *directory* whose process is gone; return their names.

    A run killed outright (SIGKILL, power loss) cannot clean up after itself;
    the next run in the same folder does.  A temporary of a live process is kept.
    """
    if os.name == "nt":  # os.kill(pid, 0) would end the process there
        return []
    removed = []
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        m = _TEMPORARY.match(entry.name)
        if m is None or int(m["pid"]) == os.getpid() or _alive(int(m["pid"])):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        removed.append(entry.name)
    return removed


def clean_stale_temporaries(directory: Path) -> list[str]:
    """:func:`remove_stale_temporaries`, each removal named in a warning."""
    from wheelferry.clikit import warn

    removed = remove_stale_temporaries(directory)
    for name in removed:
        warn(f"removed {Path(directory) / name}, left by an interrupted run")
    return removed


@contextlib.contextmanager
def atomic_path(path: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield an empty temporary file beside *path*; on success it replaces *path*, else it goes.

    The temporary name starts with a dot and ends in ``.tmp``, so a reader of the
    directory never takes it for the real file.  The one fsync policy of the code
    base (pip's ``adjacent_tmp_file`` has the same): the new bytes are flushed to
    disk before the rename, so a crash leaves the old file or the whole new one,
    never the new name over empty or partial data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    try:  # Windows commits writable handles only; POSIX syncs a read-only one as well
        fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    except PermissionError:
        fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write *data* to *path* through a temporary name in the same directory and a rename."""
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)


def hash_file(path: Path) -> hashlib._Hash:
    """A sha256 object fed with the whole of *path* (to continue with more bytes, or digest)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(FILE_CHUNK), b""):
            h.update(chunk)
    return h


class BackgroundHash:
    """SHA-256 of a stream, computed on a thread of its own while the stream goes on.

    A download (or the bundle being written) decrypts, writes and hashes every byte, and hashing is the largest share
    of that work; handing each chunk to another core makes one stream faster where a second
    core is free (the fetch and pack stages of benchmarks/run).  Chunks are passed on,
    not copied (so they must be ``bytes``, never a buffer that is reused), and at most
    *depth* of them wait, so memory stays bounded.
    """

    def __init__(self, start: hashlib._Hash | None = None, depth: int = 16) -> None:
        self._hash = start if start is not None else hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(depth)
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None

    def update(self, chunk: bytes) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="wheelferry-hash", daemon=True)
            self._thread.start()
        self._queue.put(chunk)

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if self._error is None:
                try:
                    self._hash.update(chunk)
                except Exception as exc:  # noqa: BLE001 (raised by finish(); the queue is still drained)
                    self._error = exc

    def finish(self) -> None:
        """Wait until every chunk handed over so far is hashed; the thread ends."""
        if self._thread is not None:
            thread, self._thread = self._thread, None
            self._queue.put(None)
            thread.join()
        if self._error is not None:
            raise self._error

    def hexdigest(self) -> str:
        self.finish()
        return self._hash.hexdigest()
