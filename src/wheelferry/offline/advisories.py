"""Known vulnerabilities of a bundle's packages, from an OSV database carried across the gap.

Standard library and the vendored packaging.  :func:`findings` matches each (package,
version) against the records :mod:`wheelferry.offline.osv` read, and merges records that
are one vulnerability under several names (PYSEC, GHSA, CVE: linked by ``aliases``) into
one :class:`Finding` with every id.  The policy's ``[advisories]`` table is judged here
(:func:`judge`), and the findings are written as a table, JSON and CycloneDX 1.6
``vulnerabilities`` whose ``affects`` point at the components' bom-refs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import cvss
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from wheelferry.jsontypes import JSONObject, JSONValue, located_objects
from wheelferry.offline.osv import Advisory, Scan
from wheelferry.offline.osv import scan as scan_database

SEVERITIES = ("low", "medium", "high", "critical")
_LABELS = {"low": "low", "moderate": "medium", "medium": "medium", "high": "high", "critical": "critical"}
_ID_ORDER = ("PYSEC-", "GHSA-", "CVE-")


@dataclass(frozen=True)
class Finding:
    """One vulnerability of one package version, known under every id of its records."""

    name: str
    version: str
    ids: tuple[str, ...]  # the first is the one shown first (PYSEC, GHSA, CVE, other)
    summary: str
    fixed_in: tuple[str, ...]
    severity: str | None  # low, medium, high, critical: the highest of the labels and CVSS ratings
    score: float | None  # the highest CVSS base score of the records' vectors
    cvss: tuple[str, ...]  # CVSS vectors as the records give them
    records: tuple[str, ...]  # record files
    modified: str

    def to_json(self) -> JSONObject:
        return {"package": self.name, "version": self.version, "ids": list(self.ids),
                "summary": self.summary, "fixed-in": list(self.fixed_in), "severity": self.severity,
                "cvss-score": self.score,
                "cvss": list(self.cvss), "records": list(self.records), "modified": self.modified}


def _id_key(i: str) -> tuple[int, str]:
    for n, prefix in enumerate(_ID_ORDER):
        if i.startswith(prefix):
            return n, i
    return len(_ID_ORDER), i


def _summary(group: list[Advisory]) -> str:
    """A record's summary, else the first line of its details (200 characters at most)."""
    text = next((a.summary.strip() for a in group if a.summary.strip()), "") or \
        next((a.details.strip() for a in group if a.details.strip()), "")
    first = text.splitlines()[0].strip() if text else ""
    return first if len(first) <= 200 else first[:199] + "…"


def _groups(matched: list[Advisory]) -> list[list[Advisory]]:
    """Records linked by a shared id or alias, as connected groups (union-find over ids)."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for adv in matched:
        for alias in adv.aliases:
            parent[root(alias)] = root(adv.id)
    groups: dict[str, list[Advisory]] = {}
    for adv in matched:
        groups.setdefault(root(adv.id), []).append(adv)
    return list(groups.values())


def _matches(adv: Advisory, name: str, version: str, parsed: Version) -> tuple[bool, list[str]]:
    hit = False
    fixed: list[str] = []
    for a in adv.affected:
        if a.name != name or not a.includes(version, parsed):
            continue
        hit = True
        fixed.extend(f for r in a.ranges if r.includes(parsed) and (f := r.fixed_after(parsed)) is not None)
        if not any(r.includes(parsed) for r in a.ranges):  # listed in versions only
            fixed.extend(f for r in a.ranges if (f := r.fixed_after(parsed)) is not None)
    return hit, fixed


def cvss_rating(vector: str) -> tuple[float, str] | None:
    """(base score, severity) of a CVSS v2, v3.x or v4 vector by the ``cvss`` library; None if unreadable."""
    try:
        if vector.startswith("CVSS:4"):
            c4 = cvss.CVSS4(vector)
            score, name = float(c4.base_score), str(c4.severity)
        elif vector.startswith("CVSS:3"):
            c3 = cvss.CVSS3(vector)
            score, name = float(c3.scores()[0]), str(c3.severities()[0])
        else:  # CVSS v2 names no severity; NVD's v2 bands
            score = float(cvss.CVSS2(vector).scores()[0])
            name = "high" if score >= 7 else "medium" if score >= 4 else "low"
    except (cvss.CVSSError, ValueError, KeyError, IndexError, TypeError, ArithmeticError):
        return None
    return score, name.lower()


def _severity_of(group: list[Advisory], vectors: Iterable[str]) -> tuple[str | None, float | None]:
    """The highest severity the records give (their label or their CVSS vectors) and the top score."""
    found = [_LABELS[a.label.lower()] for a in group if a.label and a.label.lower() in _LABELS]
    scores = [r for r in map(cvss_rating, vectors) if r is not None]
    found += [name for _, name in scores if name in SEVERITIES]
    top = max((s for s, _ in scores), default=None)
    return (max(found, key=SEVERITIES.index) if found else None), top


def scan_findings(db: Path, packages: Iterable[tuple[str, str]]) -> tuple[Scan, list[Finding]]:
    """Read *db* for these (name, version) pairs: the scan and the alias-merged findings."""
    packages = list(packages)
    result = scan_database(db, frozenset(canonicalize_name(n) for n, _ in packages))
    return result, findings(result, packages)


def findings(scan: Scan, packages: Iterable[tuple[str, str]]) -> list[Finding]:
    """Every vulnerability of each (name, version), alias-merged, sorted by package, version and id."""
    by_name: dict[str, list[Advisory]] = {}
    for adv in scan.advisories:
        for n in adv.names():
            by_name.setdefault(n, []).append(adv)
    out = []
    for name, version in sorted(set(packages), key=lambda p: (canonicalize_name(p[0]), p[1])):
        try:
            parsed = Version(version)
        except InvalidVersion:
            continue
        matched: list[Advisory] = []
        fixed: dict[str, list[str]] = {}
        for adv in by_name.get(canonicalize_name(name), []):
            hit, fixes = _matches(adv, canonicalize_name(name), version, parsed)
            if hit and adv not in matched:
                matched.append(adv)
                fixed[adv.id] = fixes
        for group in _groups(matched):
            ids = sorted({i for a in group for i in (a.id, *a.aliases)}, key=_id_key)
            group.sort(key=lambda a: _id_key(a.id))
            fixes = sorted({f for a in group for f in fixed[a.id]}, key=Version)
            vectors = sorted({score for a in group for t, score in (*a.severity, *(
                s for x in a.affected for s in x.severity)) if t.startswith("CVSS")})
            severity, score = _severity_of(group, vectors)
            out.append(Finding(name, version, tuple(ids), _summary(group),
                               tuple(fixes), severity, score, tuple(vectors),
                               tuple(sorted(a.source for a in group)), max(a.modified for a in group)))
    return out


# --- the policy's [advisories] table ---------------------------------------------------------------

@dataclass(frozen=True)
class Ignore:
    """An advisory the policy accepts on purpose, with a reason and optionally until a date."""

    id: str
    reason: str
    until: dt.date | None


@dataclass(frozen=True)
class AdvisoryRules:
    """``[advisories]``: ``deny = "any"`` (or a severity floor) and the ignores."""

    deny: str  # "any" or one of SEVERITIES
    ignore: tuple[Ignore, ...] = ()


def parse_rules(data: Mapping[str, JSONValue], source: str) -> tuple[AdvisoryRules | None, list[str]]:
    """The ``[advisories]`` table of a policy file, and every problem with it (each located)."""
    problems = []
    for key in data:
        if key not in ("deny", "ignore"):
            problems.append(f"advisories.{key} is not a known key (deny, ignore)")
    deny = data.get("deny", "any")
    if not isinstance(deny, str) or deny not in ("any", *SEVERITIES):
        problems.append(f"advisories.deny must be \"any\" or a severity floor ({', '.join(SEVERITIES)})")
    ignores = []
    for where, entry in located_objects(
            data.get("ignore", []), "advisories.ignore", lambda w, what: problems.append(f"{w} {what}"),
            not_list="must be a list of tables {id, reason, until}",
            not_object='must be a table { id = "...", reason = "...", until = 2027-01-01 }'):
        extra = sorted(set(entry) - {"id", "reason", "until"})
        if extra:
            problems.append(f"{where}: {', '.join(extra)} is not a known key (id, reason, until)")
        rid, reason, until = entry.get("id"), entry.get("reason"), entry.get("until")
        if not isinstance(rid, str) or not rid.strip():
            problems.append(f"{where}.id must name the advisory (PYSEC-..., GHSA-..., CVE-...)")
        if not isinstance(reason, str) or not reason.strip():
            problems.append(f"{where}.reason must say why it is accepted")
        day = None
        if isinstance(until, dt.datetime):
            day = until.date()
        elif isinstance(until, dt.date):
            day = until
        elif isinstance(until, str):
            try:
                day = dt.date.fromisoformat(until)
            except ValueError:
                problems.append(f"{where}.until {until!r} is not a date (YYYY-MM-DD)")
        elif until is not None:
            problems.append(f"{where}.until must be a date (YYYY-MM-DD)")
        if isinstance(rid, str) and isinstance(reason, str):
            ignores.append(Ignore(rid.strip(), reason.strip(), day))
    if problems:
        return None, problems
    return AdvisoryRules(str(deny), tuple(ignores)), []


def _denied(rules: AdvisoryRules, f: Finding) -> bool:
    if rules.deny == "any":
        return True
    # A floor judges what the records say; one that gives no severity is denied (never silently passed).
    return f.severity is None or SEVERITIES.index(f.severity) >= SEVERITIES.index(rules.deny)


def judge(rules: AdvisoryRules, found: Iterable[Finding],
          today: dt.date | None = None) -> tuple[list[tuple[Finding, str, str]], list[str]]:
    """(violations as (finding, rule, detail), notes on ignores used) of the findings under *rules*."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    bad: list[tuple[Finding, str, str]] = []
    notes: list[str] = []
    for f in found:
        if not _denied(rules, f):
            continue
        ignore = next((i for i in rules.ignore if i.id in f.ids), None)
        fixed = f"; fixed in {', '.join(f.fixed_in)}" if f.fixed_in else "; no fixed version known"
        if ignore is None:
            bad.append((f, "advisory", f"{' / '.join(f.ids)}: {f.summary or 'known vulnerability'}{fixed}"))
        elif ignore.until is not None and ignore.until < today:
            bad.append((f, "advisory-ignore-expired",
                        f"{' / '.join(f.ids)}: the ignore of {ignore.id} expired on {ignore.until} "
                        f"({ignore.reason})"))
        else:
            until = f" until {ignore.until}" if ignore.until else ""
            notes.append(f"{f.name} {f.version}: {ignore.id} ignored{until}: {ignore.reason}")
    return bad, notes


# --- output -----------------------------------------------------------------------------------------

def render_table(found: list[Finding], width: int | None = 120) -> str:
    """PACKAGE VERSION IDS SEVERITY FIXED-IN SUMMARY; long cells cut to *width* (None: whole)."""
    head = ("PACKAGE", "VERSION", "IDS", "SEVERITY", "FIXED-IN", "SUMMARY")
    body = [(f.name, f.version, ",".join(f.ids),
             " ".join(x for x in (f.severity or "", "" if f.score is None else f"{f.score:g}") if x),
             ",".join(f.fixed_in) or "-", f.summary) for f in found]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    if width is not None:
        fixed = sum(widths[:-1]) + 2 * (len(head) - 1)
        widths[-1] = max(10, min(widths[-1], width - fixed))

    def cut(text: str, w: int) -> str:
        return text if width is None or len(text) <= w else text[:max(0, w - 1)] + "…"
    return "\n".join("  ".join(cut(c, w).ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in [head, *body])


def summary_lines(scan: Scan, found: list[Finding]) -> list[str]:
    """The database's identity and what was read from it: printed in every report."""
    c = scan.counts()
    lines = [scan.identity.line(),
             f"advisories: {c['examined']} records about these packages examined, {len(found)} "
             f"known vulnerabilities, {c['withdrawn']} withdrawn ignored, {c['malformed']} malformed skipped"]
    lines += [f"advisories: skipped malformed record {src}: {why}" for src, why in scan.malformed]
    return lines


def report_json(scan: Scan, found: list[Finding]) -> JSONObject:
    """The ``advisories`` part of the audit JSON."""
    return {"database": scan.identity.to_json(), **scan.counts(), "withdrawn-ids": list(scan.withdrawn),
            "malformed-records": [{"record": s, "problem": w} for s, w in scan.malformed],
            "findings": [f.to_json() for f in found]}


def cyclonedx_vulnerabilities(found: list[Finding], refs: Mapping[tuple[str, str], list[str]],
                              scan: Scan) -> list[JSONObject]:
    """CycloneDX 1.6 ``vulnerabilities``: one per finding, ``affects`` by the wheels' bom-refs."""
    out = []
    for f in found:
        primary, *others = f.ids
        v: JSONObject = {
            "bom-ref": f"vuln:{primary}:{canonicalize_name(f.name)}@{f.version}", "id": primary,
            "source": {"name": "OSV", "url": f"https://osv.dev/vulnerability/{primary}"},
            "references": [{"id": i, "source": {"name": "OSV", "url": f"https://osv.dev/vulnerability/{i}"}}
                           for i in others],
            "description": f.summary, "updated": f.modified,
            "affects": [{"ref": ref, "versions": [{"version": f.version, "status": "affected"}]}
                        for ref in refs.get((canonicalize_name(f.name), f.version), [])],
            "properties": [{"name": "wheelferry:advisories:database-sha256", "value": scan.identity.sha256}],
        }
        if f.fixed_in:
            v["recommendation"] = f"Upgrade {f.name} to {' or '.join(f.fixed_in)} or later"
        ratings: list[JSONObject] = []
        for s in f.cvss:
            rating: JSONObject = {"method": "CVSSv4" if s.startswith("CVSS:4") else "CVSSv31" if
                                      s.startswith("CVSS:3.1") else "CVSSv3" if s.startswith("CVSS:3") else
                                      "CVSSv2", "vector": s}
            scored = cvss_rating(s)
            if scored is not None:
                rating["score"] = scored[0]
                rating["severity"] = scored[1] if scored[1] in (*SEVERITIES, "none") else "unknown"
            ratings.append(rating)
        if f.severity:
            ratings.append({"severity": f.severity, "method": "other"})
        if ratings:
            v["ratings"] = ratings
        out.append(v)
    return out
