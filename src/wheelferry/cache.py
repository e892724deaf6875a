"""The wheel cache: content-addressed by sha256, file-locked per entry, never poisoned.

Layout under the cache root::

    sha256/ab/abcdef.../NAME.whl   complete entries; only hashed files ever get here
    partial/abcdef....part         resumable downloads in progress
    locks/abcdef....lock           one lock per entry, shared by threads and processes

An entry becomes visible with a single ``os.replace`` of a file that already
hashed right, so a reader sees either nothing or the whole file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import filelock
import platformdirs

from wheelferry.errors import FetchError, UsageError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """The per-user wheel cache (``$XDG_CACHE_HOME/wheelferry/wheels`` on Linux)."""
    return Path(platformdirs.user_cache_dir("wheelferry")) / "wheels"


class LockWaitCancelled(Exception):
    """Waiting for another download of the same entry was abandoned (interrupt)."""


class WheelCache:
    """A directory of wheels addressed by their sha256, safe to share between builds."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"WheelCache({str(self.root)!r})"

    def entry_dir(self, sha256: str) -> Path:
        """The directory that holds the complete entry for *sha256*."""
        sha = _check_sha(sha256)
        return self.root / "sha256" / sha[:2] / sha

    def path(self, sha256: str) -> Path | None:
        """The complete cached file for *sha256*, or None when there is none."""
        try:
            names = sorted(p for p in os.listdir(self.entry_dir(sha256)) if not p.startswith("."))
        except FileNotFoundError:
            return None
        return self.entry_dir(sha256) / names[0] if names else None

    def partial_path(self, sha256: str) -> Path:
        """Where a resumable download of *sha256* is kept until it hashes right."""
        return self.root / "partial" / f"{_check_sha(sha256)}.part"

    def commit(self, tmp_path: Path, sha256: str, filename: str) -> Path:
        """Move *tmp_path*, whose sha256 the caller has checked, into place as *filename*."""
        if "/" in filename or "\\" in filename or filename.startswith(".") or not filename:
            raise UsageError(f"refusing to cache a wheel under the name {filename!r}")
        final_dir = self.entry_dir(sha256)
        final_dir.mkdir(parents=True, exist_ok=True)
        final = final_dir / filename
        os.replace(tmp_path, final)
        return final

    def add(self, source: Path, filename: str | None = None) -> tuple[str, Path]:
        """Hash a local file and copy it into the cache; return ``(sha256, path)``."""
        h = hashlib.sha256()
        with open(source, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
        sha = h.hexdigest()
        name = filename or Path(source).name
        with self.lock(sha):
            existing = self.path(sha)
            if existing is not None:
                return sha, existing
            tmp = self.partial_path(sha)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(source, tmp)
                if _sha256_file(tmp) != sha:
                    raise FetchError(f"{source} changed while it was copied into the cache")
                return sha, self.commit(tmp, sha, name)
            finally:
                tmp.unlink(missing_ok=True)

    def evict(self, sha256: str) -> None:
        """Remove the entry for *sha256* (e.g. a file damaged on disk after it was cached)."""
        shutil.rmtree(self.entry_dir(sha256), ignore_errors=True)

    @contextmanager
    def lock(self, sha256: str, cancel: threading.Event | None = None) -> Iterator[None]:
        """Hold the entry's lock; other threads and processes wait until it is released.

        While waiting, *cancel* is polled so an interrupted build stops promptly.
        """
        lock_path = self.root / "locks" / f"{_check_sha(sha256)}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        # thread_local=False: the lock is taken and released by the same worker,
        # but a fresh object per call keeps threads of one process excluding each other.
        lk = filelock.FileLock(str(lock_path), thread_local=False)
        while True:
            if cancel is not None and cancel.is_set():
                raise LockWaitCancelled(sha256)
            try:
                lk.acquire(timeout=0.2)
                break
            except filelock.Timeout:
                continue
        try:
            yield
        finally:
            lk.release()


def _check_sha(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise UsageError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
