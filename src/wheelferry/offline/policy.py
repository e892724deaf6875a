"""The compliance policy gate: licence allow/deny lists, denied packages, release age.

Standard library and the vendored packaging and tomli (it runs in ``audit`` offline and in ``build`` before any
download).  A policy file is TOML of this shape; every table and key is optional
and an unknown one is an error, so a typo never silently weakens a policy::

    [licenses]
    allow = ["MIT", "BSD-3-Clause", "Apache-2.0"]   # SPDX ids; absent = any id not denied
    deny = ["GPL-3.0-only", "AGPL-3.0-only"]
    unknown = "fail"                                # or "warn": no SPDX licence declared

    [packages]
    deny = ["leftpad", "urllib3<1.26.18", "pyyaml>=5.1,<5.4"]

    [releases]
    max-age-days = 730                              # by the wheel's upload time in the lock

    [advisories]                                    # judged with --advisories DB (an OSV database)
    deny = "any"                                    # or a floor: "low", "medium", "high", "critical"
    ignore = [{ id = "PYSEC-2023-62", reason = "not behind a caching proxy", until = 2027-01-01 }]

Python 3.11+ reads it with ``tomllib``; older Pythons with the vendored ``tomli``.
Version ranges are PEP 440 specifier sets judged by ``packaging`` (pre-releases
included); licence ids and expressions are checked against the SPDX licence list
of ``packaging.licenses`` (``LicenseRef-`` ids allowed).
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.licenses import canonicalize_license_expression
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from wheelferry.errors import PolicyFileError, PolicyViolation, UsageError
from wheelferry.jsontypes import JSONObject, JSONValue
from wheelferry.lockfile import Lock
from wheelferry.offline.advisories import AdvisoryRules, Finding, judge, parse_rules
from wheelferry.timestamps import parse_utc

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover  (Python 3.9 and 3.10: the vendored tomli)
    import tomli as tomllib

_SCHEMA: dict[str, dict[str, type]] = {"licenses": {"allow": list, "deny": list, "unknown": str},
           "packages": {"deny": list}, "releases": {"max-age-days": int}}


@dataclass(frozen=True)
class DeniedPackage:
    """A package name, and optionally the version range that is denied."""

    name: str
    specifiers: SpecifierSet  # empty = every version
    text: str

    def matches(self, name: str, version: str) -> bool:
        return canonicalize_name(name) == self.name and self.specifiers.contains(version, prereleases=True)


@dataclass(frozen=True)
class Policy:
    """A parsed policy file."""

    source: str
    allow: frozenset[str] = frozenset()  # SPDX ids, lower-cased
    deny: frozenset[str] = frozenset()
    unknown: str = "fail"
    packages: tuple[DeniedPackage, ...] = ()
    max_age_days: int | None = None
    advisories: AdvisoryRules | None = None  # [advisories]: needs an advisory database to judge


@dataclass(frozen=True)
class PackageFacts:
    """What the policy judges about one wheel; ``spdx`` None means the licence is not known."""

    name: str
    version: str
    file: str
    spdx: str | None = None
    licence: str = "UNKNOWN"
    upload_time: str | None = None
    evidence: str = ""  # where the licence was read


@dataclass(frozen=True)
class Violation:
    """One broken rule for one package."""

    package: str
    version: str
    file: str
    rule: str
    detail: str
    evidence: str = ""

    def to_json(self) -> dict[str, str]:
        return {"package": self.package, "version": self.version, "file": self.file,
                "rule": self.rule, "detail": self.detail, "evidence": self.evidence}

    def __str__(self) -> str:
        return f"{self.package} {self.version}: {self.rule}: {self.detail}"


@dataclass(frozen=True)
class PolicyReport:
    """Every violation and warning of one policy run."""

    policy: str
    violations: tuple[Violation, ...]
    warnings: tuple[Violation, ...] = field(default=())
    skipped: tuple[str, ...] = field(default=())  # rules that could not be judged here
    ignored: tuple[str, ...] = field(default=())  # advisories accepted by an ignore, with its reason

    def to_json(self) -> JSONObject:
        return {"policy": self.policy, "ok": not self.violations,
                "violations": [v.to_json() for v in self.violations],
                "warnings": [v.to_json() for v in self.warnings], "skipped": list(self.skipped),
                "ignored": list(self.ignored)}

    def raise_if_failed(self) -> None:
        """A PolicyViolation (exit 1) listing every violation, if there is any."""
        if self.violations:
            lines = "; ".join(str(v) for v in self.violations)
            raise PolicyViolation(f"{len(self.violations)} policy violation(s) of {self.policy}: {lines}",
                                  hint="drop or replace those packages, or change the policy on purpose",
                                  details={"policy": self.to_json()})


# --- denied packages (PEP 440 specifier sets) and SPDX (packaging.licenses) ------------------

_DENY_ENTRY = re.compile(r"^\s*(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?P<spec>.*)$")
_CLAUSE = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)\s*(\S+)\s*$")


def parse_denied(text: str, where: str) -> DeniedPackage:
    """``name`` or ``name<op><version>[,<op><version>...]`` (a PEP 440 specifier set)."""
    m = _DENY_ENTRY.match(text)
    if not m:
        raise PolicyFileError(f"{where}: {text!r} is not a package name with an optional version range")
    spec = m.group("spec").strip()
    for part in spec.split(",") if spec else []:
        c = _CLAUSE.match(part)
        if not c:
            raise PolicyFileError(f"{where}: {part.strip()!r} in {text!r} is not a version clause",
                                  hint="use ==, !=, <, <=, >, >= or ~= and a version, e.g. urllib3<1.26.18")
        if c.group(1) == "~=" and "." not in c.group(2):
            raise PolicyFileError(f"{where}: ~= needs at least two version parts ({text!r})")
    try:
        specifiers = SpecifierSet(spec)
    except InvalidSpecifier as exc:
        raise PolicyFileError(f"{where}: {text!r} is not a PEP 440 version range ({exc})") from None
    return DeniedPackage(canonicalize_name(m.group("name")), specifiers, text.strip())


def canonical_spdx(expression: str) -> str:
    """*expression* as a canonical SPDX licence expression (ValueError if it is none).

    Every id must be on the SPDX licence list that packaging carries, or be a
    ``LicenseRef-`` id; case is normalised (``mit or apache-2.0`` -> ``MIT OR Apache-2.0``).
    """
    if not expression.strip():
        raise ValueError("empty licence expression")
    return str(canonicalize_license_expression(expression))


_SPDX_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def spdx_ids(expression: str) -> list[str]:
    """Every licence id (with its exception, as ``id WITH exception``) in a canonical expression."""
    tokens = _SPDX_TOKEN.findall(expression)
    out = []
    for i, tok in enumerate(tokens):
        if tok in ("(", ")", "AND", "OR", "WITH") or (i and tokens[i - 1] == "WITH"):
            continue
        out.append(f"{tok} WITH {tokens[i + 2]}" if tokens[i + 1:i + 2] == ["WITH"] else tok)
    return out


def spdx_satisfied(expression: str, ok: Callable[[str], bool]) -> bool:
    """Evaluate a canonical expression: ``ok(id)`` per licence; ``OR`` lets the user pick, ``AND`` binds to all."""
    tokens = _SPDX_TOKEN.findall(expression)
    pos = 0

    def primary() -> bool:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            value = either()
            pos += 1  # ")"; the expression was validated by packaging
            return value
        if tokens[pos:pos + 1] == ["WITH"]:
            pos += 2
            return bool(ok(f"{tok} WITH {tokens[pos - 1]}"))
        return bool(ok(tok))

    def both() -> bool:
        nonlocal pos
        values = [primary()]
        while tokens[pos:pos + 1] == ["AND"]:
            pos += 1
            values.append(primary())
        return all(values)

    def either() -> bool:
        nonlocal pos
        values = [both()]
        while tokens[pos:pos + 1] == ["OR"]:
            pos += 1
            values.append(both())
        return any(values)

    return either()


def _licence_ok(expression: str, policy: Policy) -> bool:
    def ok(licence: str) -> bool:
        names = {licence.lower(), licence.split(" WITH ")[0].lower()}
        return not (names & policy.deny) and (not policy.allow or bool(names & policy.allow))
    return spdx_satisfied(expression, ok)


# --- judging ---------------------------------------------------------------------------------------

def evaluate(policy: Policy, packages: Iterable[PackageFacts], *, licences: bool = True,
             now: dt.datetime | None = None) -> PolicyReport:
    """Judge *packages* by *policy*; with ``licences=False`` licence rules are skipped (build)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    bad: list[Violation] = []
    warned: list[Violation] = []
    licence_rules = bool(policy.allow or policy.deny or policy.unknown == "fail")
    for p in sorted(packages, key=lambda p: (canonicalize_name(p.name), p.version, p.file)):
        def hit(rule: str, detail: str, into: list[Violation] = bad, p: PackageFacts = p) -> None:
            evidence = p.evidence if rule.startswith("licence") else (
                f"upload-time {p.upload_time}" if rule.startswith("release") else f"{p.name} {p.version}")
            into.append(Violation(p.name, p.version, p.file, rule, detail, evidence))
        for denied in policy.packages:
            if denied.matches(p.name, p.version):
                hit("package-denied", f"matches {denied.text!r}")
        if policy.max_age_days is not None:
            stamp = parse_utc(p.upload_time) if p.upload_time else None
            if stamp is None:
                hit("release-age-unknown", "the lock records no upload time", warned)
            elif (now - stamp).days > policy.max_age_days:
                hit("release-too-old", f"uploaded {stamp.date()}, {(now - stamp).days} days ago; "
                                       f"the policy allows {policy.max_age_days}")
        if not licences or not licence_rules:
            continue
        expression = None
        if p.spdx:
            try:
                expression = canonical_spdx(p.spdx)
            except ValueError:
                expression = None
        if expression is None:
            hit("licence-unknown", f"no SPDX licence declared ({p.licence})",
                bad if policy.unknown == "fail" else warned)
        elif not _licence_ok(expression, policy):
            denied_ids = [x for x in spdx_ids(expression)
                          if x.lower() in policy.deny or x.split(" WITH ")[0].lower() in policy.deny]
            if denied_ids:
                hit("licence-denied", f"{p.spdx} (denied: {', '.join(denied_ids)})")
            else:
                hit("licence-not-allowed", f"{p.spdx} is not on the allow list")
    skipped = () if licences or not licence_rules else (
        "licence rules: judged on the wheels once they are fetched, before anything is signed",)
    return PolicyReport(policy.source, tuple(bad), tuple(warned), skipped)


def with_advisories(report: PolicyReport, policy: Policy, found: Iterable[Finding],
                    files: Mapping[tuple[str, str], str], today: dt.date | None = None) -> PolicyReport:
    """*report* with the ``[advisories]`` rules judged on *found* (files: (name, version) -> wheel)."""
    if policy.advisories is None:
        return report
    bad, notes = judge(policy.advisories, found, today)
    extra = tuple(Violation(f.name, f.version, files.get((canonicalize_name(f.name), f.version), ""), rule, detail,
                            f"{', '.join(f.records)} (modified {f.modified})") for f, rule, detail in bad)
    return PolicyReport(report.policy, report.violations + extra, report.warnings, report.skipped,
                        report.ignored + tuple(notes))


def policy_report(policy: Policy, packages: Iterable[PackageFacts], found: Iterable[Finding], *,
                  licences: bool = True) -> PolicyReport:
    """:func:`evaluate` and the ``[advisories]`` rules on *found*, in one report."""
    packages = list(packages)
    files: dict[tuple[str, str], str] = {(canonicalize_name(p.name), p.version): p.file for p in packages}
    return with_advisories(evaluate(policy, packages, licences=licences), policy, found, files)


def facts_from_lock(lock: Lock) -> list[PackageFacts]:
    """Name, version, file and upload time of every wheel a lock pins (no licences yet)."""
    out = {}
    for target in lock.targets:
        for p in target.packages:
            w = lock.wheels[p.wheel]
            out[p.wheel] = PackageFacts(p.name, p.version, p.wheel, upload_time=w.upload_time)
    return list(out.values())


# --- the policy file -------------------------------------------------------------------------------

def load_policy(path: Path) -> Policy:
    """Read and check a policy file; a malformed one is a PolicyFileError (exit 2) with its location."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"policy file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError(f"cannot read policy file {path}: {exc}") from None
    return policy_from_text(text, str(path))


def policy_from_text(text: str, source: str) -> Policy:
    """Parse policy TOML (tomllib, or the vendored tomli before 3.11); every problem is a PolicyFileError."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFileError(f"{source}: {exc}", hint="see the policy format in `wheelferry audit --help`") from None
    return policy_from_dict(data, source)


def policy_from_dict(data: Mapping[str, JSONValue], source: str) -> Policy:
    """Check the shape of parsed policy TOML and build a :class:`Policy`; every problem is named."""
    problems: list[str] = []
    rules = None
    for table, value in data.items():
        if table == "advisories" and isinstance(value, dict):
            rules, found = parse_rules(value, source)
            problems += found
            continue
        if table not in _SCHEMA or not isinstance(value, dict):
            problems.append(f"[{table}] is not a policy table ({', '.join((*_SCHEMA, 'advisories'))})")
            continue
        for key, v in value.items():
            want: Any = _SCHEMA[table].get(key)  # Any: so isinstance(v, want) leaves v a usable TOML value
            if want is None:
                problems.append(f"{table}.{key} is not a known key ({', '.join(_SCHEMA[table])})")
            elif not isinstance(v, want) or isinstance(v, bool) or (
                    want is list and not all(isinstance(x, str) for x in v)):
                problems.append(f"{table}.{key} must be {'a list of strings' if want is list else want.__name__}")
    lic: JSONObject = data["licenses"] if isinstance(data.get("licenses"), dict) else {}
    unknown = lic.get("unknown", "fail")
    if unknown not in ("fail", "warn"):
        problems.append(f"licenses.unknown is {unknown!r}; use \"fail\" or \"warn\"")
    age = (data.get("releases") or {}).get("max-age-days") if isinstance(data.get("releases"), dict) else None
    if isinstance(age, int) and age < 0:
        problems.append("releases.max-age-days must not be negative")
    if problems:
        raise PolicyFileError(f"{source}: {'; '.join(problems)}",
                              hint="see the policy format in `wheelferry audit --help`")
    pk = data.get("packages", {})
    denied = tuple(parse_denied(t, f"{source}: packages.deny[{i}]") for i, t in enumerate(pk.get("deny", [])))
    for t in lic.get("allow", []) + lic.get("deny", []):
        try:
            canonical = canonical_spdx(t)
        except ValueError as exc:
            raise PolicyFileError(f"{source}: licence {t!r} is not an SPDX id ({exc})") from None
        if " AND " in canonical or " OR " in canonical or "(" in canonical:
            raise PolicyFileError(f"{source}: licence {t!r} is an expression; list one SPDX id per entry")
    return Policy(source, frozenset(x.lower() for x in lic.get("allow", [])),
                  frozenset(x.lower() for x in lic.get("deny", [])), str(unknown), denied,
                  age if isinstance(age, int) else None, rules)
