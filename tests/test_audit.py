"""audit: licences from real METADATA, why each wheel is there, trims, CycloneDX 1.6, the bundle's SBOM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.bundles import bundle_members, host_markers, make_bundle, make_lock, write_tar
from tests.support.gpgkeys import GpgKeys
from tests.support.wheels import build_wheel, sha256_file
from wheelferry.bundle import write_bundle
from wheelferry.lockfile import Edge, Lock, LockedPackage, LockedTarget, TrimmedEdge
from wheelferry.manifest import SBOM_NAME
from wheelferry.offline.audit import read_metadata, render_table
from wheelferry.offline.cli import main
from wheelferry.offline.cyclonedx import bom, dumps
from wheelferry.offline.licences import licence_of, wheel_licences

TARGETS = {"linux-x86_64-cp311-cpu": host_markers(), "windows-amd64-cp311-cpu": host_markers()}


def _meta(*lines: str) -> bytes:
    return ("Metadata-Version: 2.4\nName: x\nVersion: 1\n" + "\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(("lines", "text", "spdx", "source"), [
    (["License-Expression: MIT OR Apache-2.0"], "MIT OR Apache-2.0", "MIT OR Apache-2.0", "License-Expression"),
    (["License-Expression: mit", "License: GPL"], "mit", "MIT", "License-Expression"),
    (["License-Expression: LicenseRef-Acme"], "LicenseRef-Acme", "LicenseRef-Acme", "License-Expression"),
    (["License: BSD-3-Clause"], "BSD-3-Clause", "BSD-3-Clause", "License"),
    (["License: Apache License, Version 2.0"], "Apache License, Version 2.0", "Apache-2.0", "License-name"),
    (["License: Copyright (c) Acme", "        All rights reserved."], "Copyright (c) Acme", None, "License"),
    (["License: UNKNOWN", "Classifier: License :: OSI Approved :: MIT License"], "MIT License", "MIT",
     "classifier"),
    (["Classifier: License :: OSI Approved :: GNU General Public License v3 (GPLv3)"],
     "GNU General Public License v3 (GPLv3)", None, "classifier"),
    (["Classifier: Programming Language :: Python"], "UNKNOWN", None, "none"),
])
def test_licence_precedence(lines: list[str], text: str, spdx: str | None, source: str) -> None:
    lic = licence_of(_meta(*lines))
    assert (lic.text, lic.spdx, lic.source) == (text, spdx, source)


@pytest.fixture
def wheels(tmp_path: Path) -> list[Path]:
    d = tmp_path / "built"
    return [
        build_wheel(d, "alpha", "1.0", license_expression="MIT", requires_python=">=3.9",
                    requires=["beta"]),
        build_wheel(d, "beta", "2.0", license="BSD-3-Clause"),
        build_wheel(d, "gamma", "0.3", license=None,
                    classifiers=["License :: OSI Approved :: Apache Software License"]),
        build_wheel(d, "delta", "4.1", license=None, tag="cp311-cp311-win_amd64"),
    ]


def _lock(wheels: list[Path]) -> Lock:
    base = make_lock(wheels, name="demo", targets=TARGETS)
    targets = []
    for t in base.targets:
        pkgs = []
        for p in t.packages:
            if t.id.startswith("linux") and p.name == "delta":
                continue
            why = (Edge("alpha", "beta"),) if p.name == "beta" else p.required_by
            pkgs.append(LockedPackage(p.name, p.version, p.wheel, why,
                                      ("beta",) if p.name == "alpha" else ()))
        trimmed = (TrimmedEdge("alpha", "tensorboard>=2", "excluded"),)
        targets.append(LockedTarget(t.id, t.spec, {}, t.markers, t.requirements, tuple(pkgs), trimmed))
    return Lock(base.spec, base.indexes, tuple(targets), base.wheels, base.tool)


def _keys(gpg_keys: GpgKeys, tmp_path: Path) -> list[str]:
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    return ["--keyring", str(ring), "--trusted-key", gpg_keys.fpr["good"]]


def _signed_bundle(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path]) -> Path:
    tar = make_bundle(tmp_path, wheels, name="demo", targets=TARGETS, lock=_lock(wheels))
    gpg_keys.sign("good", tar)
    return tar


def _run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_audit_json_is_complete(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path], capsys: Any) -> None:
    tar = _signed_bundle(gpg_keys, tmp_path, wheels)
    code, out, err = _run(capsys, "audit", str(tar), *_keys(gpg_keys, tmp_path), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    rows = {r["name"]: r for r in doc["wheels"]}
    assert [r["name"] for r in doc["wheels"]] == ["alpha", "beta", "delta", "gamma"]
    assert rows["alpha"]["license"] == "MIT" and rows["alpha"]["license-source"] == "License-Expression"
    assert rows["alpha"]["requires-python"] == ">=3.9"
    assert rows["alpha"]["trimmed"][0]["requirement"] == "tensorboard>=2"
    assert rows["beta"]["license-spdx"] == "BSD-3-Clause"
    assert {e["parent"] for e in rows["beta"]["required-by"]} == {"alpha"}
    assert rows["gamma"]["license"] == "Apache Software License" and rows["gamma"]["license-spdx"] == "Apache-2.0"
    assert rows["delta"]["license"] == "UNKNOWN" and rows["delta"]["targets"] == ["windows-amd64-cp311-cpu"]
    assert rows["delta"]["tags"] == "cp311-cp311-win_amd64"
    assert rows["alpha"]["targets"] == sorted(TARGETS)
    assert rows["beta"]["size"] == wheels[1].stat().st_size and len(rows["beta"]["sha256"]) == 64
    assert doc["trimmed"][0]["edges"][0]["reason"] == "excluded"
    assert doc["signature"]["fingerprint"] == gpg_keys.fpr["good"]


def test_audit_table_fits_the_terminal(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                      capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    tar = _signed_bundle(gpg_keys, tmp_path, wheels)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, out, err = _run(capsys, "audit", str(tar), *_keys(gpg_keys, tmp_path))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("NAME") and all(len(line) <= 80 for line in lines if "trimmed" not in line)
    assert any(line.startswith("gamma") for line in lines)
    assert "trimmed for linux-x86_64-cp311-cpu: alpha -> tensorboard>=2 (excluded)" in out


def test_audit_table_into_a_file_keeps_every_cell_whole(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                                        capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tar = _signed_bundle(gpg_keys, tmp_path, wheels)
    monkeypatch.setenv("COLUMNS", "40")  # a pipe or file is not a terminal: its width does not apply
    code, out, err = _run(capsys, "audit", str(tar), *_keys(gpg_keys, tmp_path))
    assert code == 0, err
    assert "…" not in out and "Apache Software License" in out
    assert sha256_file(wheels[1])[:12] in out and max(len(line) for line in out.splitlines()) > 40


def test_trims_of_optional_extras_are_one_line_unless_verbose() -> None:
    from wheelferry.offline.audit import trim_lines

    edges = [{"parent": f"p{i % 7}", "requirement": f"extra{i}; extra == 'x'", "reason": "extra"} for i in range(140)]
    edges.append({"parent": "alpha", "requirement": "tensorboard>=2", "reason": "excluded"})
    trimmed = [{"target": "t", "edges": edges,
                "removed": [{"name": "tensorboard", "version": "2.15.0", "size": 1, "declared-by": ["alpha"]}]}]
    short = trim_lines(trimmed)
    assert short == ["trimmed for t: alpha -> tensorboard>=2 (excluded)",
                     "removed for t: tensorboard 2.15.0 (excluded; required by alpha)",
                     "trimmed for t: 140 requirement(s) of optional extras of 7 package(s) not followed "
                     "(--verbose lists them)"]
    assert len(trim_lines(trimmed, verbose=True)) == 142


def test_render_table_truncates_long_cells(wheels: list[Path], tmp_path: Path) -> None:
    from wheelferry.offline.audit import WheelRow
    from wheelferry.offline.licences import Licence

    row = WheelRow("p" * 60, "1.0", "f.whl", "0" * 64, 10, Licence("L" * 90, None, "License"), None,
                   "py3-none-any", ("t",) * 3, (), (), None, ())
    table = render_table([row], width=70)
    assert all(len(line) <= 70 for line in table.splitlines()) and "…" in table


def test_cyclonedx_validates_against_1_6(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                         capsys: Any) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    tar = _signed_bundle(gpg_keys, tmp_path, wheels)
    code, out, err = _run(capsys, "audit", str(tar), *_keys(gpg_keys, tmp_path), "--format", "cyclonedx")
    assert code == 0, err
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out) is None
    doc = json.loads(out)
    comps = {c["name"]: c for c in doc["components"]}
    assert comps["alpha"]["purl"] == f"pkg:pypi/alpha@1.0?file_name={wheels[0].name}"
    assert comps["alpha"]["licenses"] == [{"expression": "MIT", "acknowledgement": "declared"}]
    assert comps["gamma"]["licenses"] == [{"expression": "Apache-2.0", "acknowledgement": "declared"}]
    assert "licenses" not in comps["delta"]
    assert comps["beta"]["hashes"] == [{"alg": "SHA-256", "content": sha256_file(wheels[1])}]
    alpha_deps = next(d for d in doc["dependencies"] if d["ref"] == comps["alpha"]["bom-ref"])
    assert alpha_deps["dependsOn"] == [comps["beta"]["bom-ref"]]


def test_cyclonedx_expression_and_names_validate(tmp_path: Path, capsys: Any) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    d = tmp_path / "built"
    wheels = [build_wheel(d, "dual", "1.0", license_expression="MIT OR Apache-2.0"),
              build_wheel(d, "odd", "1.0", license="Acme Corp licence"),
              build_wheel(d, "gpl", "1.0", license=None,
                          classifiers=["License :: OSI Approved :: GNU General Public License v3 (GPLv3)"])]
    tar = make_bundle(tmp_path, wheels)
    code, out, err = _run(capsys, "audit", str(tar), "--allow-unsigned", "--format", "cyclonedx")
    assert code == 0, err
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out) is None
    comps = {c["name"]: c for c in json.loads(out)["components"]}
    assert comps["dual"]["licenses"] == [{"expression": "MIT OR Apache-2.0", "acknowledgement": "declared"}]
    assert comps["odd"]["licenses"] == [{"license": {"name": "Acme Corp licence", "acknowledgement": "declared"}}]
    assert comps["gpl"]["licenses"] == [{"license": {"name": "GNU General Public License v3 (GPLv3)",
                                                     "acknowledgement": "declared"}}]


def _real_bundle(tmp_path: Path, wheels: list[Path], sbom: bytes | None = None) -> Path:
    lock = make_lock(wheels, name="real", targets={"host": host_markers()})
    licences = wheel_licences({w.name: w for w in wheels}, {w.name: read_metadata(w) for w in wheels})
    out = tmp_path / "out"
    out.mkdir()
    return write_bundle(out, name="real", lock=lock,
                        lock_files={"wheelferry.lock.json": lock.dumps().encode()},
                        wheel_paths={w.name: w for w in wheels},
                        sequence=1, created=1700000000, expires=None, tool="t", licences=licences, sbom=sbom).path


def test_real_bundle_sbom_agrees(tmp_path: Path, wheels: list[Path], capsys: Any) -> None:
    tar = _real_bundle(tmp_path, wheels)
    code, out, err = _run(capsys, "audit", str(tar), "--allow-unsigned", "--json")
    assert code == 0, err
    assert json.loads(out)["sbom-problems"] == []


def test_sbom_that_lies_about_a_hash_fails(tmp_path: Path, wheels: list[Path], capsys: Any) -> None:
    lock = make_lock(wheels, name="real", targets={"host": host_markers()})
    good = dumps(bom(lock, {}, name="real", sequence=1, created="2023-11-14T22:13:20Z"))
    lying = good.replace(lock.wheels[wheels[1].name].sha256.encode(), b"f" * 64)
    tar = _real_bundle(tmp_path, wheels, sbom=lying)
    code, _, err = _run(capsys, "audit", str(tar), "--allow-unsigned")
    assert code == 1
    assert "SBOM does not match" in err and wheels[1].name in err


def test_sbom_missing_a_wheel_fails(tmp_path: Path, wheels: list[Path], capsys: Any) -> None:
    lock = make_lock(wheels[:2], name="demo", targets={"host": host_markers()})
    partial = dumps(bom(lock, {}, name="demo", sequence=1, created="2023-11-14T22:13:20Z"))
    tar = write_tar(tmp_path / "demo.tar", bundle_members(wheels, extra_files={SBOM_NAME: partial}))
    code, _, err = _run(capsys, "audit", str(tar), "--allow-unsigned")
    assert code == 1 and f"{wheels[2].name} is in the bundle but not in {SBOM_NAME}" in err


def test_bad_signature_audits_nothing(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                      capsys: Any) -> None:
    tar = _signed_bundle(gpg_keys, tmp_path, wheels)
    gpg_keys.sign("other", tar)
    ring = gpg_keys.export("good", "other", path=tmp_path / "BOTH.asc")
    code, out, err = _run(capsys, "audit", str(tar), "--keyring", str(ring),
                          "--trusted-key", gpg_keys.fpr["good"], "--format", "json")
    assert code == 1 and out == "" and "not one you trust" in err
    assert len(err.strip().splitlines()) == 2


def test_missing_keys_is_usage(tmp_path: Path, wheels: list[Path], capsys: Any) -> None:
    tar = make_bundle(tmp_path, wheels)
    code, _, err = _run(capsys, "audit", str(tar))
    assert code == 2 and "--keyring" in err


@pytest.mark.parametrize("member,body,spdx", [
    ("x-1.0.dist-info/licenses/LICENSE", b"MIT License\n\nPermission is hereby granted, free of charge, "
     b"to any person obtaining a copy [...]\nThe above copyright notice and this permission notice shall be\n"
     b"included in all copies or substantial portions of the Software.", "MIT"),
    ("x-1.0.dist-info/LICENSE", b"                Apache License\n          Version 2.0, January 2004\n\n"
     b"   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION", "Apache-2.0"),
    ("x-1.0.dist-info/LICENSE", b"All rights reserved. Do not copy.", None),
])
def test_licence_recognised_from_license_file_when_metadata_names_none(tmp_path: Path, member: str, body: bytes,
                                                                       spdx: str | None) -> None:
    from wheelferry.offline.licences import licence_from_files

    wheel = build_wheel(tmp_path, "x", "1.0", license=None, extra_metadata=["License-File: LICENSE"],
                        files={member: body})
    meta = read_metadata(wheel)
    assert licence_of(meta).source == "none"
    found = licence_from_files(wheel, meta)
    if spdx is None:
        assert found is None
    else:
        assert found is not None and found.spdx == spdx and found.source == "License-File"
