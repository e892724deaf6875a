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
from typing import Any, Callable

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from wheelferry.errors import RuleError, UsageError
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
    when: Mapping[str, Any]
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
    """Root requirements after the rules, and notes saying which rules applied."""

    requirements: tuple[Requirement, ...]
    notes: tuple[str, ...]


def parse_rules(data: Mapping[str, Any], source: str) -> tuple[Rule, ...]:
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


def apply_rules(
    requirements: Sequence[Requirement],
    target: Target,
    rules: Sequence[Rule],
    version_of: Callable[[Requirement], Version | None],
) -> RuleOutcome:
    """Apply *rules* to the root *requirements* for *target*; a refusing rule raises RuleError.

    ``version_of`` tells which release of a requirement the resolver is expected
    to pick (the pin, or the newest release the index has in range).
    """
    out: list[Requirement] = []
    notes: list[str] = []
    for req in requirements:
        name = str(canonicalize_name(req.name))
        mine = [r for r in rules if r.package == name]
        if not mine:
            out.append(req)
            continue
        version = version_of(req)
        fields = {"version": str(version) if version else "(unknown)", "target": target.id,
                  "python": target.python_version, "package": req.name}
        for rule in mine:
            if not rule.matches(target, version):
                continue
            if rule.action == "error":
                raise RuleError(f"{req}: " + rule.message.format(**fields),
                                hint=f"rule {rule.id}: {rule.reason} ({rule.source})")
            if rule.action == "python-range" and version is not None:
                key = f"{version.major}.{version.minor}"
                supported = rule.python.get(key)
                if supported and target.python_version not in supported:
                    raise RuleError(
                        f"{req.name} {version} supports Python {', '.join(supported)}; "
                        f"target {target.id} has Python {target.python_version}",
                        hint=f"choose a target with one of those Pythons ({rule.source})")
            elif rule.action == "add-extra" and rule.extra not in req.extras:
                req = Requirement(str(req))
                req.extras = set(req.extras) | {rule.extra}
                notes.append(f"{rule.id}: {req.name} -> {req} ({rule.reason})")
            elif rule.action == "note":
                notes.append(f"{rule.id}: " + rule.message.format(**fields))
        out.append(req)
    return RuleOutcome(tuple(out), tuple(notes))
