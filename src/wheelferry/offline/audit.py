"""``audit``: what a verified bundle ships, wheel by wheel: licences, why, trims, and an SBOM.

Standard library, the vendored packaging and the shared metadata reader only.  Licences
come from each wheel's METADATA and licence files in a fixed order (see :func:`licence_of`
and :func:`licence_from_files`), each result carrying its evidence.
The CycloneDX 1.6 document is built here with ``json`` alone, and the bundle's
own ``sbom.cdx.json`` is checked against the wheels that are really inside.
"""

from __future__ import annotations

import contextlib
import functools
import json
import pkgutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from wheelferry import __version__
from wheelferry.coremetadata import read_core_metadata
from wheelferry.errors import VerificationError
from wheelferry.manifest import SBOM_NAME, WHEELS_DIR
from wheelferry.offline.policy import PackageFacts, canonical_spdx
from wheelferry.offline.verify import VerifiedBundle, verify_bundle
from wheelferry.offline.volumes import joined_bundle

# Trove classifiers that name exactly one SPDX licence ("BSD License" does not: the licence file decides).
_CLASSIFIERS = {
    "MIT License": "MIT", "MIT No Attribution License (MIT-0)": "MIT-0", "ISC License (ISCL)": "ISC",
    "Apache Software License": "Apache-2.0", "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "The Unlicense (Unlicense)": "Unlicense", "Zero-Clause BSD (0BSD)": "0BSD",
    "zlib/libpng License": "Zlib", "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "Python Software Foundation License": "PSF-2.0", "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "European Union Public Licence 1.2 (EUPL 1.2)": "EUPL-1.2",
    "Universal Permissive License (UPL)": "UPL-1.0",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}
_SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:wheelferry:audit")


@dataclass(frozen=True)
class Licence:
    """A wheel's licence: what to show, its SPDX form if one is known, where it came from and why."""

    text: str
    spdx: str | None
    source: str  # License-Expression | License | classifier | License-name | notice | License-File | none
    names: tuple[str, ...] = ()  # classifier names, for an SBOM without an SPDX form
    evidence: str = ""  # the field, classifier, spelling or file that decided it

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

    def to_json(self) -> dict[str, Any]:
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


def _normal(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


@functools.lru_cache(maxsize=1)
def licence_names() -> dict[str, dict[str, str]]:
    """The data file of common free-text licence spellings (lower-cased key -> spdx, source)."""
    raw = pkgutil.get_data("wheelferry.offline", "licence-names.json")
    data: dict[str, Any] = json.loads(raw or b"{}")
    return {_normal(k): v for k, v in data.items() if not k.startswith("_")}


def _spdx(text: str) -> str | None:
    try:
        return canonical_spdx(text)
    except ValueError:
        return None


_VENDORS = {"nvidia": "NVIDIA"}  # a proprietary notice by one of these -> LicenseRef-<Vendor>-Proprietary


def _proprietary(meta: Any, first: str) -> Licence | None:
    said = "proprietary" in first.lower() or any(c.endswith(":: Other/Proprietary License")
                                                 for c in meta.licence_classifiers)
    if not said:
        return None
    who = " ".join(x or "" for x in (meta.author, meta.author_email, meta.maintainer, meta.maintainer_email,
                                     first)).lower()
    vendor = next((v for k, v in _VENDORS.items() if k in who), None)
    ref = f"LicenseRef-{vendor}-Proprietary" if vendor else "LicenseRef-Proprietary"
    by = f" by {vendor}" if vendor else ""
    return Licence(first or "Other/Proprietary License", ref, "notice",
                   evidence=f"proprietary notice{by} ({'License: ' + first if first else 'classifier'})")


def licence_of(metadata: bytes) -> Licence:
    """The declared licence in a METADATA file, without reading the licence files.

    In this order: License-Expression; a License field that is an SPDX expression;
    classifiers that each name one SPDX licence; a known free-text spelling
    (``licence-names.json``); a proprietary notice (a ``LicenseRef-`` id); a License
    field holding a licence's whole text.  Otherwise source ``none``.
    """
    meta = read_core_metadata(metadata)
    expression = (meta.license_expression or "").strip()
    if expression:
        spdx = _spdx(expression)
        if spdx:
            return Licence(expression, spdx, "License-Expression", evidence=f"License-Expression: {expression}")
    text = meta.license or ""
    first = text.splitlines()[0].strip() if text.strip() else ""
    if first.upper() == "UNKNOWN":
        first = ""
    single = "\n" not in text.strip()
    if first and single and (spdx := _spdx(first)):
        return Licence(first, spdx, "License", evidence=f"License: {first}")
    names = sorted({c.split("::")[-1].strip() for c in meta.licence_classifiers if c.count("::") >= 2})
    ids = [_CLASSIFIERS.get(n) for n in names]
    if names and all(ids):
        # Several classifiers say nothing of OR or AND: judge the stricter AND.
        spdx = " AND ".join(sorted({i for i in ids if i}))
        return Licence(", ".join(names), spdx, "classifier", tuple(names),
                       evidence="; ".join(f"Classifier: License :: {n}" for n in names))
    known = licence_names().get(_normal(first)) if first and single else None
    if known:
        return Licence(first, known["spdx"], "License-name",
                       evidence=f"License: {first} (a known spelling, seen in {known['source']})")
    notice = _proprietary(meta, first[:200])
    if notice:
        return notice
    if first and not single:
        found = licence_in_text(text)
        if found:
            return Licence(f"{found} (recognised in the License field)", found, "License",
                           evidence=f"License field: the text of {found}")
    if first:
        return Licence(first[:200], None, "License", evidence=f"License: {first[:200]} (no SPDX id)")
    if names:
        return Licence(", ".join(names), None, "classifier", tuple(names),
                       evidence="; ".join(f"Classifier: License :: {n}" for n in names) + " (no single SPDX id)")
    return Licence("UNKNOWN", None, "none")


# Phrases of the SPDX licence texts that tell them apart, each list in its text's own order.
# An earlier licence in a file wins: a project's own licence comes before the bundled ones.
_LICENCE_TEXTS = (
    ("Apache-2.0", ("apache license", "version 2.0", "terms and conditions for use, reproduction")),
    ("Apache-2.0", ("licensed under the apache license, version 2.0",)),  # the licence's own notice
    ("MPL-2.0", ("mozilla public license", "version 2.0")),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms",
                      "neither the name", "may be used to endorse or promote products")),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms",
                      "names of its contributors may not be used to endorse")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",
                      "redistributions in binary form must reproduce")),
    ("MIT", ("permission is hereby granted, free of charge", "the above copyright notice and this permission "
             "notice shall be included")),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any purpose",)),
    ("PSF-2.0", ("python software foundation license version 2",)),
    ("Zlib", ("this software is provided 'as-is', without any express or implied",
              "altered source versions must be plainly marked")),
    ("BSL-1.0", ("boost software license - version 1.0",)),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",)),
    ("LicenseRef-NVIDIA-Proprietary", ("nvidia", "license agreement", "proprietary")),
)


def licence_in_text(text: str) -> str | None:
    """The SPDX id of the first licence whose distinguishing phrases all appear in *text*."""
    flat = " ".join(text.lower().replace("\u2019", "'").split())
    best: tuple[int, str] | None = None
    for spdx, needles in _LICENCE_TEXTS:
        at = [flat.find(n) for n in needles]
        if all(i >= 0 for i in at):
            if spdx == "BSD-2-Clause" and "neither the name" in flat[at[0]:at[0] + 2000]:
                continue
            if best is None or at[0] < best[0]:
                best = (at[0], spdx)
    return best[1] if best else None


def _licence_members(names: list[str], declared: list[str]) -> list[str]:
    if declared:
        # PEP 639 puts them under .dist-info/licenses/; older tools straight into .dist-info/.
        found = [next((n for n in names if n.count(".dist-info/") == 1 and n.split(".dist-info/", 1)[1]
                       in (f"licenses/{path}", path)), None) for path in declared]
        return [n for n in found if n]
    return sorted(n for n in names if n.count(".dist-info/") == 1 and
                  n.rsplit("/", 1)[-1].upper().startswith(("LICEN", "COPYING")))


def licence_from_files(wheel: Path, metadata: bytes) -> Licence | None:
    """The licence recognised in the wheel's licence files (declared by ``License-File``, or found in .dist-info)."""
    declared = list(read_core_metadata(metadata).license_files)
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member in _licence_members(zf.namelist(), declared):
                found = licence_in_text(zf.read(member)[:200000].decode("utf-8", errors="replace"))
                if found:
                    path = member.split(".dist-info/", 1)[1]
                    return Licence(f"{found} (recognised in {path})", found, "License-File",
                                   evidence=f"{path}: the text of {found}")
    except (zipfile.BadZipFile, OSError):
        return None
    return None


def licence_of_wheel(wheel: Path, metadata: bytes) -> Licence:
    """The whole chain: :func:`licence_of`, then the licence files if that found no SPDX id."""
    declared = licence_of(metadata)
    if declared.spdx:
        return declared
    return licence_from_files(wheel, metadata) or declared


def wheel_facts(lock: Any, paths: dict[str, Path], metadata: dict[str, bytes]) -> list[PackageFacts]:
    """What the policy judges about each fetched wheel of *lock*, licences included (``build --policy``)."""
    out: dict[str, PackageFacts] = {}
    for target in lock.targets:
        for p in target.packages:
            if p.wheel in out or p.wheel not in paths:
                continue
            lic = licence_of_wheel(paths[p.wheel], metadata.get(p.wheel, b""))
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
                   work_parent: Path | None = None) -> Iterator[VerifiedBundle]:
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
                            extract_to=Path(work) / "bundle" if extract else None)


def _tags(filename: str) -> str:
    parts = filename[:-len(".whl")].split("-")
    return "-".join(parts[-3:]) if len(parts) >= 5 else ""


def audit_rows(bundle: VerifiedBundle, extracted: Path) -> list[WheelRow]:
    """One row per wheel of a verified, extracted bundle."""
    lock = bundle.lock
    used: dict[str, list[Any]] = {}
    for target in lock.targets:
        for p in target.packages:
            used.setdefault(p.wheel, []).append((target, p))
    rows = []
    for filename in sorted(lock.wheels):
        wheel = lock.wheels[filename]
        metadata = read_metadata(extracted / WHEELS_DIR / filename)
        users = used.get(filename, [])
        name, version = (users[0][1].name, users[0][1].version) if users else (filename.split("-")[0], "")
        why = tuple({"target": t.id, "parent": e.parent, "requirement": e.requirement}
                    for t, p in users for e in p.required_by)
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


def trimmed_report(bundle: VerifiedBundle) -> list[dict[str, Any]]:
    """Per target: every edge that was not followed and every package an exclusion removed."""
    return [{"target": t.id, "edges": [e.to_json() for e in t.trimmed],
             "removed": [r.to_json() for r in t.removed]}
            for t in bundle.lock.targets if t.trimmed or t.removed]


def check_sbom(sbom: bytes | None, rows: Iterable[WheelRow]) -> list[str]:
    """Where the bundle's own SBOM disagrees with the wheels inside it (empty when it agrees)."""
    if sbom is None:
        return []
    try:
        doc = json.loads(sbom)
        components = doc.get("components", [])
        assert isinstance(components, list)
    except (ValueError, AttributeError, AssertionError):
        return [f"{SBOM_NAME} is not a CycloneDX JSON document"]
    listed: dict[str, set[str]] = {}
    for c in components:
        ref = str(c.get("purl") or c.get("bom-ref") or "")
        files = parse_qs(urlsplit(ref).query).get("file_name", [])
        hashes = {h.get("content") for h in c.get("hashes", []) if h.get("alg") == "SHA-256"}
        for f in files or [f"{c.get('name')}=={c.get('version')}"]:
            listed.setdefault(f, set()).update(h for h in hashes if isinstance(h, str))
    problems = []
    wheels = {r.file: r for r in rows}
    for f, r in sorted(wheels.items()):
        if f not in listed:
            problems.append(f"{f} is in the bundle but not in {SBOM_NAME}")
        elif r.sha256 not in listed[f]:
            problems.append(f"{f} has sha256 {r.sha256[:12]}… but {SBOM_NAME} records "
                            f"{', '.join(sorted(h[:12] + '…' for h in listed[f])) or 'no SHA-256'}")
    problems += [f"{SBOM_NAME} lists {f}, which is not in the bundle" for f in sorted(set(listed) - set(wheels))]
    return problems


def purl(name: str, version: str) -> str:
    """``pkg:pypi/<name>@<version>`` (purl spec: pypi names lower-case with ``-``)."""
    return f"pkg:pypi/{quote(name.lower().replace('_', '-'))}@{quote(version, safe='.!')}"


def _licences(lic: Licence) -> list[dict[str, Any]]:
    if lic.spdx:
        # CycloneDX 1.6: an SPDX expression (a single id or LicenseRef- too) stands alone in the array.
        return [{"expression": lic.spdx}]
    if lic.names:
        return [{"license": {"name": n}} for n in lic.names]
    return [] if lic.source == "none" else [{"license": {"name": lic.text}}]


def cyclonedx(bundle: VerifiedBundle, rows: Iterable[WheelRow]) -> dict[str, Any]:
    """A CycloneDX 1.6 JSON SBOM of the wheels actually in the bundle (stdlib only)."""
    rows = list(rows)
    ref = {r.file: f"{purl(r.name, r.version)}?file_name={quote(r.file)}" for r in rows}
    root = f"wheelferry-bundle:{bundle.manifest.name}"
    components = []
    for r in rows:
        comp: dict[str, Any] = {
            "type": "library", "bom-ref": ref[r.file], "name": r.name, "version": r.version,
            "purl": purl(r.name, r.version), "hashes": [{"alg": "SHA-256", "content": r.sha256}],
            "properties": [{"name": "wheelferry:file", "value": r.file}]
            + [{"name": "wheelferry:target", "value": t} for t in r.targets]}
        if _licences(r.licence):
            comp["licenses"] = _licences(r.licence)
        components.append(comp)
    by_target_name = {(t.id, p.name): p.wheel for t in bundle.lock.targets for p in t.packages}
    deps: dict[str, set[str]] = {r.file: set() for r in rows}
    direct: set[str] = set()
    for t in bundle.lock.targets:
        for p in t.packages:
            deps[p.wheel].update(by_target_name[(t.id, d)] for d in p.dependencies
                                 if (t.id, d) in by_target_name)
            if any(e.parent is None for e in p.required_by):
                direct.add(p.wheel)
    dependencies = [{"ref": root, "dependsOn": sorted(ref[f] for f in direct if f in ref)}]
    dependencies += [{"ref": ref[f], "dependsOn": sorted(ref[d] for d in ds if d in ref)}
                     for f, ds in sorted(deps.items())]
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX", "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid5(_SERIAL_NAMESPACE, bundle.manifest_sha256)}",
        "version": 1,
        "metadata": {
            "timestamp": bundle.manifest.created,
            "tools": {"components": [{"type": "application", "name": "wheelferry",
                                      "version": __version__}]},
            "component": {"type": "application", "bom-ref": root, "name": bundle.manifest.name,
                          "version": str(bundle.manifest.sequence)},
        },
        "components": components,
        "dependencies": dependencies,
    }


def audit_json(bundle: VerifiedBundle, rows: Iterable[WheelRow]) -> dict[str, Any]:
    """The complete audit as JSON-ready data."""
    rows = list(rows)
    return {"bundle": bundle.manifest.name, "sequence": bundle.manifest.sequence,
            "created": bundle.manifest.created, "expires": bundle.manifest.expires,
            "targets": [dict(t) for t in bundle.manifest.targets],
            "signature": bundle.signature.to_json() if bundle.signature else None,
            "wheels": [r.to_json() for r in rows], "trimmed": trimmed_report(bundle),
            "total-size": sum(r.size for r in rows)}


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


def trim_lines(trimmed: list[dict[str, Any]], verbose: bool = False) -> list[str]:
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
