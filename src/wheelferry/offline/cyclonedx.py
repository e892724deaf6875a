"""The one CycloneDX 1.6 writer (``json`` alone) and the cross-check of a bundle's own SBOM.

``build`` writes the bundle's ``sbom.cdx.json`` with :func:`bom` and ``audit --format
cyclonedx`` writes its report with the same function from the same lock and the same
licence resolution (:mod:`wheelferry.offline.licences`), so the two documents of one
bundle are equal.  Nothing comes from the clock or chance: the serial number is a UUID5
of the lock, the bundle's name and sequence, and the timestamp is the bundle's ``created``.
Each licence carries its evidence as two component properties
(``wheelferry:license-source``, ``wheelferry:license-evidence``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, quote, urlsplit

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from wheelferry import __version__
from wheelferry.jsontypes import JSONObject, JSONValue
from wheelferry.lockfile import Lock
from wheelferry.manifest import SBOM_NAME
from wheelferry.offline.licences import Licence

_SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:wheelferry:sbom")
# Written into metadata.properties: an SBOM that carries it has its licences cross-checked.
WRITER_PROPERTY = "wheelferry:sbom-writer"
WRITER_VERSION = "2"
# Results the package itself declares; the others are this tool's conclusion from its text.
_DECLARED_SOURCES = {"License-Expression", "License", "classifier"}


def purl(name: str, version: str, filename: str | None = None) -> str:
    """``pkg:pypi/<name>@<version>[?file_name=<wheel>]`` (purl spec: pypi names lower-case with ``-``)."""
    base = f"pkg:pypi/{quote(name.lower().replace('_', '-'))}@{quote(version, safe='.!+')}"
    return f"{base}?file_name={quote(filename)}" if filename else base


def licence_choices(lic: Licence) -> list[JSONObject]:
    """A licence as CycloneDX 1.6 ``licenses`` entries (empty when nothing is known)."""
    ack = "declared" if lic.source in _DECLARED_SOURCES else "concluded"
    if lic.spdx:
        # An SPDX expression (a single id or a LicenseRef- too) stands alone in the array.
        return [{"expression": lic.spdx, "acknowledgement": ack}]
    if lic.names:
        return [{"license": {"name": n, "acknowledgement": ack}} for n in lic.names]
    if lic.source == "none":
        return []
    named: JSONObject = {"name": lic.text, "acknowledgement": ack}
    if lic.full_text:
        named["text"] = {"content": lic.full_text, "contentType": "text/plain"}
    return [{"license": named}]


def _project(filename: str) -> str:
    try:
        return str(parse_wheel_filename(filename)[0])
    except InvalidWheelFilename:
        return filename


def _owners(lock: Lock) -> dict[str, tuple[str, str, list[str]]]:
    owners: dict[str, tuple[str, str, list[str]]] = {}
    for target in lock.targets:
        for pkg in target.packages:
            owners.setdefault(pkg.wheel, (pkg.name, pkg.version, []))[2].append(target.id)
    for filename in lock.wheels:
        owners.setdefault(filename, (_project(filename), "", []))
    return owners


def _component(lock: Lock, filename: str, owner: tuple[str, str, list[str]], lic: Licence | None) -> JSONObject:
    name, version, targets = owner
    wheel = lock.wheels[filename]
    comp: JSONObject = {
        "type": "library", "bom-ref": purl(name, version, filename), "name": name, "version": version,
        "purl": purl(name, version, filename), "hashes": [{"alg": "SHA-256", "content": wheel.sha256}]}
    if lic is not None and licence_choices(lic):
        comp["licenses"] = licence_choices(lic)
    if wheel.urls:
        comp["externalReferences"] = [{"type": "distribution", "url": wheel.urls[0]}]
    props = [{"name": "wheelferry:file", "value": filename}]
    props += [{"name": "wheelferry:target", "value": t} for t in sorted(set(targets))]
    if lic is not None:
        props.append({"name": "wheelferry:license-source", "value": lic.source})
        if lic.evidence:
            props.append({"name": "wheelferry:license-evidence", "value": lic.evidence})
    comp["properties"] = props
    return comp


def bom(lock: Lock, licences: Mapping[str, Licence], *, name: str, sequence: int, created: str) -> JSONObject:
    """The CycloneDX 1.6 document of *lock*'s wheels, their licences (by wheel file) and graph."""
    owners = _owners(lock)
    files = sorted(owners)
    ref = {f: purl(owners[f][0], owners[f][1], f) for f in files}
    root = f"wheelferry-bundle:{name}"
    # Edges come from each target's graph; a wheel shared by targets gets the union.
    needs: dict[str, set[str]] = {f: set() for f in files}
    direct: set[str] = set()
    for target in lock.targets:
        wheel_of = {p.name: p.wheel for p in target.packages}
        for pkg in target.packages:
            needs[pkg.wheel].update(wheel_of[d] for d in pkg.dependencies if d in wheel_of)
            if any(edge.parent is None for edge in pkg.required_by):
                direct.add(pkg.wheel)
    serial = uuid.uuid5(_SERIAL_NAMESPACE, f"{name}\n{sequence}\n{lock.dumps()}")
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX", "specVersion": "1.6", "serialNumber": f"urn:uuid:{serial}", "version": 1,
        "metadata": {
            "timestamp": created,
            "tools": {"components": [{"type": "application", "name": "wheelferry", "version": __version__}]},
            "component": {"type": "application", "bom-ref": root, "name": name, "version": str(sequence)},
            "properties": [{"name": WRITER_PROPERTY, "value": WRITER_VERSION}],
        },
        "components": [_component(lock, f, owners[f], licences.get(f)) for f in files],
        "dependencies": [{"ref": root, "dependsOn": sorted(ref[f] for f in direct)}]
        + [{"ref": ref[f], "dependsOn": sorted(ref[d] for d in needs[f])} for f in files],
    }


def dumps(doc: Mapping[str, JSONValue]) -> bytes:
    """The bytes of a document as the bundle stores it."""
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def _licence_key(entries: JSONValue) -> list[str]:
    """Licence entries without their acknowledgement, comparable across writers."""
    out = []
    for e in entries if isinstance(entries, list) else []:
        if isinstance(e, dict) and "expression" in e:
            out.append(f"expression:{e['expression']}")
        elif isinstance(e, dict) and isinstance(e.get("license"), dict):
            lic = e["license"]
            out.append(f"id:{lic['id']}" if "id" in lic else f"name:{lic.get('name')}")
    return sorted(out)


def check_sbom(sbom: bytes | None, wheels: Iterable[tuple[str, str, Licence]]) -> list[str]:
    """Where the bundle's own SBOM disagrees with its wheels ``(file, sha256, licence)``; empty if it agrees.

    Files and hashes are always compared; licences too when the SBOM comes from
    this writer (an older bundle's SBOM named licences differently).
    """
    if sbom is None:
        return []
    try:
        doc = json.loads(sbom)
        components = doc.get("components", [])
        if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
            raise ValueError("components")
        props = doc.get("metadata", {}).get("properties", [])
        ours = any(isinstance(p, dict) and p.get("name") == WRITER_PROPERTY for p in props)
    except (ValueError, AttributeError, TypeError):
        return [f"{SBOM_NAME} is not a CycloneDX JSON document"]
    listed: dict[str, set[str]] = {}
    licensed: dict[str, list[str]] = {}
    for c in components:
        refs = str(c.get("purl") or c.get("bom-ref") or "")
        files = parse_qs(urlsplit(refs).query).get("file_name", [])
        hashes = {h.get("content") for h in c.get("hashes", []) if isinstance(h, dict) and h.get("alg") == "SHA-256"}
        for f in files or [f"{c.get('name')}=={c.get('version')}"]:
            listed.setdefault(f, set()).update(h for h in hashes if isinstance(h, str))
            licensed[f] = _licence_key(c.get("licenses", []))
    problems = []
    seen = set()
    for f, sha256, lic in sorted(wheels, key=lambda w: w[0]):
        seen.add(f)
        if f not in listed:
            problems.append(f"{f} is in the bundle but not in {SBOM_NAME}")
        elif sha256 not in listed[f]:
            problems.append(f"{f} has sha256 {sha256[:12]}… but {SBOM_NAME} records "
                            f"{', '.join(sorted(h[:12] + '…' for h in listed[f])) or 'no SHA-256'}")
        elif ours and licensed[f] != _licence_key(licence_choices(lic)):
            said = ", ".join(licensed[f]) or "no licence"
            problems.append(f"{f}: {SBOM_NAME} records {said} but its wheel gives "
                            f"{', '.join(_licence_key(licence_choices(lic))) or 'no licence'}")
    problems += [f"{SBOM_NAME} lists {f}, which is not in the bundle" for f in sorted(set(listed) - seen)]
    return problems
