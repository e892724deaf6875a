"""The resolvelib provider: resolvelib's interface, judged for the TARGET through the finder.

Markers and Requires-Python are evaluated against the target's complete marker
environment, never the host's.  Extras follow resolvelib's pattern
``X[e]==v -> X==v``.  The edges left out on the way (``--exclude``) are the
provider's record, read through ``trimmed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version
from resolvelib import AbstractProvider
from resolvelib.structs import RequirementInformation

from wheelferry.finder import PYTHON, Candidate, Finder, Req, marker_true
from wheelferry.lockfile import TrimmedEdge
from wheelferry.pages import version_or_none

Info = RequirementInformation[Req, Candidate]
# As pip 26's provider ranks: the target's Python, then the names of the last conflict (and their
# parents), then names promoted by repeated conflicts, then the Standing.
Preference = tuple[bool, bool, bool, bool, bool, float, bool, str]
# The part of a Preference a criterion alone decides: pinned (``==``), upper-bounded (``<``, ``<=``,
# ``~=``, ``==`` with ``*``), the order of the top-level requirements, any operator at all; by name last.
Standing = tuple[bool, bool, float, bool, str]

_CONFLICT_PRIORITY_THRESHOLD = 5  # pip's: conflicts a name takes part in, unpinned, before it is promoted


class Provider(AbstractProvider[Req, Candidate, str]):
    """resolvelib hooks, judged for the target; the wheels and their metadata come from the finder.

    *requested* are the top-level requirements that apply to the target; ``roots`` are
    those the resolution starts from: an excluded one is trimmed instead.
    """

    def __init__(self, finder: Finder, exclude: frozenset[str], requested: Sequence[Req]) -> None:
        self.finder = finder
        self.exclude = exclude
        self._requested_order: dict[str, int] = {}  # identifier -> its first place among the requests
        for n, r in enumerate(requested):
            self._requested_order.setdefault(r.identifier, n)
        self._conflicts: dict[str, int] = {}  # unpinned appearances in conflicts, per name
        self._promoted: set[str] = set()
        self._bounds: dict[str, tuple[bool, bool, bool]] = {}  # requirement text -> pinned, upper-bounded, unfree
        self._trimmed: list[TrimmedEdge] = []
        self._python_reqs: dict[str, bool] = {}
        self._satisfied: dict[tuple[str, str, Version, frozenset[str]], bool] = {}
        self._trim_seen: set[tuple[str | None, str, str]] = set()
        for r in requested:
            if r.name in exclude:
                self._trim(None, r.text, "excluded")
        self.roots = [r for r in requested if r.name not in exclude]

    @property
    def trimmed(self) -> tuple[TrimmedEdge, ...]:
        """The edges left out so far (excluded requirements), in the order they were met."""
        return tuple(self._trimmed)

    def identify(self, requirement_or_candidate: Req | Candidate) -> str:
        return requirement_or_candidate.identifier

    def get_preference(self, identifier: str, resolutions: Mapping[str, Candidate],
                       candidates: Mapping[str, Iterator[Candidate]], information: Mapping[str, Iterator[Info]],
                       backtrack_causes: Sequence[Info]) -> Preference:
        causes = _cause_names(backtrack_causes)
        base = identifier.split("[")[0]
        return (identifier != PYTHON, base not in causes, base not in self._promoted,
                *self.standing(identifier, information[identifier]))

    def narrow_requirement_selection(self, identifiers: Iterable[str], resolutions: Mapping[str, Candidate],
                                     candidates: Mapping[str, Iterator[Candidate]],
                                     information: Mapping[str, Iterator[Info]],
                                     backtrack_causes: Sequence[Info]) -> Iterable[str]:
        # The one identifier get_preference would rank first (its key ends with the identifier,
        # so the minimum is unique), instead of resolvelib calling get_preference for each.
        return [self.choose(list(identifiers), lambda i: self.standing(i, information[i]), backtrack_causes,
                            resolutions)]

    def standing(self, identifier: str, information: Iterable[Info]) -> Standing:
        """The part of an identifier's preference its criterion alone decides (see Standing).
        A criterion never changes: callers may keep it."""
        pinned = upper = unfree = False
        for i in information:
            p, u, f = self._bounds_of(i.requirement)
            pinned, upper, unfree = pinned or p, upper or u, unfree or f
        return (not pinned, not upper, self._requested_order.get(identifier, math.inf), not unfree, identifier)

    def choose(self, identifiers: Collection[str], standing: Callable[[str], Standing],
               backtrack_causes: Sequence[Info], pinned: Mapping[str, Candidate]) -> str:
        """The identifier get_preference ranks first, as pip 26 narrows and ranks them.

        The target's Python first; then the names of the last conflict and their parents;
        then the names that took part in conflicts five times while not pinned (counted
        here, once per call, as pip does), so that their constraints apply before others
        pick a version; then by *standing* (kept per criterion by the caller).  *pinned*
        is the current state's mapping.
        """
        if PYTHON in identifiers:
            return PYTHON
        causes = _cause_names(backtrack_causes)
        for name in causes:
            if name not in pinned:
                n = self._conflicts[name] = self._conflicts.get(name, 0) + 1
                if n >= _CONFLICT_PRIORITY_THRESHOLD:
                    self._promoted.add(name)
        pool: Collection[str] = identifiers
        if causes:
            pool = [i for i in identifiers if i.split("[")[0] in causes] or identifiers
        if pool is identifiers and self._promoted:
            pool = [i for i in identifiers if i.split("[")[0] in self._promoted] or identifiers
        return min(pool, key=standing)

    def _python_req_ok(self, req: Req) -> bool:
        ok = self._python_reqs.get(req.text)
        if ok is None:
            ok = self._python_reqs[req.text] = self.finder.python_ok(str(req.specifier))
        return ok

    def _bounds_of(self, req: Req) -> tuple[bool, bool, bool]:
        """(pinned, upper-bounded, any operator) of one requirement, as pip's preference reads them."""
        found = self._bounds.get(req.text)
        if found is None:
            ops = [(s.operator, s.version) for s in req.specifier]
            found = self._bounds[req.text] = (
                any(op in ("==", "===") and "*" not in v for op, v in ops),
                any(op in ("<", "<=", "~=") or (op == "==" and "*" in v) for op, v in ops),
                bool(ops))
        return found

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
        elif meta.requires_python and not self.finder.python_ok(meta.requires_python):
            # Only a Requires-Python the target fails becomes a requirement (and the conflict
            # that rejects this candidate).  One the target meets can never fail, and as a
            # requirement it would grow one criterion by a line per package, re-checked each round.
            deps.append(Req(PYTHON, frozenset(), _safe_specifier(meta.requires_python),
                            f"Requires-Python {meta.requires_python}"))
        wanted = sorted(candidate.extras) if candidate.extras else [""]
        for req in meta.requires:
            if not any(marker_true(req.marker, self.finder.env(e)) for e in wanted):
                continue
            if candidate.extras and marker_true(req.marker, self.finder.env("")):
                continue  # already a dependency of the base X==v
            dep = Req.from_requirement(req)
            if dep.name in self.exclude:
                self._trim(candidate.name, str(req), "excluded")
                continue
            deps.append(dep)
        self.finder.prefetch(deps)
        return deps

    def _trim(self, parent: str | None, requirement: str, reason: str) -> None:
        key = (parent, requirement, reason)
        if key not in self._trim_seen:
            self._trim_seen.add(key)
            self._trimmed.append(TrimmedEdge(parent, requirement, reason))


def _cause_names(backtrack_causes: Sequence[Info]) -> set[str]:
    """The project names of the last conflict: each cause's requirement and its parent."""
    names = {c.requirement.name for c in backtrack_causes}
    names.update(c.parent.name for c in backtrack_causes if c.parent is not None)
    return names


def _safe_specifier(text: str) -> SpecifierSet:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return SpecifierSet()

