"""``audit``: what a verified bundle ships, wheel by wheel: licences, why, trims, and an SBOM.

Standard library and the shared metadata reader only.  Licences come from each wheel's METADATA in the order
PEP 639 gives them weight: ``License-Expression`` (an SPDX expression), else the
``License`` field (first line), else ``License ::`` classifiers, else UNKNOWN.
The CycloneDX 1.6 document is built here with ``json`` alone, and the bundle's
own ``sbom.cdx.json`` is checked against the wheels that are really inside.
"""

from __future__ import annotations

import contextlib
import json
import re
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
from wheelferry.offline.policy import PackageFacts, parse_spdx, spdx_ids
from wheelferry.offline.verify import VerifiedBundle, verify_bundle
from wheelferry.offline.volumes import joined_bundle

# SPDX ids that may appear as CycloneDX ``license.id`` (all on the SPDX list the 1.6 schema enumerates).
SPDX_IDS = {i.lower(): i for i in (
    "0BSD", "AFL-3.0", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-1.1", "Apache-2.0",
    "Artistic-2.0", "BlueOak-1.0.0", "BSD-2-Clause", "BSD-3-Clause", "BSL-1.0", "CC-BY-4.0",
    "CC0-1.0", "CDDL-1.0", "CNRI-Python", "EPL-1.0", "EPL-2.0", "EUPL-1.2", "GPL-2.0-only",
    "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "HPND", "ISC", "LGPL-2.0-only",
    "LGPL-2.0-or-later", "LGPL-2.1-only", "LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later",
    "MIT", "MIT-0", "MIT-CMU", "MPL-1.1", "MPL-2.0", "NCSA", "OpenSSL", "PSF-2.0", "Python-2.0",
    "Unicode-3.0", "Unicode-DFS-2016", "Unlicense", "UPL-1.0", "WTFPL", "X11", "Zlib", "ZPL-2.1",
)}
# Free-text License fields and trove classifiers that name exactly one SPDX licence.
_ALIASES = {"mit license": "MIT", "apache 2.0": "Apache-2.0", "apache-2": "Apache-2.0",
            "apache license 2.0": "Apache-2.0", "apache license, version 2.0": "Apache-2.0",
            "apache software license 2.0": "Apache-2.0", "bsd-3": "BSD-3-Clause",
            "mpl 2.0": "MPL-2.0", "psf": "PSF-2.0", "isc license": "ISC"}
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
    """A wheel's declared licence: what to show, its SPDX form if one is known, and where it came from."""

    text: str
    spdx: str | None
    source: str  # License-Expression | License | classifier | License-File | none
    names: tuple[str, ...] = ()  # classifier names, for an SBOM without an SPDX form


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
                "license-source": self.licence.source, "requires-python": self.requires_python,
                "tags": self.tags, "targets": list(self.targets), "required-by": list(self.required_by),
                "trimmed": list(self.trimmed), "upload-time": self.upload_time,
                "dependencies": list(self.dependencies)}

    def facts(self) -> PackageFacts:
        return PackageFacts(self.name, self.version, self.file, self.licence.spdx, self.licence.text,
                            self.upload_time)


def _known_spdx(text: str) -> str | None:
    """*text* as an SPDX expression made only of known ids (canonical case), else None."""
    alias = _ALIASES.get(text.strip().lower())
    if alias:
        return alias
    try:
        tree = parse_spdx(text)
    except ValueError:
        return None
    if not all(i.lower() in SPDX_IDS for i in spdx_ids(tree)):
        return None
    return re.sub(r"[A-Za-z0-9.+:-]+", lambda m: SPDX_IDS.get(m.group(0).lower(), m.group(0)), text.strip())


def licence_of(metadata: bytes) -> Licence:
    """The declared licence in a METADATA file (PEP 639 order of precedence)."""
    meta = read_core_metadata(metadata)
    expression = meta.license_expression or ""
    if expression:
        try:
            parse_spdx(expression)
            return Licence(expression, _known_spdx(expression) or expression, "License-Expression")
        except ValueError:
            return Licence(expression, None, "License-Expression")
    text = meta.license or ""
    first = text.splitlines()[0].strip() if text else ""
    if first and first.upper() != "UNKNOWN":
        return Licence(first[:200], _known_spdx(first) if "\n" not in text else None, "License")
    names = sorted({c.split("::")[-1].strip() for c in meta.licence_classifiers if c.count("::") >= 2})
    if names:
        ids = [_CLASSIFIERS.get(n) for n in names]
        # Several classifiers say nothing of OR or AND: judge the stricter AND.
        spdx = " AND ".join(i for i in ids if i) if all(ids) else None
        return Licence(", ".join(names), spdx, "classifier", tuple(names))
    return Licence("UNKNOWN", None, "none")


# Signatures of common licence texts, for wheels whose METADATA names only a License-File.
_LICENCE_TEXTS = (
    ("Apache-2.0", ("apache license", "version 2.0")),
    ("MPL-2.0", ("mozilla public license", "2.0")),
    ("MIT", ("permission is hereby granted, free of charge",)),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms", "neither the name")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",)),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software",)),
    ("PSF-2.0", ("python software foundation license",)),
)


def licence_from_files(wheel: Path, metadata: bytes) -> Licence | None:
    """The licence of a wheel that declares only ``License-File``: recognised from that file's text."""
    declared = list(read_core_metadata(metadata).license_files)
    if not declared:
        return None
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        for path in declared:
            # PEP 639 puts them under .dist-info/licenses/; older tools straight into .dist-info/.
            member = next((n for n in names if n.count(".dist-info/") == 1 and n.split(".dist-info/", 1)[1]
                           in (f"licenses/{path}", path)), None)
            if member is None:
                continue
            text = " ".join(zf.read(member)[:20000].decode("utf-8", errors="replace").lower().split())
            for spdx, needles in _LICENCE_TEXTS:
                if all(n in text for n in needles):
                    return Licence(f"{spdx} (recognised in {path})", spdx, "License-File")
    return None


def _licence(wheel: Path, metadata: bytes) -> Licence:
    declared = licence_of(metadata)
    if declared.source != "none":
        return declared
    return licence_from_files(wheel, metadata) or declared


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
            size=bundle.files[f"{WHEELS_DIR}/{filename}"][1], licence=_licence(extracted / WHEELS_DIR / filename,
                                                                                  metadata),
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
    if lic.spdx and lic.spdx.lower() in SPDX_IDS:
        return [{"license": {"id": SPDX_IDS[lic.spdx.lower()]}}]
    if lic.spdx:
        # CycloneDX 1.6: an expression stands alone in the licenses array.
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


def render_table(rows: Iterable[WheelRow], width: int = 120) -> str:
    """A fixed-width table that fits *width* columns; long cells end in an ellipsis."""
    head = ("NAME", "VERSION", "LICENCE", "SIZE", "PYTHON", "TAGS", "TARGETS", "WHY", "TRIMMED", "SHA256")
    body = []
    for r in rows:
        why = sorted({e["parent"] or "(spec)" for e in r.required_by})
        trimmed = sorted({str(e["requirement"]) for e in r.trimmed})
        body.append((r.name, r.version, r.licence.text, str(r.size), r.requires_python or "",
                     r.tags, ",".join(r.targets), ",".join(why), ",".join(trimmed), r.sha256[:12]))
    widths = [min(40, max(len(row[i]) for row in [head, *body])) for i in range(len(head))]
    while sum(widths) + 2 * (len(widths) - 1) > width and max(widths) > 3:
        widths[widths.index(max(widths))] -= 1
    lines = ["  ".join(_cut(c, w).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, *body]]
    return "\n".join(lines)


def sbom_bytes(extracted: Path) -> bytes | None:
    """The bundle's own SBOM, or None if it ships none."""
    path = extracted / SBOM_NAME
    return path.read_bytes() if path.is_file() else None
