"""The wheel cache: content-addressed by sha256, file-locked per entry, never poisoned.

Layout under the cache root::

    sha256/ab/abcdef.../NAME.whl   complete entries; only hashed files ever get here
    partial/abcdef....part         resumable downloads in progress
    locks/abcdef....lock           one lock per entry, shared by threads and processes
    urls/12/1234....json           what a whole download of a URL hashed to (an index that
                                   gives no sha256): the URL's own sha256 names the file,
                                   which holds the file name, sha256 and size, no URL

An entry becomes visible with a single ``os.replace`` of a file that already
hashed right, so a reader sees either nothing or the whole file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from wheelferry.digests import Digests, contradiction_error
from wheelferry.errors import FetchError, UsageError
from wheelferry.files import SHA256_HEX, BackgroundHash, atomic_write, hash_file, temp_prefix
from wheelferry.pages import looks_like_html as looks_like_html  # re-exported for fetch
from wheelferry.urls import redact_url, strip_credentials

# Downloads at least this big are hashed on a thread of their own (BackgroundHash); for
# smaller ones a second thread costs more than it saves.
BACKGROUND_HASH_MIN = 32 << 20
HTML_PAGE = "got an HTML page instead of the wheel"


@dataclass(frozen=True)
class Stored:
    """A file that went into the cache: its sha256, size and place."""

    sha256: str
    size: int
    path: Path


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

    def path(self, sha256: str, size: int | None = None) -> Path | None:
        """The complete cached file for *sha256*, or None; an entry of the wrong *size* is evicted."""
        try:
            names = sorted(p for p in os.listdir(self.entry_dir(sha256)) if not p.startswith("."))
        except FileNotFoundError:
            return None
        if not names:
            return None
        found = self.entry_dir(sha256) / names[0]
        if size is not None and found.stat().st_size != size:
            # Damaged on disk after it was cached (it hashed right when it went in).
            self.evict(sha256)
            return None
        return found

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
        sha = hash_file(source).hexdigest()
        name = filename or Path(source).name
        with self.lock(sha):
            existing = self.path(sha)
            if existing is not None:
                return sha, existing
            tmp = self.partial_path(sha)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(source, tmp)
                if hash_file(tmp).hexdigest() != sha:
                    raise FetchError(f"{source} changed while it was copied into the cache")
                return sha, self.commit(tmp, sha, name)
            finally:
                tmp.unlink(missing_ok=True)

    def store(self, chunks: Iterable[bytes], filename: str, url: str,
              advertised: Mapping[str, str] = {}, index: str | None = None) -> Stored:
        """Stream a download whose sha256 is not yet known into the cache, checking every hash.

        The bytes go to a private temporary file while sha256 and each advertised hash
        (``digests.SUPPORTED``) are computed; a contradicted hash is the index's fault
        (``IndexHashError``) and nothing is kept.  What arrives whole is never fetched again:
        the build finds it here by the sha256 the lock records.
        """
        digests = Digests(advertised)
        part_dir = self.root / "partial"
        part_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=part_dir, prefix=temp_prefix("download"), suffix=".tmp")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    digests.update(chunk)
            with open(tmp, "rb") as f:
                if looks_like_html(f.read(512)):
                    raise FetchError(f"{redact_url(url)}: {HTML_PAGE} ({filename})")
            wrong = digests.contradictions()
            if wrong:
                raise contradiction_error(filename, url, wrong, index)
            sha = digests.hexdigest()
            with self.lock(sha):
                existing = self.path(sha, digests.size)
                path = existing if existing is not None else self.commit(tmp, sha, filename)
            return Stored(sha, digests.size, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _url_record(self, url: str) -> Path:
        key = hashlib.sha256(strip_credentials(url).encode()).hexdigest()
        return self.root / "urls" / key[:2] / f"{key}.json"

    def remember_url(self, url: str, sha256: str, size: int, filename: str) -> None:
        """Keep what a whole download of *url* hashed to, for later runs (best effort)."""
        path = self._url_record(url)
        data = json.dumps({"filename": filename, "sha256": _check_sha(sha256), "size": size})
        try:
            atomic_write(path, data.encode("utf-8"))
        except OSError:
            return  # a read-only or full cache only costs a download next time

    def known_url(self, url: str, filename: str) -> tuple[str, int, Path] | None:
        """``(sha256, size, path)`` of *url*'s file when an earlier run downloaded it whole and
        the file is still in the cache under that sha256; None otherwise."""
        try:
            rec = json.loads(self._url_record(url).read_text(encoding="utf-8"))
            sha, size = _check_sha(str(rec["sha256"])), int(rec["size"])
        except (OSError, ValueError, KeyError, TypeError, UsageError):
            return None
        if rec.get("filename") != filename:
            return None
        path = self.path(sha, size)
        return None if path is None else (sha, size, path)

    def evict(self, sha256: str) -> None:
        """Remove the entry for *sha256* (e.g. a file damaged on disk after it was cached)."""
        shutil.rmtree(self.entry_dir(sha256), ignore_errors=True)

    @contextmanager
    def lock(self, sha256: str, cancel: threading.Event | None = None) -> Iterator[None]:
        """Hold the entry's lock; other threads and processes wait until it is released.

        While waiting, *cancel* is polled so an interrupted build stops promptly.
        """
        import filelock  # lazy: a lock that downloads no wheel whole never takes one

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


class Partial:
    """One entry's download in progress: appended to, hashed as written, committed only if right.

    Lives in the partial area, so an interrupted download is resumed next time and
    is never mistaken for a complete file.  Hold the entry's lock while using it.
    """

    def __init__(self, cache: WheelCache, sha256: str, size: int | None) -> None:
        self.cache = cache
        self.sha256 = _check_sha(sha256)
        self.size = size
        self.path = cache.partial_path(sha256)
        self._hash: hashlib._Hash | BackgroundHash | None = None
        self._out: BinaryIO | None = None

    def length(self) -> int:
        """Bytes already kept (0 when there is no partial, or it is longer than the wheel)."""
        try:
            have = self.path.stat().st_size
        except FileNotFoundError:
            return 0
        return 0 if self.size is not None and have > self.size else have

    def open(self, offset: int) -> None:
        """Start writing at *offset*: 0 starts afresh, ``length()`` continues the partial."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.close()
        if offset and offset == self.length():
            self._hash = self._new_hash(hash_file(self.path))
            self._out = open(self.path, "ab")  # noqa: SIM115 (kept open across write calls)
        else:
            self._hash = self._new_hash(hashlib.sha256())
            self._out = open(self.path, "wb")  # noqa: SIM115

    def _new_hash(self, start: hashlib._Hash) -> hashlib._Hash | BackgroundHash:
        big = self.size is None or self.size >= BACKGROUND_HASH_MIN
        return BackgroundHash(start) if big else start

    def write(self, chunk: bytes) -> None:
        """Append *chunk* (``bytes``: it is hashed after this returns) and feed it to the hash."""
        assert self._out is not None and self._hash is not None
        self._out.write(chunk)
        self._hash.update(chunk)

    def close(self) -> None:
        """Flush and close (the bytes stay for a later resume); the hash catches up."""
        if isinstance(self._hash, BackgroundHash):
            self._hash.finish()
        if self._out is not None:
            out, self._out = self._out, None
            out.close()

    def mismatch(self) -> str | None:
        """None when the closed partial is exactly the wheel, else what is wrong with it."""
        have = self.path.stat().st_size
        digest = self._hash.hexdigest() if self._hash is not None else hash_file(self.path).hexdigest()
        if digest == self.sha256 and (self.size is None or have == self.size):
            return None
        with open(self.path, "rb") as f:
            if looks_like_html(f.read(512)):
                return HTML_PAGE
        if self.size is not None and have != self.size:
            return f"got {have} bytes, the lock records {self.size}"
        return f"sha256 mismatch: expected {self.sha256}, got {digest}"

    def commit(self, filename: str) -> Path:
        """Move the partial into the cache as *filename*; refuse if it does not hash right."""
        self.close()
        problem = self.mismatch()
        if problem is not None:
            raise ValueError(f"refusing to cache {filename}: {problem}")
        return self.cache.commit(self.path, self.sha256, filename)

    def discard(self) -> None:
        """Forget the partial (it cannot become the wheel)."""
        self.close()
        self._hash = None
        self.path.unlink(missing_ok=True)


def _check_sha(sha256: str) -> str:
    if not SHA256_HEX.fullmatch(sha256):
        raise UsageError(f"not a sha256 hex digest: {sha256!r}")
    return sha256
