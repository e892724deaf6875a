"""Package knowledge as data: the shipped ``data/rules.toml`` applied to root requirements.

Each rule names a package, the releases and targets it concerns, what it does
(add an extra, refuse with an explanation, add a note, check the Python range),
and why (``reason`` and ``source``).  No package name appears in code here.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Callable

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from wheelferry.errors import RuleError, UsageError
from wheelferry.jsontypes import JSONValue
from wheelferry.target import Target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ACTIONS = ("add-extra", "error", "note", "python-range")


@dataclass(frozen=True)
class Rule:
    """One piece of package knowledge with its reason and source."""

    id: str
    package: str
    versions: SpecifierSet
    when: Mapping[str, JSONValue]
    action: str
    reason: str
    source: str
    extra: str = ""
    message: str = ""
    python: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def matches(self, target: Target, version: Version | None) -> bool:
        """True when the rule concerns *target* and release *version* (None = unknown)."""
        for key, want in self.when.items():
            have = getattr(target, key, None)
            wanted = want if isinstance(want, list) else [want]
            if have not in wanted:
                return False
        if str(self.versions) and version is not None:
            return self.versions.contains(version, prereleases=True)
        return not str(self.versions) or version is not None


@dataclass(frozen=True)
class RuleOutcome:
    """Root requirements after the rules, notes saying which rules applied, and the narrowing.

    ``release_ok`` maps a package to a test of its releases: a release the python-range rules
    say has no build for the target's Python is no candidate, wherever the package appears,
    as a release whose Requires-Python excludes the target is none.
    """

    requirements: tuple[Requirement, ...]
    notes: tuple[str, ...]
    release_ok: Mapping[str, Callable[[Version], bool]] = field(default_factory=dict)


def parse_rules(data: Mapping[str, JSONValue], source: str) -> tuple[Rule, ...]:
    """Validate a rules document; every problem is reported with its rule index."""
    problems: list[str] = []
    rules: list[Rule] = []
    for i, raw in enumerate(data.get("rule", [])):
        where = f"rule[{i}]"
        try:
            action = raw["action"]
            if action not in ACTIONS:
                problems.append(f"{where}: action {action!r} is not one of {', '.join(ACTIONS)}")
                continue
            rules.append(Rule(
                id=raw["id"], package=str(canonicalize_name(raw["package"])),
                versions=SpecifierSet(raw.get("versions", "")), when=raw.get("when", {}),
                action=action, reason=raw["reason"], source=raw["source"],
                extra=raw.get("extra", ""), message=raw.get("message", ""),
                python={k: tuple(v) for k, v in raw.get("python", {}).items()},
            ))
        except (KeyError, TypeError, InvalidSpecifier) as exc:
            problems.append(f"{where}: {exc!r}")
    if problems:
        raise UsageError(f"{source} is not a valid rules file: " + "; ".join(problems))
    return tuple(rules)


def load_rules() -> tuple[Rule, ...]:
    """The rules shipped inside the package."""
    text = resources.files("wheelferry").joinpath("data/rules.toml").read_text(encoding="utf-8")
    return parse_rules(tomllib.loads(text), "wheelferry/data/rules.toml")


def python_ranges(rules: Sequence[Rule], target: Target) -> dict[str, Callable[[Version], bool]]:
    """Per package with python-range rules: does a release have builds for *target*'s Python?"""
    by_package: dict[str, list[Rule]] = {}
    for rule in rules:
        if rule.action == "python-range":
            by_package.setdefault(rule.package, []).append(rule)

    def supports(mine: list[Rule]) -> Callable[[Version], bool]:
        def ok(version: Version) -> bool:
            return all(_python_fits(rule, target, version) for rule in mine)
        return ok

    return {package: supports(mine) for package, mine in by_package.items()}


def _pythons(rule: Rule, target: Target, version: Version) -> tuple[str, ...] | None:
    """The Pythons *rule* lists for the series of *version*; None when it says nothing of it."""
    if not rule.matches(target, version):
        return None
    return rule.python.get(f"{version.major}.{version.minor}") or None


def _python_fits(rule: Rule, target: Target, version: Version) -> bool:
    supported = _pythons(rule, target, version)
    return supported is None or target.python_version in supported


def apply_rules(
    requirements: Sequence[Requirement],
    target: Target,
    rules: Sequence[Rule],
    releases_of: Callable[[Requirement], Sequence[Version]],
) -> RuleOutcome:
    """Apply *rules* to the root *requirements* for *target*; a refusing rule raises RuleError.

    ``releases_of`` lists, newest first, the releases the index has in a requirement's range
    (the pin alone, once the resolver has chosen).  python-range rules narrow those releases;
    only a requirement they leave nothing of is refused, with the reason.  The other rules are
    judged on the newest release left, the one the resolver is expected to pick.
    """
    release_ok = python_ranges(rules, target)
    out: list[Requirement] = []
    notes: list[str] = []
    for req in requirements:
        name = str(canonicalize_name(req.name))
        mine = [r for r in rules if r.package == name]
        if not mine:
            out.append(req)
            continue
        releases = list(releases_of(req))
        ok = release_ok.get(name)
        kept = [v for v in releases if ok is None or ok(v)]
        if releases and not kept:
            raise _outside_python_range(req, releases[0], target, mine, releases_of)
        version = kept[0] if kept else None
        fields = {"version": str(version) if version else "(unknown)", "target": target.id,
                  "python": target.python_version, "package": req.name}
        for rule in mine:
            if not rule.matches(target, version):
                continue
            if rule.action == "error":
                raise RuleError(f"{req}: " + rule.message.format(**fields),
                                hint=f"rule {rule.id}: {rule.reason} ({rule.source})")
            if rule.action == "add-extra" and rule.extra not in req.extras:
                req = Requirement(str(req))
                req.extras = set(req.extras) | {rule.extra}
                notes.append(f"{rule.id}: {req.name} -> {req} ({rule.reason})")
            elif rule.action == "note":
                notes.append(f"{rule.id}: " + rule.message.format(**fields))
        out.append(req)
    return RuleOutcome(tuple(out), tuple(notes), release_ok)


def _outside_python_range(req: Requirement, version: Version, target: Target, mine: Sequence[Rule],
                          releases_of: Callable[[Requirement], Sequence[Version]]) -> RuleError:
    """The explained refusal of a requirement whose every release lacks the target's Python."""
    rule = next(r for r in mine if r.action == "python-range" and not _python_fits(r, target, version))
    supported = _pythons(rule, target, version) or ()
    some = "" if len(req.specifier) == 1 and next(iter(req.specifier)).operator in ("==", "===") \
        else f"{req} leaves no release with wheels for it: "
    fitting = [v for v in releases_of(Requirement(req.name))
               if all(_python_fits(r, target, v) for r in mine if r.action == "python-range")]
    ways = [f"ask for {req.name}=={fitting[0]}, the newest release for Python {target.python_version}"] \
        if fitting else []
    if not target.probed:  # another target is a way out only when the target is not this host
        ways.append("choose a target with one of those Pythons")
    return RuleError(
        f"{some}{req.name} {version} supports Python {', '.join(supported)}; "
        f"target {target.id} has Python {target.python_version}",
        hint=f"{'; or '.join(ways) or 'use another Python'} (rule {rule.id}: {rule.source})")
