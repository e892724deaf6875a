"""``audit``: what a verified bundle ships, wheel by wheel: licences, why, trims, and an SBOM.

Standard library, the vendored packaging and the shared metadata reader only.  Licences
come from :mod:`wheelferry.offline.licences` (each with its evidence); the CycloneDX 1.6
document from :mod:`wheelferry.offline.cyclonedx`, the writer ``build`` uses for the
bundle's own ``sbom.cdx.json``, which is checked against the wheels really inside.
"""

from __future__ import annotations

import contextlib
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from wheelferry.coremetadata import read_core_metadata
from wheelferry.errors import VerificationError
from wheelferry.jsontypes import JSONObject
from wheelferry.lockfile import Lock, LockedPackage, LockedTarget
from wheelferry.manifest import SBOM_NAME, WHEELS_DIR
from wheelferry.offline.advisories import (
    Finding,
    cyclonedx_vulnerabilities,
    report_json,
    scan_findings,
)
from wheelferry.offline.cyclonedx import bom
from wheelferry.offline.cyclonedx import check_sbom as cyclonedx_check
from wheelferry.offline.licences import Licence, licence_of_wheel
from wheelferry.offline.osv import Scan
from wheelferry.offline.policy import PackageFacts, Policy, PolicyReport, policy_report
from wheelferry.offline.verify import VerifiedBundle, verify_bundle
from wheelferry.offline.volumes import joined_bundle


@dataclass(frozen=True)
class WheelRow:
    """One wheel of the bundle, everything an auditor asks about it."""

    name: str
    version: str
    file: str
    sha256: str
    size: int
    licence: Licence
    requires_python: str | None
    tags: str
    targets: tuple[str, ...]
    required_by: tuple[dict[str, str | None], ...]  # {"target", "parent", "requirement"}
    trimmed: tuple[dict[str, str | None], ...]  # edges of this package that were not followed
    upload_time: str | None
    dependencies: tuple[str, ...]

    def to_json(self) -> JSONObject:
        return {"name": self.name, "version": self.version, "file": self.file, "sha256": self.sha256,
                "size": self.size, "license": self.licence.text, "license-spdx": self.licence.spdx,
                "license-source": self.licence.source,
                "license-evidence": self.licence.evidence, "requires-python": self.requires_python,
                "tags": self.tags, "targets": list(self.targets), "required-by": list(self.required_by),
                "trimmed": list(self.trimmed), "upload-time": self.upload_time,
                "dependencies": list(self.dependencies)}

    def facts(self) -> PackageFacts:
        return PackageFacts(self.name, self.version, self.file, self.licence.spdx, self.licence.text,
                            self.upload_time, self.licence.evidence)


def wheel_facts(lock: Lock, licences: Mapping[str, Licence]) -> list[PackageFacts]:
    """What the policy judges about each fetched wheel of *lock*, licences included (``build --policy``)."""
    out: dict[str, PackageFacts] = {}
    for target in lock.targets:
        for p in target.packages:
            if p.wheel in out or p.wheel not in licences:
                continue
            lic = licences[p.wheel]
            out[p.wheel] = PackageFacts(p.name, p.version, p.wheel, lic.spdx, lic.text,
                                        lock.wheels[p.wheel].upload_time, lic.evidence)
    return list(out.values())


def read_metadata(wheel: Path) -> bytes:
    """The ``*.dist-info/METADATA`` member of a wheel (b"" if it has none)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.count("/") == 1 and name.endswith(".dist-info/METADATA"):
                    return zf.read(name)
    except zipfile.BadZipFile:
        raise VerificationError(f"{wheel.name} is not a readable wheel (zip)") from None
    return b""


def requires_python_of(metadata: bytes) -> str | None:
    """The Requires-Python field of a METADATA file, whitespace normalised."""
    return read_core_metadata(metadata).requires_python


@contextlib.contextmanager
def checked_bundle(path: Path, *, keyring: Path | None, trusted: Iterable[str],
                   allow_unsigned: bool = False, extract: bool = False,
                   state_dir: Path | None = None, force_older: bool = False,
                   work_parent: Path | None = None, threshold: int = 1,
                   manifest_approvals: bool = True) -> Iterator[VerifiedBundle]:
    """Verify *path* (a tar or split volumes) exactly as ``verify`` does, extracting privately if asked.

    Without *state_dir* the replay check is skipped: it guards installs, and an
    auditor must be able to read an older bundle (``diff`` always does).  The
    private work directory goes under *work_parent* (default: the temp dir).
    """
    trusted = list(trusted)
    with joined_bundle(path, keyring=keyring, trusted=trusted, allow_unsigned=allow_unsigned) as tar, \
            tempfile.TemporaryDirectory(prefix=".wheelferry-work-", dir=work_parent) as work:
        yield verify_bundle(tar, keyring=keyring, trusted=trusted, allow_unsigned=allow_unsigned,
                            state_dir=state_dir or Path(work) / "state", force_older=force_older,
                            extract_to=Path(work) / "bundle" if extract else None, threshold=threshold,
                            manifest_approvals=manifest_approvals)


def _project(filename: str) -> str:
    """The project a wheel file name names, else the name as it is (a lock edited by hand)."""
    try:
        return str(parse_wheel_filename(filename)[0])
    except InvalidWheelFilename:
        return filename


def _tags(filename: str) -> str:
    """The ``interpreter-abi-platform`` triple of a wheel file name as written ("" if it is not one)."""
    try:
        parse_wheel_filename(filename)  # name, version and build are packaging's to check
    except InvalidWheelFilename:
        return ""
    return "-".join(filename[:-len(".whl")].split("-")[-3:])


def audit_rows(bundle: VerifiedBundle, extracted: Path) -> list[WheelRow]:
    """One row per wheel of a verified, extracted bundle."""
    lock = bundle.lock
    used: dict[str, list[tuple[LockedTarget, LockedPackage]]] = {}
    for target in lock.targets:
        for p in target.packages:
            used.setdefault(p.wheel, []).append((target, p))
    rows = []
    for filename in sorted(lock.wheels):
        wheel = lock.wheels[filename]
        metadata = read_metadata(extracted / WHEELS_DIR / filename)
        users = used.get(filename, [])
        name, version = (users[0][1].name, users[0][1].version) if users else (_project(filename), "")
        why = tuple({"target": t.id, "parent": e.parent, "requirement": e.requirement}
                    for t, p in users for e in p.required_by)
        trimmed: tuple[dict[str, str | None], ...]
        trimmed = tuple({"target": t.id, "requirement": e.requirement, "reason": e.reason}
                        for t, p in users for e in t.trimmed if e.parent == p.name)
        rows.append(WheelRow(
            name=name, version=version, file=filename, sha256=wheel.sha256,
            size=bundle.files[f"{WHEELS_DIR}/{filename}"][1],
            licence=licence_of_wheel(extracted / WHEELS_DIR / filename, metadata),
            requires_python=requires_python_of(metadata) or wheel.requires_python, tags=_tags(filename),
            targets=tuple(sorted({t.id for t, _ in users})), required_by=why, trimmed=trimmed,
            upload_time=wheel.upload_time,
            dependencies=tuple(sorted({d for _, p in users for d in p.dependencies}))))
    return rows


def trimmed_report(bundle: VerifiedBundle) -> list[JSONObject]:
    """Per target: every edge that was not followed and every package an exclusion removed."""
    return [{"target": t.id, "edges": [e.to_json() for e in t.trimmed],
             "removed": [r.to_json() for r in t.removed]}
            for t in bundle.lock.targets if t.trimmed or t.removed]


def check_sbom(sbom: bytes | None, rows: Iterable[WheelRow]) -> list[str]:
    """Where the bundle's own SBOM disagrees with the wheels inside it, licences included (empty: agrees)."""
    return cyclonedx_check(sbom, [(r.file, r.sha256, r.licence) for r in rows])


def cyclonedx(bundle: VerifiedBundle, rows: Iterable[WheelRow]) -> JSONObject:
    """The CycloneDX 1.6 SBOM of the bundle: the same writer, lock and licences as its own ``sbom.cdx.json``."""
    m = bundle.manifest
    return bom(bundle.lock, {r.file: r.licence for r in rows}, name=m.name, sequence=m.sequence,
               created=m.created)


def audit_json(bundle: VerifiedBundle, rows: Iterable[WheelRow]) -> JSONObject:
    """The complete audit as JSON-ready data."""
    rows = list(rows)
    return {"bundle": bundle.manifest.name, "sequence": bundle.manifest.sequence,
            "created": bundle.manifest.created, "expires": bundle.manifest.expires,
            "manifest-sha256": bundle.manifest_sha256,
            "targets": [dict(t) for t in bundle.manifest.targets],
            "signature": bundle.signature.to_json() if bundle.signature else None,
            **(bundle.signers.to_json() if bundle.signers else {}),
            "wheels": [r.to_json() for r in rows], "trimmed": trimmed_report(bundle),
            "total-size": sum(r.size for r in rows)}


@dataclass(frozen=True)
class AuditReport:
    """What ``audit`` found in one verified bundle: the audit JSON and the parts it was made of."""

    result: JSONObject  # the audit JSON; with "cyclonedx" (vulnerabilities included) when asked
    scan: Scan | None  # the advisory database read, when one was given
    found: list[Finding]
    policy: PolicyReport | None


def audit_report(bundle: VerifiedBundle, rows: list[WheelRow], sbom_problems: list[str], *,
                 advisories: Path | None, policy: Policy | None, with_cyclonedx: bool) -> AuditReport:
    """The audit JSON of *rows*, the advisory scan of *advisories*, *policy*'s verdict on the wheels
    and (*with_cyclonedx*) the CycloneDX document with the findings as its vulnerabilities."""
    result = audit_json(bundle, rows)
    scan, found = scan_findings(advisories, [(r.name, r.version) for r in rows]) if advisories else (None, [])
    if scan is not None:
        result["advisories"] = report_json(scan, found)
    result["sbom-problems"] = sbom_problems
    report = None
    if policy is not None:
        report = policy_report(policy, [r.facts() for r in rows], found)
        result["policy"] = report.to_json()
    if with_cyclonedx:
        doc = result["cyclonedx"] = cyclonedx(bundle, rows)
        if scan is not None:
            refs: dict[tuple[str, str], list[str]] = {}
            for c in doc["components"]:
                refs.setdefault((canonicalize_name(c["name"]), c["version"]), []).append(c["bom-ref"])
            doc["vulnerabilities"] = cyclonedx_vulnerabilities(found, refs, scan)
            doc["metadata"]["properties"] += [
                {"name": f"wheelferry:advisories:{k}", "value": str(v)}
                for k, v in scan.identity.to_json().items() if v is not None]
    return AuditReport(result, scan, found, report)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(0, width - 1)] + "…"


def render_table(rows: Iterable[WheelRow], width: int | None = 120) -> str:
    """A table that fits *width* columns (long cells end in an ellipsis); ``None``: every cell whole."""
    head = ("NAME", "VERSION", "LICENCE", "SIZE", "PYTHON", "TAGS", "TARGETS", "WHY", "TRIMMED", "SHA256")
    body = []
    for r in rows:
        why = sorted({e["parent"] or "(spec)" for e in r.required_by})
        trimmed = sorted({str(e["requirement"]) for e in r.trimmed})
        body.append((r.name, r.version, r.licence.text, str(r.size), r.requires_python or "",
                     r.tags, ",".join(r.targets), ",".join(why), ",".join(trimmed), r.sha256[:12]))
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    if width is None:
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, *body])
    widths = [min(40, w) for w in widths]
    while sum(widths) + 2 * (len(widths) - 1) > width and max(widths) > 3:
        widths[widths.index(max(widths))] -= 1
    lines = ["  ".join(_cut(c, w).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, *body]]
    return "\n".join(lines)


def trim_lines(trimmed: list[JSONObject], verbose: bool = False) -> list[str]:
    """The trims of a report: every exclusion; optional extras one line per target unless *verbose*."""
    lines = []
    for t in trimmed:
        extras = [e for e in t["edges"] if e["reason"] == "extra"]
        for e in t["edges"]:
            if verbose or e["reason"] != "extra":
                lines.append(f"trimmed for {t['target']}: {e['parent'] or '(spec)'} -> {e['requirement']} "
                             f"({e['reason']})")
        for r in t["removed"]:
            by = ", ".join(r.get("declared-by") or [])
            lines.append(f"removed for {t['target']}: {r['name']} {r.get('version') or ''}".rstrip()
                         + (f" (excluded; required by {by})" if by else " (excluded)"))
        if extras and not verbose:
            parents = len({e["parent"] for e in extras})
            lines.append(f"trimmed for {t['target']}: {len(extras)} requirement(s) of optional extras of "
                         f"{parents} package(s) not followed (--verbose lists them)")
    return lines


def sbom_bytes(extracted: Path) -> bytes | None:
    """The bundle's own SBOM, or None if it ships none."""
    path = extracted / SBOM_NAME
    return path.read_bytes() if path.is_file() else None
