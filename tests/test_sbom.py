"""SBOM: CycloneDX 1.6, schema-valid, deterministic, licences from METADATA, dependency graph."""

from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from tests.support.bundles import make_lock
from wheelferry.lockfile import Edge, Lock, LockedPackage, LockedTarget
from wheelferry.sbom import licenses_from_metadata, sbom_json

CREATED = 1767225600


def _metadata(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        return next(zf.read(n) for n in zf.namelist() if n.endswith(".dist-info/METADATA"))


@pytest.fixture
def lock_and_wheels(make_wheel: Callable[..., Path]) -> tuple[Lock, list[Path]]:
    wheels = [make_wheel("alpha", "1.0", license_expression="MIT OR Apache-2.0"),
              make_wheel("beta", "2.0", license="BSD"),
              make_wheel("gamma", "0.1", license=None,
                         classifiers=["License :: OSI Approved :: MIT License"])]
    base = make_lock(wheels, name="demo", targets={"t1": {}, "t2": {}},
                     per_target={"t1": [w.name for w in wheels], "t2": [wheels[1].name]})
    t1 = base.targets[0]
    # alpha needs beta and gamma in t1; only alpha is a root requirement.
    pkgs = tuple(
        LockedPackage(p.name, p.version, p.wheel,
                      (Edge(None, "alpha"),) if p.name == "alpha" else (Edge("alpha", p.name),),
                      ("beta", "gamma") if p.name == "alpha" else ())
        for p in t1.packages)
    t1 = LockedTarget(t1.id, t1.spec, {}, t1.markers, ("alpha",), pkgs)
    lock = Lock(base.spec, base.indexes, (t1, base.targets[1]), base.wheels, base.tool)
    return lock, wheels


def _doc(lock: Lock, wheels: list[Path]) -> tuple[bytes, dict[str, Any]]:
    data = sbom_json(lock, {w.name: _metadata(w) for w in wheels}, created=CREATED)
    return data, json.loads(data)


def test_valid_cyclonedx_1_6(lock_and_wheels: tuple[Lock, list[Path]]) -> None:
    data, doc = _doc(*lock_and_wheels)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode()) is None
    assert (doc["bomFormat"], doc["specVersion"]) == ("CycloneDX", "1.6")
    assert data.endswith(b"\n")


def test_deterministic_serial_and_timestamp(lock_and_wheels: tuple[Lock, list[Path]]) -> None:
    lock, wheels = lock_and_wheels
    a, doc = _doc(lock, wheels)
    b, _ = _doc(lock, wheels)
    assert a == b
    serial = uuid.UUID(doc["serialNumber"].removeprefix("urn:uuid:"))
    assert serial.version == 5
    assert doc["metadata"]["timestamp"].startswith("2026-01-01T00:00:00")
    other = Lock(lock.spec, ("https://mirror.example/other",), lock.targets, lock.wheels, lock.tool)
    assert json.loads(sbom_json(other, created=CREATED))["serialNumber"] != doc["serialNumber"]


def test_one_component_per_wheel(lock_and_wheels: tuple[Lock, list[Path]]) -> None:
    lock, wheels = lock_and_wheels
    _, doc = _doc(lock, wheels)
    comps = {c["name"]: c for c in doc["components"]}
    assert sorted(comps) == ["alpha", "beta", "gamma"]
    beta = comps["beta"]
    assert beta["version"] == "2.0"
    assert beta["purl"] == f"pkg:pypi/beta@2.0?file_name={wheels[1].name}"
    assert beta["hashes"] == [{"alg": "SHA-256", "content": lock.wheels[wheels[1].name].sha256}]
    assert sorted(p["value"] for p in beta["properties"]) == ["t1", "t2"]
    assert comps["alpha"]["licenses"] == [{"expression": "MIT OR Apache-2.0",
                                           "acknowledgement": "declared"}]
    assert comps["beta"]["licenses"][0]["license"]["name"] == "BSD"
    assert comps["gamma"]["licenses"][0]["license"]["name"] == "MIT License"


def test_dependency_graph_from_lock_edges(lock_and_wheels: tuple[Lock, list[Path]]) -> None:
    lock, wheels = lock_and_wheels
    _, doc = _doc(lock, wheels)
    ref = {c["name"]: c["bom-ref"] for c in doc["components"]}
    deps = {d["ref"]: sorted(d.get("dependsOn", [])) for d in doc["dependencies"]}
    root = doc["metadata"]["component"]["bom-ref"]
    assert deps[ref["alpha"]] == sorted([ref["beta"], ref["gamma"]])
    assert deps[ref["beta"]] == []
    # beta is a root of t2 (make_lock's edges) and alpha of t1.
    assert deps[root] == sorted([ref["alpha"], ref["beta"]])


def test_licences_without_metadata_are_empty(lock_and_wheels: tuple[Lock, list[Path]]) -> None:
    lock, _ = lock_and_wheels
    doc = json.loads(sbom_json(lock, created=CREATED))
    assert all("licenses" not in c for c in doc["components"])


def test_licence_fallbacks() -> None:
    assert licenses_from_metadata(b"Name: x\nLicense: UNKNOWN\n") == []
    long = licenses_from_metadata(b"Name: x\nLicense: Copyright 2020 X\n        Permission is granted\n")
    assert long[0].name == "Copyright 2020 X" and long[0].text is not None
    spdx = licenses_from_metadata(b"Name: x\nLicense: Apache-2.0\n")
    assert spdx[0].id == "Apache-2.0"
