"""The one CycloneDX 1.6 writer: valid, deterministic, licences with evidence, equal for build and audit."""

from __future__ import annotations

import json
import tarfile
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from tests.support.bundles import make_lock
from tests.support.wheels import build_wheel
from wheelferry.cli import main as cli_main
from wheelferry.lockfile import Edge, Lock, LockedPackage, LockedTarget
from wheelferry.manifest import SBOM_NAME
from wheelferry.offline.audit import read_metadata
from wheelferry.offline.cli import main as offline_main
from wheelferry.offline.cyclonedx import bom, check_sbom, dumps
from wheelferry.offline.licences import Licence, licence_of, wheel_licences

CREATED = "2026-01-01T00:00:00Z"
MIT_TEXT = (b"MIT License\n\nCopyright (c) 2024 Someone\n\nPermission is hereby granted, free of charge, to any "
            b"person obtaining a copy of this software and associated documentation files (the \"Software\"), "
            b"to deal in the Software without restriction.\n\nThe above copyright notice and this permission "
            b"notice shall be included in all copies or substantial portions of the Software.\n")


def _valid(data: bytes) -> None:
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode()) is None


@pytest.fixture
def lock_and_wheels(make_wheel: Callable[..., Path]) -> tuple[Lock, list[Path]]:
    wheels = [make_wheel("alpha", "1.0", license_expression="MIT OR Apache-2.0"),
              make_wheel("beta", "2.0", license="Acme licence"),
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


def _doc(lock: Lock, wheels: list[Path], sequence: int = 7) -> tuple[bytes, dict[str, Any]]:
    licences = wheel_licences({w.name: w for w in wheels}, {w.name: read_metadata(w) for w in wheels})
    data = dumps(bom(lock, licences, name="demo", sequence=sequence, created=CREATED))
    return data, json.loads(data)


def test_valid_cyclonedx_1_6(lock_and_wheels: tuple[Lock, list[Path]]) -> None:
    data, doc = _doc(*lock_and_wheels)
    _valid(data)
    assert (doc["bomFormat"], doc["specVersion"]) == ("CycloneDX", "1.6")
    assert data.endswith(b"\n")


def test_deterministic_serial_and_timestamp(lock_and_wheels: tuple[Lock, list[Path]]) -> None:
    lock, wheels = lock_and_wheels
    a, doc = _doc(lock, wheels)
    b, _ = _doc(lock, wheels)
    assert a == b
    serial = uuid.UUID(doc["serialNumber"].removeprefix("urn:uuid:"))
    assert serial.version == 5
    assert doc["metadata"]["timestamp"] == CREATED
    assert doc["metadata"]["component"]["version"] == "7"
    assert _doc(lock, wheels, sequence=8)[1]["serialNumber"] != doc["serialNumber"]
    other = Lock(lock.spec, ("https://mirror.example/other",), lock.targets, lock.wheels, lock.tool)
    assert _doc(other, wheels)[1]["serialNumber"] != doc["serialNumber"]


def test_one_component_per_wheel_with_licence_and_evidence(lock_and_wheels: tuple[Lock, list[Path]]) -> None:
    lock, wheels = lock_and_wheels
    _, doc = _doc(lock, wheels)
    comps = {c["name"]: c for c in doc["components"]}
    assert sorted(comps) == ["alpha", "beta", "gamma"]
    beta = comps["beta"]
    assert beta["version"] == "2.0"
    assert beta["purl"] == f"pkg:pypi/beta@2.0?file_name={wheels[1].name}"
    assert beta["hashes"] == [{"alg": "SHA-256", "content": lock.wheels[wheels[1].name].sha256}]
    props = {(p["name"], p["value"]) for p in beta["properties"]}
    assert {("wheelferry:target", "t1"), ("wheelferry:target", "t2"), ("wheelferry:file", wheels[1].name),
            ("wheelferry:license-source", "License")} <= props
    assert comps["alpha"]["licenses"] == [{"expression": "MIT OR Apache-2.0", "acknowledgement": "declared"}]
    assert ("wheelferry:license-evidence", "License-Expression: MIT OR Apache-2.0") in {
        (p["name"], p["value"]) for p in comps["alpha"]["properties"]}
    assert beta["licenses"] == [{"license": {"name": "Acme licence", "acknowledgement": "declared"}}]
    assert comps["gamma"]["licenses"] == [{"expression": "MIT", "acknowledgement": "declared"}]


def test_a_licence_found_in_a_file_is_concluded_with_its_path(make_wheel: Callable[..., Path]) -> None:
    wheel = make_wheel("filed", "1.0", license=None,
                       extra_members={"filed-1.0.dist-info/LICENSE": MIT_TEXT})
    lock = make_lock([wheel], name="demo", targets={"t": {}})
    lic = wheel_licences({wheel.name: wheel}, {wheel.name: read_metadata(wheel)})
    doc = bom(lock, lic, name="demo", sequence=1, created=CREATED)
    _valid(dumps(doc))
    (comp,) = doc["components"]
    assert comp["licenses"] == [{"expression": "MIT", "acknowledgement": "concluded"}]
    assert ("wheelferry:license-evidence", "LICENSE: the text of MIT (its distinguishing phrases)") in {
        (p["name"], p["value"]) for p in comp["properties"]}


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


def test_licences_unknown_are_left_out(lock_and_wheels: tuple[Lock, list[Path]]) -> None:
    lock, _ = lock_and_wheels
    doc = bom(lock, {}, name="demo", sequence=1, created=CREATED)
    assert all("licenses" not in c for c in doc["components"])
    nothing = Licence("UNKNOWN", None, "none")
    doc = bom(lock, dict.fromkeys(lock.wheels, nothing), name="demo", sequence=1, created=CREATED)
    assert all("licenses" not in c for c in doc["components"])
    _valid(dumps(doc))


def test_a_whole_licence_text_in_the_license_field_is_named_by_its_first_line() -> None:
    lic = licence_of(b"Name: x\nLicense: Copyright 2020 X\n        Permission is granted\n")
    assert (lic.text, lic.spdx) == ("Copyright 2020 X", None)


def test_check_sbom_compares_licences(lock_and_wheels: tuple[Lock, list[Path]]) -> None:
    lock, wheels = lock_and_wheels
    data, _ = _doc(lock, wheels)
    licences = wheel_licences({w.name: w for w in wheels}, {w.name: read_metadata(w) for w in wheels})
    rows = [(f, lock.wheels[f].sha256, licences[f]) for f in sorted(lock.wheels)]
    assert check_sbom(data, rows) == []
    lying = data.replace(b'"expression": "MIT OR Apache-2.0"', b'"expression": "MIT"')
    (problem,) = check_sbom(lying, rows)
    assert problem == (f"{wheels[0].name}: {SBOM_NAME} records expression:MIT but its wheel gives "
                       f"expression:MIT OR Apache-2.0")
    # An SBOM of an older writer (no writer property) has files and hashes checked, not licences.
    older = json.loads(lying)
    del older["metadata"]["properties"]
    assert check_sbom(json.dumps(older).encode(), rows) == []
    assert check_sbom(b"[1]", rows) == [f"{SBOM_NAME} is not a CycloneDX JSON document"]


def test_build_and_audit_write_the_same_document(index_server: Callable[..., Any], tmp_path: Path,
                                                 capsys: Any) -> None:
    repo = tmp_path / "wheels"
    build_wheel(repo, "app", "1.0", requires=["dep", "filed", "plain"], license_expression="Apache-2.0")
    build_wheel(repo, "dep", "1.0", license=None, classifiers=["License :: OSI Approved :: MIT License"])
    build_wheel(repo, "filed", "1.0", license=None, extra_members={"filed-1.0.dist-info/COPYING": MIT_TEXT})
    build_wheel(repo, "plain", "1.0", license=None)
    server = index_server(repo)
    out = tmp_path / "out"
    assert cli_main(["build", "-r", "app", "--target", "linux-x86_64:3.11", "--index-url", server.url,
                     "--cache", str(tmp_path / "cache"), "-o", str(out), "--no-sign", "--json"]) == 0
    tar = Path(json.loads(capsys.readouterr().out)["bundle"])
    with tarfile.open(tar) as tf:
        member = next(m for m in tf.getmembers() if m.name.endswith("/" + SBOM_NAME))
        extracted = tf.extractfile(member)
        assert extracted is not None
        shipped = extracted.read()
    assert offline_main(["audit", str(tar), "--allow-unsigned", "--format", "cyclonedx"]) == 0
    audited = capsys.readouterr().out.encode()
    _valid(shipped)
    assert json.loads(audited) == json.loads(shipped)
    comps = {c["name"]: c.get("licenses") for c in json.loads(shipped)["components"]}
    assert comps == {"app": [{"expression": "Apache-2.0", "acknowledgement": "declared"}],
                     "dep": [{"expression": "MIT", "acknowledgement": "declared"}],
                     "filed": [{"expression": "MIT", "acknowledgement": "concluded"}],
                     "plain": None}
