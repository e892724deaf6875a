"""Resolution for a target: a resolvelib provider that judges everything for the TARGET.

Markers, Requires-Python and wheel tags are evaluated against the target's
complete marker environment and tag ladder, never the host's.  Extras follow
resolvelib's pattern ``X[e]==v -> X==v``.  Only wheels are candidates; an sdist
is never chosen, built or run.
"""

from __future__ import annotations

import threading
from collections import ChainMap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from resolvelib import AbstractProvider, BaseReporter, Resolver
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep
from resolvelib.resolvers import resolution as _resolution
from resolvelib.structs import State

from wheelferry.coremetadata import read_core_metadata
from wheelferry.errors import MetadataError, ResolutionError
from wheelferry.lockfile import Edge, TrimmedEdge
from wheelferry.pages import DistFile, version_or_none
from wheelferry.statestack import StateStack
from wheelferry.target import Target, evaluation_environment, tag_ladder

PYTHON = "<python>"


class IndexLike(Protocol):
    def files(self, project: str, keep: Callable[[str], bool] | None = None) -> list[DistFile]: ...


class MetadataLike(Protocol):
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
class ResolvedPackage:
    """One pinned package of a resolution."""

    name: str
    version: str
    dist: DistFile
    extras: tuple[str, ...]
    required_by: tuple[Edge, ...]
    dependencies: tuple[str, ...]


@dataclass
class Resolution:
    """The resolved graph for one target."""

    target: Target
    requirements: list[str]
    packages: dict[str, ResolvedPackage]
    trimmed: list[TrimmedEdge] = field(default_factory=list)


class Finder:
    """Candidates and dependencies for one target, with background prefetching."""

    def __init__(self, index: IndexLike, metadata: MetadataLike, target: Target, *, jobs: int = 8,
                 release_ok: Mapping[str, Callable[[Version], bool]] | None = None) -> None:
        self.index = index
        self.release_ok = dict(release_ok or {})
        self.metadata = metadata
        self.target = target
        self._rank: dict[str, int] = {}
        for i, t in enumerate(tag_ladder(target)):
            self._rank.setdefault(str(t), i)
        self._triple_rank: dict[str, int | None] = {}
        self._prefetched: set[tuple[str, SpecifierSet]] = set()
        self._python_ok: dict[str, bool] = {}
        self._best: dict[str, dict[Version, tuple[DistFile, bool]]] = {}
        self._env = {e: evaluation_environment(target, e) for e in ("",)}
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="wheelferry-meta")
        self._meta: dict[str, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def env(self, extra: str) -> dict[str, str]:
        if extra not in self._env:
            self._env[extra] = evaluation_environment(self.target, extra)
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

    def _fits(self, filename: str) -> bool:
        return filename.endswith(".whl") and self.wheel_rank(filename) is not None

    def best_wheels(self, name: str) -> dict[Version, tuple[DistFile, bool]]:
        """Newest-first map version -> (best wheel for the target, yanked); memoised per project."""
        cached = self._best.get(name)
        if cached is not None:
            return cached
        best: dict[Version, tuple[int, DistFile]] = {}
        # Only wheels that fit the target become DistFile objects (most of a page does not).
        for dist in self.index.files(name, self._fits):
            rank = self.wheel_rank(dist.filename)
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

    def _load(self, dist: DistFile) -> dict[str, Any]:
        raw = self.metadata.get(dist)
        meta = read_core_metadata(raw)
        reqs: list[Requirement] = []
        for line in meta.requires_dist:
            try:
                reqs.append(Requirement(line))
            except InvalidRequirement as exc:
                raise MetadataError(f"{dist.filename}: bad Requires-Dist {line!r}: {exc}") from None
        return {
            "requires": reqs,
            "requires_python": meta.requires_python,
            "extras": [str(canonicalize_name(e)) for e in meta.provides_extra],
        }

    def metadata_for(self, dist: DistFile) -> dict[str, Any]:
        with self._lock:
            fut = self._meta.get(dist.filename)
            if fut is None:
                fut = self._pool.submit(self._load, dist)
                self._meta[dist.filename] = fut
        return fut.result()

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

    def _prefetch_next(self, loaded: Future[dict[str, Any]]) -> None:
        """Speculate one level deeper, so the pages of a whole tree load at once, not level by level."""
        if loaded.cancelled() or loaded.exception() is not None:
            return
        env = self.env("")
        self.prefetch(Req.from_requirement(r) for r in loaded.result()["requires"]
                      if _marker_true(r.marker, env))


class Provider(AbstractProvider[Req, Candidate, str]):
    """resolvelib hooks; all packaging knowledge lives here, judged for the target."""

    def __init__(self, finder: Finder, exclude: frozenset[str], roots: Sequence[Req]) -> None:
        self.finder = finder
        self.exclude = exclude
        self.root_names = {r.identifier for r in roots}
        self.trimmed: list[TrimmedEdge] = []
        self._pins: dict[str, bool] = {}
        self._python_reqs: dict[str, bool] = {}
        self._satisfied: dict[tuple[str, str, Version, frozenset[str]], bool] = {}
        self._trim_seen: set[tuple[str | None, str, str]] = set()

    def identify(self, requirement_or_candidate: Req | Candidate) -> str:
        return requirement_or_candidate.identifier

    def get_preference(self, identifier: str, resolutions: Mapping[str, Candidate],
                       candidates: Mapping[str, Iterator[Candidate]], information: Any,
                       backtrack_causes: Sequence[Any]) -> Any:
        causes = {c.requirement.name for c in backtrack_causes} if backtrack_causes else ()
        return self._preference(identifier, information, causes)

    def narrow_requirement_selection(self, identifiers: Iterable[str], resolutions: Mapping[str, Candidate],
                                     candidates: Mapping[str, Iterator[Candidate]], information: Any,
                                     backtrack_causes: Sequence[Any]) -> Iterable[str]:
        # The one identifier get_preference would rank first (its key ends with the identifier,
        # so the minimum is unique): found in one pass with the backtrack causes gathered once,
        # instead of resolvelib calling get_preference for every unpinned name each round.
        causes = {c.requirement.name for c in backtrack_causes} if backtrack_causes else ()
        return [min(identifiers, key=lambda i: self._preference(i, information, causes))]

    def _preference(self, identifier: str, information: Any, causes: Any) -> tuple[bool, bool, bool, bool, str]:
        pinned = any(self._is_pin(i.requirement) for i in information[identifier])
        return (identifier != PYTHON, identifier.split("[")[0] not in causes, not pinned,
                identifier not in self.root_names, identifier)

    def _python_req_ok(self, req: Req) -> bool:
        ok = self._python_reqs.get(req.text)
        if ok is None:
            ok = self._python_reqs[req.text] = self.finder.python_ok(str(req.specifier))
        return ok

    def _is_pin(self, req: Req) -> bool:
        pin = self._pins.get(req.text)
        if pin is None:
            pin = any(s.operator in ("==", "===") and "*" not in s.version for s in req.specifier)
            self._pins[req.text] = pin
        return pin

    def find_matches(self, identifier: str, requirements: Mapping[str, Iterator[Req]],
                     incompatibilities: Mapping[str, Iterator[Candidate]]) -> list[Candidate]:
        reqs = list(requirements[identifier])
        bad = {c.version for c in incompatibilities[identifier]}
        if identifier == PYTHON:
            version = Version(self.finder.target.python_full_version)
            ok = all(self._python_req_ok(r) for r in reqs)
            return [Candidate(PYTHON, version, frozenset(), None)] if ok and version not in bad else []
        name = identifier.split("[")[0]
        extras = frozenset().union(*(r.extras for r in reqs)) if reqs else frozenset()
        spec = SpecifierSet()
        for r in reqs:
            spec &= r.specifier
        # An ``===`` string that is no PEP 440 version pins nothing (None).
        pins = {version_or_none(s.version) for r in reqs for s in r.specifier
                if s.operator in ("==", "===") and "*" not in s.version}
        wheels = self.finder.best_wheels(name)
        allowed = set(spec.filter(v for v in wheels if v not in bad))
        return [Candidate(name, v, extras, d) for v, (d, yanked) in wheels.items()
                if v in allowed and (not yanked or v in pins)]  # PEP 592

    def is_satisfied_by(self, requirement: Req, candidate: Candidate) -> bool:
        # resolvelib re-checks every pin against every criterion each round: memoise.
        key = (requirement.text, candidate.name, candidate.version, candidate.extras)
        ok = self._satisfied.get(key)
        if ok is None:
            if candidate.name == PYTHON:
                ok = self._python_req_ok(requirement)
            else:
                ok = requirement.specifier.contains(candidate.version, prereleases=True) and (
                    requirement.extras <= candidate.extras)
            self._satisfied[key] = ok
        return ok

    def get_dependencies(self, candidate: Candidate) -> list[Req]:
        if candidate.name == PYTHON or candidate.dist is None:
            return []
        meta = self.finder.metadata_for(candidate.dist)
        deps: list[Req] = []
        if candidate.extras:
            # X[e]==v depends on X==v, plus what extra e adds.
            deps.append(Req(candidate.name, frozenset(), SpecifierSet(f"=={candidate.version}"),
                            f"{candidate.name}=={candidate.version}"))
        elif meta["requires_python"] and not self.finder.python_ok(meta["requires_python"]):
            # Only a Requires-Python the target fails becomes a requirement (and the conflict
            # that rejects this candidate).  One the target meets can never fail, and as a
            # requirement it would grow one criterion by a line per package, re-checked each round.
            deps.append(Req(PYTHON, frozenset(), _safe_specifier(meta["requires_python"]),
                            f"Requires-Python {meta['requires_python']}"))
        wanted = sorted(candidate.extras) if candidate.extras else [""]
        for req in meta["requires"]:
            if not any(_marker_true(req.marker, self.finder.env(e)) for e in wanted):
                continue
            if candidate.extras and _marker_true(req.marker, self.finder.env("")):
                continue  # already a dependency of the base X==v
            dep = Req.from_requirement(req)
            if dep.name in self.exclude:
                self._trim(candidate.name, req, "excluded")
                continue
            deps.append(dep)
        self.finder.prefetch(deps)
        return deps

    def _trim(self, parent: str | None, req: Requirement, reason: str) -> None:
        key = (parent, str(req), reason)
        if key not in self._trim_seen:
            self._trim_seen.add(key)
            self.trimmed.append(TrimmedEdge(parent, str(req), reason))


class _Resolution(_resolution.Resolution):  # type: ignore[type-arg]
    """resolvelib's resolution, with its per-round work and memory bounded by what changed.

    Each round resolvelib asks, for every criterion, whether the current pin satisfies
    all of its requirements: on a tree of n packages that is n criteria times their
    requirements per round, n rounds.  A criterion never changes (resolvelib replaces
    it), so the answer is kept on it for the pin it was computed for, and each round
    costs one lookup per criterion instead of a walk through its requirements.

    The states kept for backtracking are change logs (statestack.StateStack), not a
    copy of every pin and criterion per round, and a pin's new criteria are gathered
    on their own rather than in a copy of all criteria.
    """

    def _push_new_state(self) -> None:
        states: Any = self._states
        if not isinstance(states, StateStack):
            states = self._states = StateStack(State, states[-1])  # type: ignore[assignment]  # the root state
        states.push()

    def _save_state(self) -> None:
        if self._save_states is None:
            states: Any = self._states
            self._save_states = states.clone()

    def _patch_criteria(self, incompatibilities_from_broken: Any) -> bool:
        # resolvelib joins the broken state's incompatibilities to the current ones, which
        # already hold most of them: each backjump doubled the lists, and every later
        # find_matches walked them.  Passing on only the new ones gives the same union.
        criteria = self.state.criteria
        fresh: list[tuple[Any, list[Any]]] = []
        for key, incompatibilities in incompatibilities_from_broken:
            criterion = criteria.get(key)
            have = {id(c) for c in criterion.incompatibilities} if criterion is not None else set()
            new = []
            for c in incompatibilities:
                if id(c) not in have:
                    have.add(id(c))
                    new.append(c)
            fresh.append((key, new))
        return bool(super()._patch_criteria(fresh))

    def _get_updated_criteria(self, candidate: Any) -> Any:
        changed: dict[str, Any] = {}
        view = ChainMap(changed, self.state.criteria)  # reads fall through, writes stay in *changed*
        for requirement in self._p.get_dependencies(candidate=candidate):
            self._add_to_criteria(view, requirement, parent=candidate)  # type: ignore[arg-type]
        return changed

    def _is_current_pin_satisfying(self, name: Any, criterion: Any) -> bool:
        pin = self.state.mapping.get(name)
        if pin is None:
            return False
        seen = criterion.__dict__.get("_wheelferry_pin")
        if seen is not None and seen[0] is pin:
            return bool(seen[1])
        ok = super()._is_current_pin_satisfying(name, criterion)
        criterion._wheelferry_pin = (pin, ok)
        return bool(ok)


class _Resolver(Resolver):  # type: ignore[type-arg]
    def resolve(self, requirements: Any, max_rounds: int = 100) -> Any:  # type: ignore[override]
        state = _Resolution(self.provider, self.reporter).resolve(requirements, max_rounds=max_rounds)
        return _resolution._build_result(state)


def _safe_specifier(text: str) -> SpecifierSet:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return SpecifierSet()


def _marker_true(marker: Marker | None, env: dict[str, str]) -> bool:
    return marker is None or marker.evaluate(env)


def resolve(
    requirements: Sequence[Requirement],
    target: Target,
    index: IndexLike,
    metadata: MetadataLike,
    *,
    exclude: Iterable[str] = (),
    jobs: int = 8,
    reporter: BaseReporter[Req, Candidate, str] | None = None,
    release_ok: Mapping[str, Callable[[Version], bool]] | None = None,
) -> Resolution:
    """Resolve *requirements* for *target* from *index*; raise a readable error when impossible.

    ``release_ok`` narrows the candidates of the packages it names (package rules).
    """
    excluded = frozenset(str(canonicalize_name(e)) for e in exclude)
    finder = Finder(index, metadata, target, jobs=jobs, release_ok=release_ok)
    env = finder.env("")
    roots = [Req.from_requirement(r) for r in requirements if _marker_true(r.marker, env)]
    provider = Provider(finder, excluded, roots)
    for r in roots:
        if r.name in excluded:
            provider._trim(None, Requirement(r.text), "excluded")
    roots = [r for r in roots if r.name not in excluded]
    finder.prefetch(roots)
    try:
        result = _Resolver(provider, reporter or BaseReporter()).resolve(roots, max_rounds=20000)
    except ResolutionImpossible as exc:
        # Only a failed resolution needs the prose, and explain.py builds on this module's types.
        from wheelferry.explain import explain_impossible

        raise explain_impossible(exc, finder) from None
    except ResolutionTooDeep:
        raise ResolutionError(f"resolution for {target.id} did not finish: too much backtracking",
                              hint="pin a few top-level versions to narrow the search") from None
    finally:
        finder.close()
    return _collect(result, provider, finder, [r.text for r in roots])


def _collect(result: Any, provider: Provider, finder: Finder, root_texts: list[str]) -> Resolution:
    mapping: dict[str, Candidate] = result.mapping
    base: dict[str, Candidate] = {}
    extras: dict[str, set[str]] = {}
    for cand in mapping.values():
        if cand.name == PYTHON:
            continue
        base.setdefault(cand.name, cand)
        extras.setdefault(cand.name, set()).update(cand.extras)
    required_by: dict[str, set[tuple[str | None, str]]] = {n: set() for n in base}
    depends: dict[str, set[str]] = {n: set() for n in base}
    for ident, criterion in result.criteria.items():
        name = ident.split("[")[0]
        if name not in base:
            continue
        for info in criterion.information:
            parent = info.parent.name if info.parent is not None else None
            if parent == name:
                continue  # the X[e] -> X edge
            required_by[name].add((parent, info.requirement.text))
            if parent is not None and parent in depends:
                depends[parent].add(name)
    trimmed = list(provider.trimmed)
    for name, cand in base.items():
        assert cand.dist is not None
        meta = finder.metadata_for(cand.dist)
        for req in meta["requires"]:
            if req.marker is None or _marker_true(req.marker, finder.env("")):
                continue
            unused = [e for e in meta["extras"] if e not in extras[name] and _marker_true(req.marker, finder.env(e))]
            if unused:
                trimmed.append(TrimmedEdge(name, str(req), "extra"))
    packages = {
        name: ResolvedPackage(
            name=name, version=str(cand.version), dist=cand.dist,  # type: ignore[arg-type]
            extras=tuple(sorted(extras[name])),
            required_by=tuple(Edge(p, r) for p, r in sorted(required_by[name], key=lambda x: (x[0] or "", x[1]))),
            dependencies=tuple(sorted(depends[name])),
        )
        for name, cand in sorted(base.items())
    }
    return Resolution(finder.target, root_texts, packages, trimmed)
