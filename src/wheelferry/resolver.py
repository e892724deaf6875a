"""Resolution for a target: resolvelib driven by the provider, its result as a graph.

Markers, Requires-Python and wheel tags are evaluated against the target's
complete marker environment and tag ladder, never the host's (finder.py and
provider.py); this module runs resolvelib and turns its result into a
``Resolution``.
"""

from __future__ import annotations

import collections
import itertools
from collections import ChainMap
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Callable, cast

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from resolvelib import BaseReporter, Resolver
from resolvelib.resolvers import (
    Criterion,
    RequirementInformation,
    RequirementsConflicted,
    ResolutionImpossible,
    ResolutionTooDeep,
    Result,
)
from resolvelib.resolvers import resolution as _resolution
from resolvelib.structs import State

from wheelferry.errors import ResolutionError
from wheelferry.explain import explain_impossible
from wheelferry.finder import PYTHON, Candidate, Finder, IndexLike, MetadataLike, Req, marker_true
from wheelferry.lockfile import Edge, TrimmedEdge
from wheelferry.pages import DistFile
from wheelferry.provider import Provider, Standing
from wheelferry.statestack import LoggedDict, StateStack
from wheelferry.target import Target

_State = State[Req, Candidate, str]
_Criterion = Criterion[Req, Candidate]
_Information = RequirementInformation[Req, Candidate]


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


class _Resolution(_resolution.Resolution[Req, Candidate, str]):
    """resolvelib's resolution, with its per-round work and memory bounded by what changed.

    Each round resolvelib asks, for every criterion, whether the current pin satisfies
    all of its requirements, and ranks every name still to pin: on a tree of n packages,
    n checks a round for n rounds.  Here the names still to pin are kept from round to
    round: a pin changes one name's pin and the criteria of its dependencies, so only
    those are asked again; after a backjump (another state) all are.  A criterion never
    changes (resolvelib replaces it), so what is known of it (whether a pin satisfies it,
    its standing in the preference) is kept on it.

    The states kept for backtracking are change logs (statestack.StateStack), not a
    copy of every pin and criterion per round, and a pin's new criteria are gathered
    on their own rather than in a copy of all criteria.
    """

    _p: Provider

    def __init__(self, provider: Provider, reporter: BaseReporter[Req, Candidate, str]) -> None:
        super().__init__(provider, reporter)
        # The criteria the last successful _get_updated_criteria gathered, and which were new.
        self._updated: tuple[dict[str, _Criterion], set[str]] = ({}, set())
        self._replaced: list[str] = []  # the criteria the last _remove_information_from_criteria made anew

    def resolve(self, requirements: Iterable[Req], max_rounds: int) -> _State:
        """resolvelib 1.2's Resolution.resolve, with the names still to pin kept between rounds."""
        if self._states:
            raise RuntimeError("already resolved")
        self._r.starting()
        self._states = [State(mapping=collections.OrderedDict(), criteria={}, backtrack_causes=[])]
        for r in requirements:
            try:
                self._add_to_criteria(self.state.criteria, r, parent=None)
            except RequirementsConflicted as e:
                raise ResolutionImpossible(e.criterion.information) from e
        # The root state is kept as the sentinel the first pin can go back to.
        self._push_new_state()
        optimistic_rounds_cutoff: int | None = None
        optimistic_backjumping_start_round: int | None = None
        unsatisfied: dict[str, None] = {}  # the names whose pin is missing or fails their criterion
        counted: _State | None = None  # the state *unsatisfied* holds for (after a backjump, none)

        for round_index in range(max_rounds):
            self._r.starting_round(index=round_index)
            if self._optimistic_backjumping_ratio and self._save_states is not None:
                if optimistic_backjumping_start_round is None:
                    optimistic_backjumping_start_round = round_index
                    optimistic_rounds_cutoff = int((max_rounds - round_index) * self._optimistic_backjumping_ratio)
                    if optimistic_rounds_cutoff <= 0:
                        self._rollback_states()
                        continue
                elif (optimistic_rounds_cutoff is not None
                      and round_index - optimistic_backjumping_start_round >= optimistic_rounds_cutoff):
                    self._rollback_states()
                    continue

            state = self.state
            if counted is not state:
                unsatisfied = self._count_unsatisfied(state)
                counted = state
            if not unsatisfied:
                self._r.ending(state=state)
                return state
            name = next(iter(unsatisfied)) if len(unsatisfied) == 1 else self._choose(unsatisfied)

            failure_criterion = self._attempt_to_pin_criterion(name)
            if failure_criterion:
                causes = self._extract_causes(failure_criterion)
                self._r.resolving_conflicts(causes=causes)
                try:
                    success = self._backjump(causes)
                except ResolutionImpossible:
                    if self._optimistic_backjumping_ratio and self._save_states:
                        failed_optimistic_backjumping = True
                    else:
                        raise
                else:
                    failed_optimistic_backjumping = bool(
                        not success and self._optimistic_backjumping_ratio and self._save_states)
                if failed_optimistic_backjumping and self._save_states:
                    self._rollback_states()
                else:
                    self.state.backtrack_causes[:] = causes
                    if not success:
                        raise ResolutionImpossible(self.state.backtrack_causes)
            else:
                # Only *name*'s pin and the criteria its dependencies touched have changed.
                changed, added = self._updated
                newly_unsatisfied: set[str] = set()  # satisfied before this pin, no longer
                for key in {name, *changed}:
                    if self._is_current_pin_satisfying(key, state.criteria[key]):
                        unsatisfied.pop(key, None)
                    else:
                        if key not in unsatisfied and key not in added:
                            newly_unsatisfied.add(key)
                        unsatisfied[key] = None
                if newly_unsatisfied:
                    # What these pins asked for no longer counts: ask again of the criteria it was in.
                    self._remove_information_from_criteria(state.criteria, newly_unsatisfied)
                    for key in self._replaced:
                        if self._is_current_pin_satisfying(key, state.criteria[key]):
                            unsatisfied.pop(key, None)
                        else:
                            unsatisfied[key] = None
                self._push_new_state()
                counted = self.state  # the pushed copy: the same pins and criteria
            self._r.ending_round(index=round_index, state=self.state)
        raise ResolutionTooDeep(max_rounds)

    def _count_unsatisfied(self, state: _State) -> dict[str, None]:
        """Every name whose pin is missing or fails its criterion (after a backjump: most answers kept)."""
        mapping = state.mapping
        out: dict[str, None] = {}
        for key, criterion in state.criteria.items():
            pin = mapping.get(key)
            if pin is None:
                out[key] = None
                continue
            seen: tuple[Candidate, bool] | None = criterion.__dict__.get("_wheelferry_pin")
            ok = seen[1] if seen is not None and seen[0] is pin else self._is_current_pin_satisfying(key, criterion)
            if not ok:
                out[key] = None
        return out

    def _choose(self, unsatisfied: dict[str, None]) -> str:
        """The name to pin next, as the provider's narrow_requirement_selection would pick it."""
        criteria = self.state.criteria

        def standing(identifier: str) -> Standing:
            criterion = criteria[identifier]
            kept: Standing | None = criterion.__dict__.get("_wheelferry_standing")
            if kept is None:
                kept = criterion.__dict__["_wheelferry_standing"] = self._p.standing(
                    identifier, criterion.information)
            return kept

        return self._p.choose(unsatisfied, standing, self.state.backtrack_causes, self.state.mapping)

    def _push_new_state(self) -> None:
        states: list[_State] | StateStack[Req, Candidate, str] = self._states
        if not isinstance(states, StateStack):
            states = StateStack(State, states[-1])  # the root state
            # The stack stands in for resolvelib's list: it does all resolvelib does with one
            # ([-1], del [-1], pop, len, truth), which is not all a list does.
            self._states = states  # type: ignore[assignment]  # see above
        states.push()

    def _save_state(self) -> None:
        if self._save_states is None:
            states = cast("StateStack[Req, Candidate, str]", self._states)  # put in place by the first _push_new_state
            self._save_states = states.clone()  # type: ignore[assignment]  # as in _push_new_state

    def _backjump(self, causes: list[_Information]) -> bool:
        """resolvelib 1.2.1's Resolution._backjump, reading only the broken state's own changes.

        resolvelib gathers the incompatibilities of every criterion of the broken state, nearly
        all empty or already known to the state it goes back to: on a tree of n packages, n per
        step back, and the steps back grow with n too.  _patch_criteria passes on only the new.
        """
        incompatible_reqs: Iterable[Req | Candidate] = itertools.chain(
            (c.parent for c in causes if c.parent is not None), (c.requirement for c in causes))
        incompatible_deps = {self._p.identify(r) for r in incompatible_reqs}
        while len(self._states) >= 3:
            del self._states[-1]  # the state that triggered backtracking
            broken_state = self.state
            while True:  # back to a state that caused the incompatibility
                try:
                    broken_state = self._states.pop()
                    name, candidate = broken_state.mapping.popitem()
                except (IndexError, KeyError):
                    raise ResolutionImpossible(causes) from None
                if not self._optimistic_backjumping_ratio and name not in incompatible_deps:
                    break
                if (self._optimistic_backjumping_ratio and self._save_states is None
                        and name not in incompatible_deps):
                    self._save_state()
                current_dependencies = {self._p.identify(d) for d in self._p.get_dependencies(candidate)}
                if not current_dependencies.isdisjoint(incompatible_deps):
                    break
                if not broken_state.mapping:
                    break
                if len(self._states) <= 1:
                    raise ResolutionImpossible(causes)
            broken = broken_state.criteria
            # The criteria the broken state changed, where it is a change log of the state now on
            # top: any other is that state's own criterion, whose incompatibilities it has already.
            changed: Iterable[str] = broken.undo if isinstance(broken, LoggedDict) and broken.whole is None \
                else broken
            incompatibilities_from_broken = [(k, list(criterion.incompatibilities)) for k in changed
                                             if (criterion := broken.get(k)) is not None
                                             and criterion.incompatibilities]
            incompatibilities_from_broken.append((name, [candidate]))
            self._push_new_state()
            if self._patch_criteria(incompatibilities_from_broken):
                return True
        return False

    def _patch_criteria(self, incompatibilities_from_broken: list[tuple[str, list[Candidate]]]) -> bool:
        # resolvelib joins the broken state's incompatibilities to the current ones, which
        # already hold most of them: each backjump doubled the lists, and every later
        # find_matches walked them.  Passing on only the new ones gives the same union
        # (resolvelib passes over a name with none, as it does over an empty list).
        criteria = self.state.criteria
        fresh: list[tuple[str, list[Candidate]]] = []
        for key, incompatibilities in incompatibilities_from_broken:
            if not incompatibilities:
                continue
            criterion = criteria.get(key)
            have: frozenset[int] = frozenset()
            if criterion is not None:
                have = criterion.__dict__.get("_wheelferry_incompatible", have)
                if not have and criterion.incompatibilities:
                    have = frozenset(id(c) for c in criterion.incompatibilities)
                    criterion.__dict__["_wheelferry_incompatible"] = have  # its list never changes
            new, seen = [], set()
            for c in incompatibilities:
                if id(c) not in have and id(c) not in seen:
                    seen.add(id(c))
                    new.append(c)
            if new:
                fresh.append((key, new))
        return super()._patch_criteria(fresh)

    def _remove_information_from_criteria(self, criteria: dict[str, _Criterion], parents: Collection[str]) -> None:
        # resolvelib makes every criterion anew, also those no parent in *parents* added to;
        # only those that lose a line are replaced here (the same values), and named in
        # self._replaced, so the round loop asks again of them alone.
        self._replaced = []
        if not parents:
            return
        for key, criterion in criteria.items():
            kept = [i for i in criterion.information
                    if i.parent is None or self._p.identify(i.parent) not in parents]
            if len(kept) != len(criterion.information):
                criteria[key] = Criterion(criterion.candidates, kept, criterion.incompatibilities)
                self._replaced.append(key)

    def _get_updated_criteria(self, candidate: Candidate) -> dict[str, _Criterion]:
        changed: dict[str, _Criterion] = {}
        view = ChainMap(changed, self.state.criteria)  # reads fall through, writes stay in *changed*
        for requirement in self._p.get_dependencies(candidate=candidate):
            # _add_to_criteria reads and writes its dict as a mapping, which the view is.
            self._add_to_criteria(view, requirement, parent=candidate)  # type: ignore[arg-type]  # see above
        criteria = self.state.criteria
        self._updated = (changed, {key for key in changed if key not in criteria})
        return changed

    def _is_current_pin_satisfying(self, name: str, criterion: _Criterion) -> bool:
        pin = self.state.mapping.get(name)
        if pin is None:
            return False
        seen: tuple[Candidate, bool] | None = criterion.__dict__.get("_wheelferry_pin")
        if seen is not None and seen[0] is pin:
            return seen[1]
        ok = super()._is_current_pin_satisfying(name, criterion)
        criterion.__dict__["_wheelferry_pin"] = (pin, ok)
        return ok


class _Resolver(Resolver[Req, Candidate, str]):
    def __init__(self, provider: Provider, reporter: BaseReporter[Req, Candidate, str]) -> None:
        super().__init__(provider, reporter)
        self._provider = provider  # the resolution asks it for more than resolvelib's hooks

    # As resolvelib's own Resolver.resolve: max_rounds where the abstract one takes **kwargs.
    def resolve(self, requirements: Iterable[Req],  # type: ignore[override]
                max_rounds: int = 100) -> Result[Req, Candidate, str]:
        state = _Resolution(self._provider, self.reporter).resolve(requirements, max_rounds=max_rounds)
        return _resolution._build_result(state)


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
    provider = Provider(finder, excluded, [Req.from_requirement(r) for r in requirements
                                           if marker_true(r.marker, env)])
    roots = provider.roots
    finder.prefetch(roots)
    try:
        result = _Resolver(provider, reporter or BaseReporter()).resolve(roots, max_rounds=20000)
    except ResolutionImpossible as exc:
        raise explain_impossible(exc, finder) from None
    except ResolutionTooDeep:
        raise ResolutionError(f"resolution for {target.id} did not finish: too much backtracking",
                              hint="pin a few top-level versions to narrow the search") from None
    finally:
        finder.close()
    return _collect(result, provider, finder, [r.text for r in roots])


def _collect(result: Result[Req, Candidate, str], provider: Provider, finder: Finder,
             root_texts: list[str]) -> Resolution:
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
    dists: dict[str, DistFile] = {}
    for name, cand in base.items():
        assert cand.dist is not None  # only the Python pseudo-candidate has none
        dists[name] = cand.dist
        meta = finder.metadata_for(cand.dist)
        for req in meta.requires:
            if req.marker is None or marker_true(req.marker, finder.env("")):
                continue
            unused = [e for e in meta.extras if e not in extras[name] and marker_true(req.marker, finder.env(e))]
            if unused:
                trimmed.append(TrimmedEdge(name, str(req), "extra"))
    packages = {
        name: ResolvedPackage(
            name=name, version=str(cand.version), dist=dists[name],
            extras=tuple(sorted(extras[name])),
            required_by=tuple(Edge(p, r) for p, r in sorted(required_by[name], key=lambda x: (x[0] or "", x[1]))),
            dependencies=tuple(sorted(depends[name])),
        )
        for name, cand in sorted(base.items())
    }
    return Resolution(finder.target, root_texts, packages, trimmed)
