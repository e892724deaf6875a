"""The compliance policy gate: licence allow/deny lists, denied packages, release age.

Standard library only (it runs in ``audit`` offline and in ``build`` before any
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

Python 3.11+ reads it with ``tomllib``; older Pythons with
:mod:`wheelferry.offline.tomlsubset`, a strict reader of the subset above.
Version ranges take ``==`` (also ``==X.*``), ``!=``, ``<``, ``<=``, ``>``, ``>=``
and ``~=`` with PEP 440 ordering; local versions are ignored and, unlike pip,
``<V`` does not treat pre-releases of V specially.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wheelferry.errors import PolicyFileError, PolicyViolation, UsageError

_SCHEMA: dict[str, dict[str, type]] = {"licenses": {"allow": list, "deny": list, "unknown": str},
           "packages": {"deny": list}, "releases": {"max-age-days": int}}


@dataclass(frozen=True)
class DeniedPackage:
    """A package name, and optionally the version range that is denied."""

    name: str
    specifiers: tuple[tuple[str, str], ...]  # (operator, version); empty = every version
    text: str

    def matches(self, name: str, version: str) -> bool:
        return canonical_name(name) == self.name and all(
            version_matches(version, op, v) for op, v in self.specifiers)


@dataclass(frozen=True)
class Policy:
    """A parsed policy file."""

    source: str
    allow: frozenset[str] = frozenset()  # SPDX ids, lower-cased
    deny: frozenset[str] = frozenset()
    unknown: str = "fail"
    packages: tuple[DeniedPackage, ...] = ()
    max_age_days: int | None = None


@dataclass(frozen=True)
class PackageFacts:
    """What the policy judges about one wheel; ``spdx`` None means the licence is not known."""

    name: str
    version: str
    file: str
    spdx: str | None = None
    licence: str = "UNKNOWN"
    upload_time: str | None = None


@dataclass(frozen=True)
class Violation:
    """One broken rule for one package."""

    package: str
    version: str
    file: str
    rule: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"package": self.package, "version": self.version, "file": self.file,
                "rule": self.rule, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.package} {self.version}: {self.rule}: {self.detail}"


@dataclass(frozen=True)
class PolicyReport:
    """Every violation and warning of one policy run."""

    policy: str
    violations: tuple[Violation, ...]
    warnings: tuple[Violation, ...] = field(default=())
    skipped: tuple[str, ...] = field(default=())  # rules that could not be judged here

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "ok": not self.violations,
                "violations": [v.to_json() for v in self.violations],
                "warnings": [v.to_json() for v in self.warnings], "skipped": list(self.skipped)}

    def raise_if_failed(self) -> None:
        """A PolicyViolation (exit 1) listing every violation, if there is any."""
        if self.violations:
            lines = "; ".join(str(v) for v in self.violations)
            raise PolicyViolation(f"{len(self.violations)} policy violation(s) of {self.policy}: {lines}",
                                  hint="drop or replace those packages, or change the policy on purpose")


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


# --- PEP 440 ordering (the subset a deny list needs) -------------------------------------------

_VERSION = re.compile(
    r"^\s*v?(?:(?P<epoch>\d+)!)?(?P<release>\d+(?:\.\d+)*)"
    r"(?:[-_.]?(?P<pre_l>alpha|beta|preview|pre|a|b|c|rc)[-_.]?(?P<pre_n>\d+)?)?"
    r"(?:-(?P<post_n1>\d+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>\d+)?)?"
    r"(?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>\d+)?)?"
    r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?\s*$", re.IGNORECASE)
_PRE = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}


def _release(text: str) -> tuple[int, ...]:
    m = _VERSION.match(text)
    if not m:
        raise ValueError(text)
    return tuple(int(p) for p in m.group("release").split("."))


def version_key(text: str) -> tuple[Any, ...]:
    """A sort key ordering versions as PEP 440 does (ValueError if *text* is not a version)."""
    m = _VERSION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a PEP 440 version")
    release = list(_release(text))
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    post = m.group("post_n1") or m.group("post_n2") or ("0" if m.group("post_l") else None)
    dev = m.group("dev_n") or ("0" if m.group("dev_l") else None)
    if m.group("pre_l"):
        pre: tuple[float, float] = (_PRE[m.group("pre_l").lower()], int(m.group("pre_n") or 0))
    elif dev is not None and post is None:
        pre = (-math.inf, 0)  # 1.0.dev1 sorts before 1.0a1
    else:
        pre = (math.inf, 0)
    return (int(m.group("epoch") or 0), tuple(release), pre,
            -math.inf if post is None else int(post), math.inf if dev is None else int(dev))


def version_matches(version: str, op: str, spec: str) -> bool:
    """True if *version* satisfies one clause ``op spec`` (see the module docstring)."""
    if op in ("==", "!=") and spec.endswith(".*"):
        want_release = _release(spec[:-2])
        have_release = _release(version) + (0,) * len(want_release)
        hit = have_release[:len(want_release)] == want_release
        return hit if op == "==" else not hit
    have, want = version_key(version), version_key(spec)
    if op == "~=":
        # PEP 440: ~=X.Y.Z means >=X.Y.Z, ==X.Y.*
        prefix = ".".join(str(p) for p in _release(spec)[:-1])
        return have >= want and version_matches(version, "==", prefix + ".*")
    return {"==": have == want, "!=": have != want, "<": have < want, "<=": have <= want,
            ">": have > want, ">=": have >= want}[op]


_DENY_ENTRY = re.compile(r"^\s*(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?P<spec>.*)$")
_CLAUSE = re.compile(r"^\s*(~=|==|!=|<=|>=|<|>)\s*([A-Za-z0-9.!+_*-]+)\s*$")


def parse_denied(text: str, where: str) -> DeniedPackage:
    """``name`` or ``name<op><version>[,<op><version>...]``."""
    m = _DENY_ENTRY.match(text)
    if not m:
        raise PolicyFileError(f"{where}: {text!r} is not a package name with an optional version range")
    clauses = []
    spec = m.group("spec").strip()
    for part in spec.split(",") if spec else []:
        c = _CLAUSE.match(part)
        if not c or (c.group(2).endswith(".*") and c.group(1) not in ("==", "!=")):
            raise PolicyFileError(f"{where}: {part.strip()!r} in {text!r} is not a version clause",
                                  hint="use ==, !=, <, <=, >, >= or ~= and a version, e.g. urllib3<1.26.18")
        try:
            version_key(c.group(2).removesuffix(".*"))
        except ValueError:
            raise PolicyFileError(f"{where}: {c.group(2)!r} in {text!r} is not a PEP 440 version") from None
        if c.group(1) == "~=" and len(_release(c.group(2))) < 2:
            raise PolicyFileError(f"{where}: ~= needs at least two version parts ({text!r})")
        clauses.append((c.group(1), c.group(2)))
    return DeniedPackage(canonical_name(m.group("name")), tuple(clauses), text.strip())


# --- SPDX licence expressions --------------------------------------------------------------------

_SPDX_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.+:-]+)")


def parse_spdx(expression: str) -> Any:
    """A tree of ``("id", id, exception)``, ``("and", [...])``, ``("or", [...])``; ValueError if bad."""
    tokens: list[str] = []
    pos = 0
    while pos < len(expression.rstrip()):
        m = _SPDX_TOKEN.match(expression, pos)
        if not m:
            raise ValueError(f"unexpected {expression[pos:].strip()[:10]!r}")
        tokens.append(m.group(1))
        pos = m.end()
    i = 0

    def peek() -> str:
        return tokens[i].upper() if i < len(tokens) else ""

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise ValueError("unexpected end")
        i += 1
        return tokens[i - 1]

    def primary() -> Any:
        tok = take()
        if tok == "(":
            node = either()
            if take() != ")":
                raise ValueError("missing )")
            return node
        if tok == ")" or tok.upper() in ("AND", "OR", "WITH"):
            raise ValueError(f"unexpected {tok!r}")
        if peek() == "WITH":
            take()
            return ("id", tok, take())
        return ("id", tok, None)

    def both() -> Any:
        parts = [primary()]
        while peek() == "AND":
            take()
            parts.append(primary())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def either() -> Any:
        parts = [both()]
        while peek() == "OR":
            take()
            parts.append(both())
        return parts[0] if len(parts) == 1 else ("or", parts)

    tree = either()
    if i != len(tokens):
        raise ValueError(f"unexpected {tokens[i]!r}")
    return tree


def spdx_ids(tree: Any) -> list[str]:
    """Every licence id in a parsed expression."""
    if tree[0] == "id":
        return [tree[1]]
    return [x for part in tree[1] for x in spdx_ids(part)]


def _licence_ok(tree: Any, policy: Policy) -> bool:
    if tree[0] == "id":
        names = {tree[1].lower()} | ({f"{tree[1]} WITH {tree[2]}".lower()} if tree[2] else set())
        return not (names & policy.deny) and (not policy.allow or bool(names & policy.allow))
    results = [_licence_ok(part, policy) for part in tree[1]]
    # SPDX: "A OR B" lets the user pick either licence; "A AND B" binds to both.
    return any(results) if tree[0] == "or" else all(results)


# --- judging ---------------------------------------------------------------------------------------

def _parse_time(text: str) -> dt.datetime | None:
    text = re.sub(r"\.\d+", "", text.strip()).replace("Z", "+00:00")
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)


def evaluate(policy: Policy, packages: Iterable[PackageFacts], *, licences: bool = True,
             now: dt.datetime | None = None) -> PolicyReport:
    """Judge *packages* by *policy*; with ``licences=False`` licence rules are skipped (build)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    bad: list[Violation] = []
    warned: list[Violation] = []
    licence_rules = bool(policy.allow or policy.deny or policy.unknown == "fail")
    for p in sorted(packages, key=lambda p: (canonical_name(p.name), p.version, p.file)):
        def hit(rule: str, detail: str, into: list[Violation] = bad, p: PackageFacts = p) -> None:
            into.append(Violation(p.name, p.version, p.file, rule, detail))
        for denied in policy.packages:
            if denied.matches(p.name, p.version):
                hit("package-denied", f"matches {denied.text!r}")
        if policy.max_age_days is not None:
            stamp = _parse_time(p.upload_time) if p.upload_time else None
            if stamp is None:
                hit("release-age-unknown", "the lock records no upload time", warned)
            elif (now - stamp).days > policy.max_age_days:
                hit("release-too-old", f"uploaded {stamp.date()}, {(now - stamp).days} days ago; "
                                       f"the policy allows {policy.max_age_days}")
        if not licences or not licence_rules:
            continue
        tree = None
        if p.spdx:
            try:
                tree = parse_spdx(p.spdx)
            except ValueError:
                tree = None
        if tree is None:
            hit("licence-unknown", f"no SPDX licence declared ({p.licence})",
                bad if policy.unknown == "fail" else warned)
        elif not _licence_ok(tree, policy):
            denied_ids = [x for x in spdx_ids(tree) if x.lower() in policy.deny]
            if denied_ids:
                hit("licence-denied", f"{p.spdx} (denied: {', '.join(denied_ids)})")
            else:
                hit("licence-not-allowed", f"{p.spdx} is not on the allow list")
    skipped = () if licences or not licence_rules else (
        "licence rules: licences are read from the wheels, so `audit --policy` checks them",)
    return PolicyReport(policy.source, tuple(bad), tuple(warned), skipped)


def facts_from_lock(lock: Any) -> list[PackageFacts]:
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
    try:
        import tomllib
    except ImportError:  # Python 3.9 and 3.10
        from wheelferry.offline.tomlsubset import parse_toml_subset

        data = parse_toml_subset(text, str(path))
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyFileError(f"{path}: {exc}", hint="see the policy format in `wheelferry audit --help`") from None
    return policy_from_dict(data, str(path))


def policy_from_dict(data: Mapping[str, Any], source: str) -> Policy:
    """Check the shape of parsed policy TOML and build a :class:`Policy`; every problem is named."""
    problems: list[str] = []
    for table, value in data.items():
        if table not in _SCHEMA or not isinstance(value, dict):
            problems.append(f"[{table}] is not a policy table ({', '.join(_SCHEMA)})")
            continue
        for key, v in value.items():
            want: Any = _SCHEMA[table].get(key)
            if want is None:
                problems.append(f"{table}.{key} is not a known key ({', '.join(_SCHEMA[table])})")
            elif not isinstance(v, want) or isinstance(v, bool) or (
                    want is list and not all(isinstance(x, str) for x in v)):
                problems.append(f"{table}.{key} must be {'a list of strings' if want is list else want.__name__}")
    lic: dict[str, Any] = data["licenses"] if isinstance(data.get("licenses"), dict) else {}
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
            parse_spdx(t)
        except ValueError as exc:
            raise PolicyFileError(f"{source}: licence {t!r} is not an SPDX id ({exc})") from None
    return Policy(source, frozenset(x.lower() for x in lic.get("allow", [])),
                  frozenset(x.lower() for x in lic.get("deny", [])), str(unknown), denied,
                  age if isinstance(age, int) else None)
