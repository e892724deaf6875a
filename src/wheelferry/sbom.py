"""The bundle's SBOM: a deterministic CycloneDX 1.6 JSON document, one component per wheel.

Built with cyclonedx-python-lib.  Nothing in it is random or read from the
clock: the serial number is a UUID5 of the lock's canonical JSON and the
timestamp is the bundle's ``created`` time, so the same lock gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping

from cyclonedx.exception.factory import InvalidLicenseExpressionException
from cyclonedx.model import (
    AttachedText,
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import (
    DisjunctiveLicense,
    License,
    LicenseAcknowledgement,
    LicenseExpression,
)
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from wheelferry import __version__
from wheelferry.coremetadata import read_core_metadata
from wheelferry.lockfile import Lock

try:
    from cyclonedx.contrib.license.factories import LicenseFactory  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # cyclonedx-python-lib before 11.x kept it here
    from cyclonedx.factory.license import LicenseFactory  # type: ignore[no-redef, unused-ignore]

# A fixed namespace so that serial numbers are stable across machines and releases.
_SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:wheelferry:sbom")
_CLASSIFIER_PREFIX = "License :: "
_DECLARED = LicenseAcknowledgement.DECLARED


def purl(name: str, version: str, filename: str) -> str:
    """The package URL of one wheel: ``pkg:pypi/<name>@<version>?file_name=<wheel>``."""
    return str(PackageURL(type="pypi", name=name, version=version, qualifiers={"file_name": filename}))


def _named(text: str) -> License:
    return DisjunctiveLicense(name=text, acknowledgement=_DECLARED)


def licenses_from_metadata(metadata: bytes) -> list[License]:
    """Declared licences of a wheel's METADATA: License-Expression, else License, else classifiers."""
    meta = read_core_metadata(metadata)
    factory = LicenseFactory()
    expression = meta.license_expression or ""
    if expression:
        # PEP 639: License-Expression is an SPDX expression.
        try:
            return [factory.make_with_expression(expression, acknowledgement=_DECLARED)]
        except InvalidLicenseExpressionException:
            return [_named(expression)]
    text = meta.license or ""
    if text and text.upper() != "UNKNOWN":
        if "\n" in text or len(text) > 100:
            # A whole licence text pasted into the field: keep it, named by its first line.
            return [DisjunctiveLicense(name=text.splitlines()[0].strip()[:100] or "declared licence text",
                                     text=AttachedText(content=text), acknowledgement=_DECLARED)]
        return [factory.make_from_string(text, license_acknowledgement=_DECLARED)]
    names = [c.split("::")[-1].strip() for c in meta.classifiers if c.startswith(_CLASSIFIER_PREFIX)]
    return [_named(n) for n in sorted(set(names)) if n]


def _component(lock: Lock, filename: str, name: str, version: str, targets: Iterable[str],
               metadata: bytes | None) -> Component:
    wheel = lock.wheels[filename]
    ref = purl(name, version, filename)
    licenses = licenses_from_metadata(metadata) if metadata else []
    if any(isinstance(lic, LicenseExpression) for lic in licenses):
        licenses = [next(lic for lic in licenses if isinstance(lic, LicenseExpression))]
    refs = [ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(url))
            for url in wheel.urls[:1]]
    return Component(
        name=name, version=version, type=ComponentType.LIBRARY, bom_ref=ref,
        purl=PackageURL.from_string(ref),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=wheel.sha256)],
        licenses=licenses, external_references=refs,
        properties=[Property(name="wheelferry:target", value=t) for t in sorted(set(targets))],
    )


def sbom_json(lock: Lock, wheel_metadata: Mapping[str, bytes] | None = None, *,
              created: int | None = None) -> bytes:
    """A CycloneDX 1.6 JSON SBOM of the lock's wheels and their dependency graph."""
    metadata = wheel_metadata or {}
    owners: dict[str, tuple[str, str, list[str]]] = {}
    for target in lock.targets:
        for pkg in target.packages:
            owners.setdefault(pkg.wheel, (pkg.name, pkg.version, []))[2].append(target.id)
    bom = Bom(serial_number=uuid.uuid5(_SERIAL_NAMESPACE, lock.dumps()))
    bom.metadata.timestamp = dt.datetime.fromtimestamp(created or 0, dt.timezone.utc)
    bom.metadata.tools.components.add(
        Component(name="wheelferry", version=__version__, type=ComponentType.APPLICATION))
    root = Component(name=lock.spec.name or "bundle", type=ComponentType.APPLICATION,
                     bom_ref=f"wheelferry-bundle:{lock.spec.name}")
    bom.metadata.component = root
    components: dict[str, Component] = {}
    for filename in sorted(owners):
        name, version, target_ids = owners[filename]
        components[filename] = _component(lock, filename, name, version, target_ids,
                                          metadata.get(filename))
        bom.components.add(components[filename])
    # Edges come from each target's graph; a wheel shared by targets gets the union.
    needs: dict[str, set[str]] = {f: set() for f in components}
    direct: set[str] = set()
    for target in lock.targets:
        wheel_of = {p.name: p.wheel for p in target.packages}
        for pkg in target.packages:
            needs[pkg.wheel].update(wheel_of[d] for d in pkg.dependencies if d in wheel_of)
            if any(edge.parent is None for edge in pkg.required_by):
                direct.add(pkg.wheel)
    bom.register_dependency(root, [components[f] for f in sorted(direct)])
    for filename, deps in sorted(needs.items()):
        bom.register_dependency(components[filename], [components[d] for d in sorted(deps)])
    return (JsonV1Dot6(bom).output_as_string(indent=2) + "\n").encode()
