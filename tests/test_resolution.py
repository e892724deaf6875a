"""The resolver's round loop keeps what it knows between rounds: it must choose as resolvelib does.

Random small indexes (conflicting bounds, cycles, extras, a Requires-Python the target
fails, yanked files) are resolved twice with the same provider: by wheelferry's resolution and
by resolvelib's own, unchanged.  Every pin, rejection and backjump must come in the same
order, and the result (or the failure) must be the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.version import Version
from resolvelib import BaseReporter, Resolver
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep
from resolvelib.structs import RequirementInformation

from wheelferry.finder import Candidate, Finder, Req
from wheelferry.pages import DistFile
from wheelferry.provider import Provider
from wheelferry.resolver import _Resolver
from wheelferry.target import parse_target

NAMES = ["a", "b", "c", "d", "e", "f"]
SPECS = ["", ">=2", "<2", "<3", "==1.0", "!=2.0", ">=3", "~=1.0"]
# A release: its Requires-Dist, yanked, a Requires-Python the target fails, its Provides-Extra.
Release = tuple[list[str], bool, bool, list[str]]
Releases = dict[str, dict[str, Release]]


class _Index:
    """An index in memory: the finder's IndexLike and MetadataLike over generated wheels."""

    def __init__(self, releases: Releases) -> None:
        self.dists: dict[str, list[DistFile]] = {}
        self.meta: dict[str, bytes] = {}
        for name, versions in releases.items():
            for version, (requires, yanked, old_python, extras) in versions.items():
                filename = f"{name}-{version}-py3-none-any.whl"
                self.dists.setdefault(name, []).append(
                    DistFile(filename, f"https://mirror.example/files/{filename}", yanked="" if yanked else None))
                lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
                lines += ["Requires-Python: <3"] if old_python else []
                lines += [f"Provides-Extra: {e}" for e in extras]
                lines += [f"Requires-Dist: {r}" for r in requires]
                self.meta[filename] = ("\n".join(lines) + "\n").encode()

    def files(self, project: str, keep: Callable[[str], bool] | None = None) -> list[DistFile]:
        return [d for d in self.dists.get(project, []) if keep is None or keep(d.filename)]

    def files_named(self, project: str, filename: str) -> list[DistFile]:
        return [d for d in self.dists.get(project, []) if d.filename == filename]

    def get(self, dist: DistFile) -> bytes:
        return self.meta[dist.filename]


class _Log(BaseReporter[Req, Candidate, str]):
    """Every decision of a resolution, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def pinning(self, candidate: Candidate) -> None:
        self.events.append(("pin", candidate.identifier, str(candidate.version)))

    def rejecting_candidate(self, criterion: Any, candidate: Candidate) -> None:
        self.events.append(("reject", candidate.identifier, str(candidate.version)))

    def resolving_conflicts(self, causes: Any) -> None:
        self.events.append(("conflict", sorted(c.requirement.text for c in causes)))


@st.composite
def _releases(draw: st.DrawFn) -> Releases:
    out: Releases = {}
    for name in NAMES:
        later = [n for n in NAMES if n != name]  # cycles too: resolvelib takes them
        versions: dict[str, Release] = {}
        for v in draw(st.sets(st.sampled_from(["1.0", "2.0", "3.0"]), min_size=1)):
            requires: list[str] = []
            for dep in draw(st.lists(st.sampled_from(later), max_size=3, unique=True)):
                extra = draw(st.sampled_from(["", "", "[x]"]))
                requires.append(f"{dep}{extra}{draw(st.sampled_from(SPECS))}")
            if draw(st.booleans()):
                requires.append(f"{draw(st.sampled_from(later))}{draw(st.sampled_from(SPECS))}; extra == 'x'")
            yanked = draw(st.integers(0, 9)) == 0
            old_python = draw(st.integers(0, 9)) == 0
            versions[v] = (requires, yanked, old_python, ["x"])
        out[name] = versions
    return out


def _run(resolver_class: type[Resolver[Req, Candidate, str]], index: _Index,
         roots: list[str]) -> tuple[list[tuple[Any, ...]], object]:
    finder = Finder(index, index, parse_target("linux-x86_64:3.11"), jobs=1)
    provider = Provider(finder, frozenset(), [Req.from_requirement(Requirement(r)) for r in roots])
    log = _Log()
    try:
        result = resolver_class(provider, log).resolve(provider.roots, max_rounds=500)
    except ResolutionImpossible as exc:
        outcome: object = ("impossible", sorted(c.requirement.text for c in exc.causes))
    except ResolutionTooDeep:
        outcome = "too deep"
    else:
        outcome = ([(k, str(v.version)) for k, v in result.mapping.items()],
                   {k: sorted((i.requirement.text, i.parent.identifier if i.parent else "")
                              for i in c.information) for k, c in result.criteria.items()})
    finally:
        finder.close()
    return log.events, outcome


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_releases(), st.lists(st.sampled_from([f"{n}{s}" for n in NAMES[:3] for s in SPECS]),
                             min_size=1, max_size=3, unique_by=lambda r: r[0]))
def test_rounds_choose_pin_and_backjump_as_resolvelib_does(
        releases: Releases, roots: list[str]) -> None:
    index = _Index(releases)
    ours = _run(_Resolver, index, roots)
    reference = _run(Resolver, index, roots)
    assert ours == reference


def test_a_backtracking_tree_needs_its_backjumps_and_gets_the_one_answer() -> None:
    # a 3.0 and 2.0 need b>=3 / b>=2, but the chain under a ends in z, which needs b<2.
    releases: Releases = {
        "a": {f"{v}.0": ([f"b>={v}", "c"], False, False, []) for v in (1, 2, 3)},
        "b": {f"{v}.0": ([], False, False, []) for v in (1, 2, 3)},
        "c": {"1.0": (["d"], False, False, [])},
        "d": {"1.0": (["z"], False, False, [])},
        "z": {"1.0": (["b<2"], False, False, [])},
    }
    events, outcome = _run(_Resolver, _Index(releases), ["a"])
    assert isinstance(outcome, tuple)
    assert dict(outcome[0]) == {"a": "1.0", "b": "1.0", "c": "1.0", "d": "1.0", "z": "1.0"}
    assert sum(1 for e in events if e[0] == "conflict") >= 2
    assert (events, outcome) == _run(Resolver, _Index(releases), ["a"])


@pytest.mark.parametrize("roots", [["a==9"], ["a", "b>=4"]])
def test_an_impossible_request_fails_as_resolvelib_fails(roots: list[str]) -> None:
    releases: Releases = {"a": {"1.0": (["b"], False, False, [])}, "b": {"1.0": ([], False, False, [])}}
    ours = _run(_Resolver, _Index(releases), roots)
    assert ours[1][0] == "impossible"  # type: ignore[index]
    assert ours == _run(Resolver, _Index(releases), roots)


def test_a_pin_a_later_requirement_excludes_is_pinned_again() -> None:
    # b is pinned at 3.0 first (by name); c then asks for b<3, so b's pin no longer holds and what
    # b 3.0 asked for is dropped: b is pinned again at 2.0, and its own dependency d goes with it.
    releases: Releases = {
        "b": {"3.0": (["d"], False, False, []), "2.0": ([], False, False, [])},
        "c": {"1.0": (["b<3"], False, False, [])},
        "d": {"1.0": ([], False, False, [])},
    }
    events, outcome = _run(_Resolver, _Index(releases), ["b", "c"])
    assert [e for e in events if e[0] == "pin"][:3] == [("pin", "b", "3.0"), ("pin", "c", "1.0"), ("pin", "b", "2.0")]
    assert isinstance(outcome, tuple)
    assert dict(outcome[0])["b"] == "2.0" and "d" not in dict(outcome[0])
    assert (events, outcome) == _run(Resolver, _Index(releases), ["b", "c"])


def test_a_requirement_dropped_with_its_parent_no_longer_unsettles_a_pin() -> None:
    # a is pinned at 2.0; b 3.0 asks for a<2 (a's pin fails it) and c==1.0; c goes next (an ==
    # pin) and asks for b<3, so b's pin fails too and what b 3.0 asked for is dropped: a's pin
    # 2.0 holds again and a is not pinned anew; only b is, at 2.0.
    releases: Releases = {
        "a": {"1.0": ([], False, False, []), "2.0": ([], False, False, [])},
        "b": {"3.0": (["a<2", "c==1.0"], False, False, []), "2.0": ([], False, False, [])},
        "c": {"1.0": (["b<3"], False, False, [])},
    }
    events, outcome = _run(_Resolver, _Index(releases), ["a", "b"])
    assert [e for e in events if e[0] == "pin"] == [
        ("pin", "a", "2.0"), ("pin", "b", "3.0"), ("pin", "c", "1.0"), ("pin", "b", "2.0")]
    assert isinstance(outcome, tuple)
    assert dict(outcome[0]) == {"a": "2.0", "b": "2.0"}
    assert (events, outcome) == _run(Resolver, _Index(releases), ["a", "b"])


def _provider(roots: list[str]) -> tuple[Provider, Finder]:
    finder = Finder(_Index({}), _Index({}), parse_target("linux-x86_64:3.11"), jobs=1)
    return Provider(finder, frozenset(), [Req.from_requirement(Requirement(r)) for r in roots]), finder


def _cause(requirement: str, parent: str | None) -> Any:
    owner = Candidate(parent, Version("1.0"), frozenset(), None) if parent else None
    return RequirementInformation(Req.from_requirement(Requirement(requirement)), owner)


def test_the_parent_of_a_conflicting_requirement_is_among_the_next_names_to_pin() -> None:
    # pip 26 narrows to the names of the last conflict and their parents: here s3fs, whose
    # aiobotocore asked for a botocore the pinned one is not.
    provider, finder = _provider(["boto3", "s3fs"])
    try:
        standing = lambda i: provider.standing(i, [])  # noqa: E731 - a key for the test
        causes = [_cause("botocore<1.41", "aiobotocore"), _cause("botocore==1.44.8", "boto3")]
        assert provider.choose(["aiobotocore", "jmespath", "zz"], standing, causes, {}) == "aiobotocore"
        assert provider.choose(["jmespath", "zz"], standing, causes, {}) == "jmespath"  # no cause left: all
    finally:
        finder.close()


def test_a_name_in_five_conflicts_while_unpinned_is_pinned_before_the_others() -> None:
    provider, finder = _provider(["a"])
    try:
        standing = lambda i: provider.standing(i, [])  # noqa: E731 - a key for the test
        causes = [_cause("x<2", None)]
        for _ in range(4):
            provider.choose(["x", "b"], standing, causes, {})
            assert provider.choose(["b", "x"], standing, [], {}) == "b"  # by name: not promoted yet
        provider.choose(["x", "b"], standing, causes, {"x": None})  # pinned: this one does not count
        assert provider.choose(["b", "x"], standing, [], {}) == "b"
        provider.choose(["x", "b"], standing, causes, {})  # the fifth time unpinned
        assert provider.choose(["b", "x"], standing, [], {}) == "x"
        prefs = {i: provider.get_preference(i, {}, {}, {i: iter([])}, []) for i in ("b", "x")}
        assert min(prefs, key=prefs.__getitem__) == "x"  # resolvelib's own loop ranks it so too
    finally:
        finder.close()


def test_upper_bounds_then_the_order_of_the_requests_rank_the_unpinned() -> None:
    provider, finder = _provider(["zeta", "alpha"])
    try:
        def info(name: str, spec: str) -> list[Any]:
            return [_cause(f"{name}{spec}", None)]
        specs = {"alpha": "", "zeta": "", "beta": "<3", "gamma": ">=1"}
        standing = lambda i: provider.standing(i, info(i, specs[i]))  # noqa: E731 - a key for the test
        assert provider.choose(list(specs), standing, [], {}) == "beta"  # upper-bounded first
        del specs["beta"]
        assert provider.choose(list(specs), standing, [], {}) == "zeta"  # then as requested
        del specs["zeta"], specs["alpha"]
        specs["delta"] = ""
        assert provider.choose(list(specs), standing, [], {}) == "gamma"  # then any operator
    finally:
        finder.close()
