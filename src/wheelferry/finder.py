"""The finder: which wheels of a project fit the TARGET, and what each one needs.

Index files, tag ranks on the target's ladder, Requires-Python judged for the
target's Python, yanked files (PEP 592), package rules' release ranges, and the
core metadata of the chosen wheels, loaded in the background ahead of the
resolver.  Only wheels are candidates; an sdist is never chosen, built or run.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Protocol

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from wheelferry.errors import MetadataError
from wheelferry.metadata import parsed_metadata
from wheelferry.pages import DistFile
from wheelferry.target import Target, evaluation_environment, tag_ladder

PYTHON = "<python>"  # the identifier of the target's Python, which Requires-Python asks for


class IndexLike(Protocol):
    """Where a project's files are listed (index.IndexClient)."""

    def files(self, project: str, keep: Callable[[str], bool] | None = None) -> list[DistFile]: ...

    def files_named(self, project: str, filename: str) -> list[DistFile]: ...


class MetadataLike(Protocol):
    """Where a file's core metadata comes from (metadata.MetadataSource)."""

    def get(self, dist: DistFile) -> bytes: ...


@dataclass(frozen=True)
class Req:
    """A requirement and the name under which resolvelib tracks it."""

    name: str  # canonical
    extras: frozenset[str]
    specifier: SpecifierSet
    text: str

    @property
    def identifier(self) -> str:
        return self.name if not self.extras else f"{self.name}[{','.join(sorted(self.extras))}]"

    @classmethod
    def from_requirement(cls, req: Requirement) -> Req:
        return cls(str(canonicalize_name(req.name)), frozenset(canonicalize_name(e) for e in req.extras),
                   req.specifier, str(req))


@dataclass(frozen=True)
class Candidate:
    """A version of a project with the best wheel for the target."""

    name: str
    version: Version
    extras: frozenset[str]
    dist: DistFile | None  # None only for the Python pseudo-candidate

    @property
    def identifier(self) -> str:
        return self.name if not self.extras else f"{self.name}[{','.join(sorted(self.extras))}]"


@dataclass(frozen=True)
class WheelDeps:
    """What the resolution reads of a wheel's core metadata, parsed once per wheel."""

    requires: tuple[Requirement, ...]  # every Requires-Dist, markers not yet judged
    requires_python: str | None
    extras: tuple[str, ...]  # Provides-Extra, canonical names


class WheelRanker:
    """Where a wheel's tags sit on one target's ladder, from its file name alone.

    One per target at a time (``for_target``): the index keeping what a lock can use and
    each resolution's finder ask about the same names, which are ranked once.
    """

    def __init__(self, target: Target) -> None:
        self._rank: dict[str, int] = {}
        for i, t in enumerate(tag_ladder(target)):
            self._rank.setdefault(str(t), i)
        self._triple_rank: dict[str, int | None] = {}
        # Every name asked about, ranked: pages are filtered by name more than once (what a
        # lock keeps, then each project's candidates), and a lookup costs a fifth of a ranking.
        self._by_name: dict[str, int | None] = {}

    @classmethod
    def for_target(cls, target: Target) -> WheelRanker:
        """The ranker of *target* in use, or a new one."""
        with _RANKERS_LOCK:
            ranker = _RANKERS.get(target)
            if ranker is None:
                ranker = _RANKERS[target] = cls(target)
            return ranker

    def fits(self, filename: str) -> bool:
        """Is *filename* a wheel that fits the target?"""
        if not filename.endswith(".whl"):
            return False
        rank = self._by_name.get(filename, -1)
        if rank == -1:
            rank = self._by_name[filename] = self._rank_of(filename)
        return rank is not None

    def rank(self, filename: str) -> int | None:
        """Position of the wheel's best tag on the target's ladder; None when it does not fit."""
        rank = self._by_name.get(filename, -1)
        if rank == -1:
            rank = self._by_name[filename] = self._rank_of(filename)
        return rank

    def _rank_of(self, filename: str) -> int | None:
        # PEP 427: the tag triple is the last three dash-separated parts.  Pages hold tens of
        # thousands of wheels but few distinct triples: each is ranked once, then looked up.
        end = filename.rfind("-")
        start = filename.rfind("-", 0, filename.rfind("-", 0, end))
        if filename.find("-") >= start:
            return None  # no name-version part before the triple
        try:
            return self._triple_rank[filename[start + 1:-4]]
        except KeyError:
            pass
        parts = filename[:-4].rsplit("-", 3)
        pys, abis, plats = parts[1].split("."), parts[2].split("."), parts[3].split(".")
        ranks = [r for py in pys for abi in abis for plat in plats
                 if (r := self._rank.get(f"{py}-{abi}-{plat}")) is not None]
        rank = self._triple_rank[filename[start + 1:-4]] = min(ranks) if ranks else None
        return rank


_RANKERS: weakref.WeakValueDictionary[Target, WheelRanker] = weakref.WeakValueDictionary()
_RANKERS_LOCK = threading.Lock()


def wheels_for(targets: Iterable[Target]) -> Callable[[str], bool]:
    """Does a file name name a wheel that fits any of *targets*?  (What a lock can ever use.)"""
    rankers = [WheelRanker.for_target(t) for t in dict.fromkeys(targets)]
    if len(rankers) == 1:
        return rankers[0].fits
    return lambda name: any(r.fits(name) for r in rankers)


class Finder:
    """Candidates and dependencies for one target, with background prefetching."""

    def __init__(self, index: IndexLike, metadata: MetadataLike, target: Target, *, jobs: int = 8,
                 release_ok: Mapping[str, Callable[[Version], bool]] | None = None) -> None:
        self.index = index
        self.release_ok = dict(release_ok or {})
        self.metadata = metadata
        self.target = target
        self._ranker = WheelRanker.for_target(target)
        self._fits = self._ranker.fits  # the name filter of best_wheels
        self._prefetched: set[tuple[str, SpecifierSet]] = set()
        self._python_ok: dict[str, bool] = {}
        self._best: dict[str, dict[Version, tuple[DistFile, bool]]] = {}
        self._env = {e: MarkerEnv(evaluation_environment(target, e)) for e in ("",)}
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="wheelferry-meta")
        self._meta: dict[str, Future[WheelDeps]] = {}
        self._tried: dict[str, set[Version]] = {}  # versions whose dependencies the resolver asked for
        self._batched: dict[str, int] = {}  # how many were tried when the last batch went out
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def env(self, extra: str) -> dict[str, str]:
        if extra not in self._env:
            self._env[extra] = MarkerEnv(evaluation_environment(self.target, extra))
        return self._env[extra]

    def python_ok(self, spec: str | None) -> bool:
        """Does Requires-Python *spec* admit the target's Python?

        A target written ``3.9`` stands for every 3.9.z from 3.9.0 on, judged as uv's
        ``--python-version`` does: the specifier must admit 3.9.0, or admit some 3.9.z
        while its lower bound lies below 3.9 (``>=3.8,!=3.9.0,!=3.9.1`` passes,
        ``>=3.9,!=3.9.0,!=3.9.1`` does not).  ``3.9.1`` means exactly that version.
        """
        if not spec:
            return True
        ok = self._python_ok.get(spec)
        if ok is None:
            t = self.target
            major, minor = t.python
            try:
                parsed = SpecifierSet(spec)
            except InvalidSpecifier:
                ok = True  # as pip does: an unparsable Requires-Python does not hide the file
            else:
                if t.patch_given:
                    ok = parsed.contains(t.python_full_version, prereleases=True)
                else:
                    ok = parsed.contains(f"{major}.{minor}.0", prereleases=True) or (
                        any(parsed.contains(f"{major}.{minor}.{p}", prereleases=True) for p in range(1, 50))
                        and any(parsed.contains(f"{major}.{m}.{p}", prereleases=True)
                                for m in range(minor) for p in (0, 99)))
            self._python_ok[spec] = ok
        return ok

    def wheel_rank(self, filename: str) -> int | None:
        """Position of the wheel's best tag on the target's ladder; None when it does not fit."""
        return self._ranker.rank(filename)

    def best_wheels(self, name: str) -> dict[Version, tuple[DistFile, bool]]:
        """Newest-first map version -> (best wheel for the target, yanked); memoised per project."""
        cached = self._best.get(name)
        if cached is not None:
            return cached
        best: dict[Version, tuple[int, DistFile]] = {}
        # Only wheels that fit the target become DistFile objects (most of a page does not).
        for dist in self.index.files(name, self._fits):
            rank = self._ranker.rank(dist.filename)
            if rank is None or not self.python_ok(dist.requires_python):
                continue
            try:
                version = dist.version
            except InvalidVersion:
                continue
            cur = best.get(version)
            if cur is None or (rank, dist.filename) < (cur[0], cur[1].filename):
                best[version] = (rank, dist)
        ok = self.release_ok.get(name)  # a rule's Python range narrows like Requires-Python
        result = {v: (d, d.yanked is not None) for v, (_, d) in sorted(best.items(), reverse=True)
                  if ok is None or ok(v)}
        self._best[name] = result
        return result

    def _load(self, dist: DistFile) -> WheelDeps:
        raw = self.metadata.get(dist)
        meta = parsed_metadata(raw)
        reqs: list[Requirement] = []
        for line in meta.requires_dist:
            try:
                reqs.append(_requirement(line))
            except InvalidRequirement as exc:
                raise MetadataError(f"{dist.filename}: bad Requires-Dist {line!r}: {exc}") from None
        return WheelDeps(tuple(reqs), meta.requires_python,
                         tuple(str(canonicalize_name(e)) for e in meta.provides_extra))

    def metadata_for(self, dist: DistFile) -> WheelDeps:
        """The wheel's dependencies (loaded once, in the background when prefetched).

        A load that is still queued behind speculative ones is taken back and done
        here at once: the resolver waits for this one, and for nothing else.
        """
        with self._lock:
            fut = self._meta.get(dist.filename)
            inline = fut is None or fut.cancel()
            if inline:
                fut = self._meta[dist.filename] = Future()
            assert fut is not None
        if inline:
            try:
                fut.set_result(self._load(dist))
            except BaseException as exc:  # noqa: BLE001 - kept for every later asker, raised below
                fut.set_exception(exc)
        self._tried_version(dist)
        return fut.result()

    def _tried_version(self, dist: DistFile) -> None:
        """Count the versions of a project the resolver has tried; when it keeps going back, fetch
        the metadata of the next older ones at once instead of one round trip per try.

        As uv's batch prefetch: after 5, 10 and 20 tried versions, then every 20 more,
        that many versions below this one (at most 50) are loaded in the background.
        """
        try:
            name, version = dist.name, dist.version
        except InvalidVersion:
            return
        with self._lock:
            tried = self._tried.setdefault(name, set())
            tried.add(version)
            n, last = len(tried), self._batched.get(name, 0)
            if not any(n >= k > last for k in (5, 10, 20)) and not (n >= 20 and n - last >= 20):
                return
            self._batched[name] = n
        todo = min(n, 50)
        for v, (d, yanked) in self.best_wheels(name).items():
            if todo <= 0:
                break
            if v >= version or yanked or (v.is_prerelease and not version.is_prerelease):
                continue
            with self._lock:
                if d.filename in self._meta:
                    continue
                try:
                    self._meta[d.filename] = self._pool.submit(self._load, d)
                except RuntimeError:  # the finder is closed: the resolution is over
                    return
            todo -= 1

    def prefetch(self, reqs: Iterable[Req]) -> None:
        """Warm index pages and the likely candidate's metadata for *reqs* in the background."""
        for r in reqs:
            if r.name == PYTHON:
                continue  # Requires-Python: no page to read
            with self._lock:
                if (r.name, r.specifier) in self._prefetched:
                    continue
                self._prefetched.add((r.name, r.specifier))
            try:
                self._pool.submit(self._prefetch_one, r)
            except RuntimeError:  # the finder is closed: the resolution is over
                return

    def _prefetch_one(self, req: Req) -> None:
        try:
            for version, (dist, yanked) in self.best_wheels(req.name).items():
                if not yanked and req.specifier.contains(version):
                    with self._lock:
                        fresh = dist.filename not in self._meta
                        if fresh:
                            self._meta[dist.filename] = self._pool.submit(self._load, dist)
                        fut = self._meta[dist.filename]
                    # Outside the lock: a future already done runs its callback right here.
                    if fresh:
                        fut.add_done_callback(self._prefetch_next)
                    return
        except Exception:  # noqa: BLE001 - a prefetch failure resurfaces when the resolver asks
            return

    def _prefetch_next(self, loaded: Future[WheelDeps]) -> None:
        """Speculate one level deeper, so the pages of a whole tree load at once, not level by level."""
        if loaded.cancelled() or loaded.exception() is not None:
            return
        env = self.env("")
        self.prefetch(Req.from_requirement(r) for r in loaded.result().requires
                      if marker_true(r.marker, env))


@lru_cache(maxsize=16384)
def _requirement(line: str) -> Requirement:
    """A Requires-Dist line parsed, once per run: releases of a project repeat their lines
    (the airflow tree parses 50,000 of them), and one Requirement also lets MarkerEnv
    remember what its marker came to."""
    return Requirement(line)


class MarkerEnv(dict[str, str]):
    """A target's marker environment that remembers what each marker came to in it."""

    __slots__ = ("seen",)

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.seen: dict[int, tuple[Marker, bool]] = {}  # id -> (the marker, kept alive; its value)


def marker_true(marker: Marker | None, env: dict[str, str]) -> bool:
    """Does *marker* hold in *env* (a target's evaluation environment)?  No marker always does."""
    if marker is None:
        return True
    seen = getattr(env, "seen", None)
    if seen is None:
        return marker.evaluate(env)
    hit: tuple[Marker, bool] | None = seen.get(id(marker))
    if hit is None or hit[0] is not marker:
        hit = seen[id(marker)] = (marker, bool(marker.evaluate(env)))
    return hit[1]

