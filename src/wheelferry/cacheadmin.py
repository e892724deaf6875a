"""What the build side's cache holds, and trimming it: ``wheelferry cache [prune]``.

The cache root (``--cache DIR``, default the user cache directory) has three parts:
``wheels/`` (content-addressed wheels, see :mod:`wheelferry.cache`), ``metadata/``
(core metadata read from indexes) and ``pages/`` (index pages).  A file's age is the
later of its modification and access times, so what a recent lock or build read is young.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from wheelferry.clikit import human_size
from wheelferry.errors import UsageError
from wheelferry.files import SHA256_HEX

PARTS = ("wheels", "metadata", "pages")
DAY = 86400.0


@dataclass
class Part:
    """One part of the cache: entries (a wheel, a metadata file, a page), bytes, oldest age."""

    name: str
    entries: int = 0
    bytes: int = 0
    oldest_days: float | None = None
    partial_bytes: int = 0  # unfinished downloads (wheels only)

    def add(self, size: int, age_days: float) -> None:
        self.entries += 1
        self.bytes += size
        if self.oldest_days is None or age_days > self.oldest_days:
            self.oldest_days = age_days

    def to_json(self) -> dict[str, object]:
        return {"part": self.name, "entries": self.entries, "bytes": self.bytes,
                "oldest-days": None if self.oldest_days is None else round(self.oldest_days, 1),
                "partial-bytes": self.partial_bytes}


@dataclass
class Entry:
    """A removable unit: a wheel's entry directory, or one metadata/page/partial file."""

    part: str
    path: Path
    size: int
    age_days: float
    sha256: str | None = None  # wheels: the entry's sha256
    partial: bool = False


@dataclass
class Pruned:
    removed: list[Entry] = field(default_factory=list)
    kept_by_lock: int = 0

    @property
    def bytes(self) -> int:
        return sum(e.size for e in self.removed)

    def by_part(self) -> dict[str, tuple[int, int]]:
        """(entries, bytes) removed per part, by part name."""
        out: dict[str, tuple[int, int]] = {}
        for e in self.removed:
            count, size = out.get(e.part, (0, 0))
            out[e.part] = (count + 1, size + e.size)
        return dict(sorted(out.items()))


def _age(st: os.stat_result, now: float) -> float:
    return max(0.0, now - max(st.st_mtime, st.st_atime)) / DAY


def _files(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            try:
                yield p, p.lstat()
            except OSError:
                continue


def _settle() -> None:
    """Metadata and pages this process still has queued for the cache go to disk first."""
    http = sys.modules.get("wheelferry.http")  # never imported: nothing was queued
    if http is not None:
        http.CACHE_WRITER.flush()


def entries(root: Path, now: float | None = None) -> Iterator[Entry]:
    """Every entry of the cache at *root* (nothing if it does not exist)."""
    _settle()
    now = time.time() if now is None else now
    wheels = root / "wheels"
    sha_root = wheels / "sha256"
    if sha_root.is_dir():
        for prefix in sorted(sha_root.iterdir()):
            for d in sorted(prefix.iterdir()) if prefix.is_dir() else []:
                stats = [st for _p, st in _files(d)]
                if not stats:
                    continue
                size = sum(st.st_size for st in stats)
                age = min(_age(st, now) for st in stats)
                yield Entry("wheels", d, size, age, sha256=d.name if SHA256_HEX.fullmatch(d.name) else None)
    if (wheels / "partial").is_dir():
        for p, st in _files(wheels / "partial"):
            yield Entry("wheels", p, st.st_size, _age(st, now), partial=True)
    for part in ("metadata", "pages"):
        for p, st in _files(root / part):
            yield Entry(part, p, st.st_size, _age(st, now))


def summary(root: Path, now: float | None = None) -> list[Part]:
    """Per part: entries, bytes, the oldest entry's age in days."""
    parts = {name: Part(name) for name in PARTS}
    for e in entries(root, now):
        if e.partial:
            parts[e.part].partial_bytes += e.size
        else:
            parts[e.part].add(e.size, e.age_days)
    return [parts[n] for n in PARTS]


def locked_sha256s(lock_dirs: Iterable[Path]) -> set[str]:
    """The sha256 of every wheel the lock directories name (they are kept by ``prune``)."""
    from wheelferry.errors import WheelferryError
    from wheelferry.lock import read_lock_dir

    keep: set[str] = set()
    for d in lock_dirs:
        if not Path(d).is_dir():
            raise UsageError(f"--keep-lock {d}: no such lock directory")
        try:
            lock = read_lock_dir(Path(d))
        except WheelferryError as exc:
            raise UsageError(f"--keep-lock {d}: {exc}") from None
        keep |= {w.sha256 for w in lock.wheels.values()}
    return keep


def prune(root: Path, older_than_days: float | None, keep: set[str], now: float | None = None) -> Pruned:
    """Remove entries older than *older_than_days* (every entry when None), except wheels in *keep*.

    Unfinished downloads are removed once older than a day, whatever the other options.
    """
    done = Pruned()
    for e in list(entries(root, now)):
        if e.partial:
            if e.age_days < 1.0:
                continue
        elif older_than_days is not None and e.age_days < older_than_days:
            continue
        elif e.sha256 is not None and e.sha256 in keep:
            done.kept_by_lock += 1
            continue
        try:
            if e.path.is_dir() and not e.path.is_symlink():
                shutil.rmtree(e.path)
            else:
                e.path.unlink()
        except FileNotFoundError:
            continue
        done.removed.append(e)
    return done


def render_summary(root: Path, parts: list[Part]) -> list[str]:
    lines = [f"cache: {root}"]
    for p in parts:
        oldest = "" if p.oldest_days is None else f", oldest used {p.oldest_days:.0f} days ago"
        partial = f", {human_size(p.partial_bytes)} of unfinished downloads" if p.partial_bytes else ""
        lines.append(f"  {p.name}: {p.entries} entries, {human_size(p.bytes)}{oldest}{partial}")
    total = sum(p.bytes + p.partial_bytes for p in parts)
    lines.append(f"  total: {human_size(total)}")
    return lines
