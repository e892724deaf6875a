"""The resolvelib provider: resolvelib's interface, judged for the TARGET through the finder.

Markers and Requires-Python are evaluated against the target's complete marker
environment, never the host's.  Extras follow resolvelib's pattern
``X[e]==v -> X==v``.  The edges left out on the way (``--exclude``) are the
provider's record, read through ``trimmed``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version
from resolvelib import AbstractProvider
from resolvelib.structs import RequirementInformation

from wheelferry.finder import PYTHON, Candidate, Finder, Req, marker_true
from wheelferry.lockfile import TrimmedEdge
from wheelferry.pages import version_or_none

Info = RequirementInformation[Req, Candidate]
Preference = tuple[bool, bool, bool, bool, str]  # Python first, then causes, pins, roots; by name last
Standing = tuple[bool, bool, str]  # the end of a Preference: pins, roots, name


class Provider(AbstractProvider[Req, Candidate, str]):
    """resolvelib hooks, judged for the target; the wheels and their metadata come from the finder.

    *requested* are the top-level requirements that apply to the target; ``roots`` are
    those the resolution starts from: an excluded one is trimmed instead.
    """

    def __init__(self, finder: Finder, exclude: frozenset[str], requested: Sequence[Req]) -> None:
        self.finder = finder
        self.exclude = exclude
        self.root_names = {r.identifier for r in requested}
        self._trimmed: list[TrimmedEdge] = []
        self._pins: dict[str, bool] = {}
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
        causes = {c.requirement.name for c in backtrack_causes}
        return (identifier != PYTHON, identifier.split("[")[0] not in causes,
                *self.standing(identifier, information[identifier]))

    def narrow_requirement_selection(self, identifiers: Iterable[str], resolutions: Mapping[str, Candidate],
                                     candidates: Mapping[str, Iterator[Candidate]],
                                     information: Mapping[str, Iterator[Info]],
                                     backtrack_causes: Sequence[Info]) -> Iterable[str]:
        # The one identifier get_preference would rank first (its key ends with the identifier,
        # so the minimum is unique), instead of resolvelib calling get_preference for each.
        return [self.choose(list(identifiers), lambda i: self.standing(i, information[i]), backtrack_causes)]

    def standing(self, identifier: str, information: Iterable[Info]) -> Standing:
        """The part of an identifier's preference its criterion alone decides: pinned by ``==``
        first, then the roots, then by name.  (A criterion never changes: callers may keep it.)"""
        pinned = any(self._is_pin(i.requirement) for i in information)
        return (not pinned, identifier not in self.root_names, identifier)

    def choose(self, identifiers: Collection[str], standing: Callable[[str], Standing],
               backtrack_causes: Sequence[Info]) -> str:
        """The identifier get_preference ranks first: the target's Python, then the names of the
        last conflict, then by *standing* (``standing`` as above, perhaps kept per criterion)."""
        if PYTHON in identifiers:
            return PYTHON
        pool: Collection[str] = identifiers
        if backtrack_causes:
            causes = {c.requirement.name for c in backtrack_causes}
            pool = [i for i in identifiers if i.split("[")[0] in causes] or identifiers
        return min(pool, key=standing)

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


def _safe_specifier(text: str) -> SpecifierSet:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return SpecifierSet()

