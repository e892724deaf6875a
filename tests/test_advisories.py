"""Advisories: OSV databases read offline (all.zip, JSON and YAML directories), matched exactly.

The committed records (tests/data/advisories) are synthetic; ``WHEELFERRY_ADVISORY_DB`` pointing
at a checkout of the PyPA advisory database adds the same checks on real records.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from wheelferry.offline.advisories import findings, render_table
from wheelferry.offline.osv import AdvisoryDBError, Malformed, parse_advisory, scan

DATA = Path(__file__).parent / "data" / "advisories" / "osv"
PINS = [("Pillow", "8.1.0"), ("flask", "0.12"), ("cryptography", "3.2"), ("tensorflow", "2.9.0")]


# --- the reference matcher: intervals built from sorted events, judged with plain comparisons --------

def _v(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _intervals(events: list[dict[str, str]]) -> list[tuple[Version | None, Version | None, bool]]:
    """[(low, high, high_inclusive)] from events; low None = from the start, high None = open."""
    def key(e: dict[str, str]) -> Any:
        value = next(iter(e.values()))
        return (value != "0", Version("0") if value == "0" else Version(value))
    out: list[tuple[Version | None, Version | None, bool]] = []
    start: Version | str | None = "unset"
    for e in sorted((e for e in events if "limit" not in e), key=key):
        (kind, value), = e.items()
        if kind == "introduced" and start == "unset":
            start = None if value == "0" else Version(value)
        elif kind in ("fixed", "last_affected") and start != "unset":
            out.append((start, Version(value), kind == "last_affected"))  # type: ignore[arg-type]
            start = "unset"
    if start != "unset":
        out.append((start, None, False))  # type: ignore[arg-type]
    return out


def reference(records: Iterable[dict[str, Any]], name: str, version: str) -> set[frozenset[str]]:
    """Alias-merged id sets of the live records that affect (name, version)."""
    v = Version(version)
    hits = []
    for r in records:
        if r.get("withdrawn"):
            continue
        for a in r["affected"]:
            if (a["package"]["ecosystem"] != "PyPI"
                    or canonicalize_name(a["package"]["name"]) != canonicalize_name(name)):
                continue
            listed = any(x == version or _v(x) == v for x in a.get("versions", []))
            ranged = False
            for rng in a.get("ranges", []):
                if rng["type"] != "ECOSYSTEM":
                    continue
                limits = [Version(e["limit"]) for e in rng["events"] if "limit" in e and "*" not in e["limit"]]
                if limits and not any(v < lim for lim in limits):
                    continue
                for lo, hi, incl in _intervals(rng["events"]):
                    if (lo is None or v >= lo) and (hi is None or v < hi or (incl and v == hi)):
                        ranged = True
            if listed or ranged:
                hits.append({r["id"], *r.get("aliases", [])})
                break
    groups: list[set[str]] = []
    for ids in hits:
        joined = [g for g in groups if g & ids]
        merged = set(ids).union(*joined)
        groups = [g for g in groups if not g & ids] + [merged]
    return {frozenset(g) for g in groups}


def _good_records(directory: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(directory.rglob("*")):
        if p.suffix not in (".json", ".yaml"):
            continue
        doc = json.loads(p.read_bytes()) if p.suffix == ".json" else yaml.safe_load(p.read_text())
        try:
            parse_advisory(doc, p.name)
        except Malformed:
            continue
        out.append(doc)
    return out


# --- the three forms of a database ------------------------------------------------------------------

def as_zip(src: Path, out: Path) -> Path:
    """osv.dev's layout: one flat zip of ID.json members."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(src.rglob("*")):
            if p.suffix == ".json":
                zf.writestr(p.name, p.read_bytes())
            elif p.suffix == ".yaml":
                zf.writestr(p.stem + ".json", json.dumps(yaml.safe_load(p.read_text())))
    return out


def as_pypa_checkout(src: Path, out: Path) -> Path:
    """The PyPA advisory database's layout: vulns/<package>/<ID>.yaml, written by PyYAML as it does."""
    for p in sorted(src.glob("*.json")):
        doc = json.loads(p.read_bytes())
        names = [a.get("package", {}).get("name") for a in doc.get("affected", [])]
        folder = out / "vulns" / canonicalize_name(str(names[0] if names and names[0] else "unknown"))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{p.stem}.yaml").write_text(yaml.safe_dump(doc, sort_keys=True))
    (out / ".github").mkdir(parents=True)
    (out / ".github" / "workflow.yaml").write_text("not: [a record\n")  # never read
    return out


@pytest.fixture(params=["dir", "zip", "yaml"])
def database(request: Any, tmp_path: Path) -> Path:
    if request.param == "zip":
        return as_zip(DATA, tmp_path / "all.zip")
    if request.param == "yaml":
        return as_pypa_checkout(DATA, tmp_path / "advisory-database")
    return DATA


def _ids(found: list[Any], name: str) -> set[frozenset[str]]:
    return {frozenset(f.ids) for f in found if f.name == name}


def test_matches_the_osv_rules_in_every_form(database: Path) -> None:
    result = scan(database, frozenset(canonicalize_name(n) for n, _ in PINS))
    found = findings(result, PINS)
    assert _ids(found, "Pillow") == {frozenset({"PYSEC-TEST-1", "GHSA-test-aaaa-bbbb", "CVE-TEST-1"}),
                                     frozenset({"PYSEC-TEST-2"})}
    assert _ids(found, "flask") == {frozenset({"PYSEC-TEST-4"})}  # PYSEC-TEST-3 is withdrawn
    assert _ids(found, "cryptography") == {frozenset({"PYSEC-TEST-5"}), frozenset({"GHSA-test-cccc-dddd"})}
    assert _ids(found, "tensorflow") == {frozenset({"PYSEC-TEST-6"})}  # limit, npm and GIT do not match
    by_id = {f.ids[0]: f for f in found}
    merged = by_id["PYSEC-TEST-1"]
    assert merged.ids == ("PYSEC-TEST-1", "GHSA-test-aaaa-bbbb", "CVE-TEST-1")
    assert merged.fixed_in == ("9.0.0",) and merged.severity == "critical"
    assert merged.summary == "Synthetic decoder overflow" and merged.cvss[0].startswith("CVSS:3.1/")
    assert merged.score == 9.8
    assert by_id["PYSEC-TEST-2"].fixed_in == ("8.1.2",)
    # No label, only a CVSS vector: the cvss library rates it (4.3, medium).
    assert (by_id["PYSEC-TEST-2"].severity, by_id["PYSEC-TEST-2"].score) == ("medium", 4.3)
    assert by_id["PYSEC-TEST-4"].fixed_in == ("0.12.3",) and by_id["PYSEC-TEST-4"].severity == "medium"
    assert by_id["PYSEC-TEST-5"].fixed_in == ()  # last_affected: no fixed version known
    assert result.withdrawn == ("PYSEC-TEST-3",)
    assert sorted(Path(s).stem for s, _ in result.malformed) == [
        "PYSEC-TEST-10", "PYSEC-TEST-8", "PYSEC-TEST-9", "missing-id"]
    problems = {Path(s).stem: w for s, w in result.malformed}
    assert "'2.x.y!' is not a PEP 440 version" in problems["PYSEC-TEST-8"]
    assert "'FOO' is not an OSV range type" in problems["PYSEC-TEST-9"]
    assert problems["missing-id"] == "id is missing"
    assert problems["PYSEC-TEST-10"] == "affected[0].package.name is missing"
    assert result.identity.records == 14 and result.identity.newest_modified == "2024-03-01T00:00:00Z"


@pytest.mark.parametrize("version", ["8.0.0", "8.1.0", "8.1.1", "8.1.2", "9.0.0", "9.0.1", "9.0.0rc1"])
@pytest.mark.parametrize("name", ["pillow", "flask", "cryptography", "tensorflow"])
def test_agrees_with_the_reference_matcher(name: str, version: str) -> None:
    records = _good_records(DATA)
    for v in (version, "0.12", "1.0", "1.0.1", "3.1", "3.2", "3.2.1", "2.9.0", "2.10.0", "2.7"):
        found = findings(scan(DATA, frozenset({name})), [(name, v)])
        assert {frozenset(f.ids) for f in found} == reference(records, name, v), (name, v)


def test_only_records_naming_the_packages_are_read(tmp_path: Path) -> None:
    db = as_pypa_checkout(DATA, tmp_path / "db")
    # Damage a record of a package not asked about: it is never parsed, so never noticed.
    (db / "vulns" / "tensorflow" / "PYSEC-TEST-7.yaml").write_text("id: [unclosed tensorflow\nmodified: '2024'\n")
    result = scan(db, frozenset({"flask"}))
    assert result.examined == 3 and [a.id for a in result.advisories] == ["PYSEC-TEST-4"]
    with pytest.raises(AdvisoryDBError, match=r"PYSEC-TEST-7.yaml does not parse as YAML"):
        scan(db, frozenset({"tensorflow"}))


def test_identity_is_the_database_bytes(tmp_path: Path) -> None:
    a = scan(as_zip(DATA, tmp_path / "a.zip")).identity
    b = scan(as_zip(DATA, tmp_path / "b.zip")).identity
    assert a.sha256 == b.sha256 and a.format == "osv-zip" and a.records == 14
    d1 = scan(DATA).identity
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in DATA.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    assert scan(copy).identity.sha256 == d1.sha256
    (copy / "PYSEC-TEST-2.json").write_bytes((DATA / "PYSEC-TEST-2.json").read_bytes() + b" ")
    assert scan(copy).identity.sha256 != d1.sha256


def test_table_has_ids_summary_and_fix() -> None:
    found = findings(scan(DATA, frozenset({"pillow"})), [("pillow", "8.1.0")])
    table = render_table(found, None).splitlines()
    assert table[0].split() == ["PACKAGE", "VERSION", "IDS", "SEVERITY", "FIXED-IN", "SUMMARY"]
    assert table[1].split()[:6] == ["pillow", "8.1.0", "PYSEC-TEST-1,GHSA-test-aaaa-bbbb,CVE-TEST-1",
                                    "critical", "9.8", "9.0.0"]
    assert table[2].split()[:6] == ["pillow", "8.1.0", "PYSEC-TEST-2", "medium", "4.3", "8.1.2"]


# --- real records (opt-in) ------------------------------------------------------------------------------

REAL = os.environ.get("WHEELFERRY_ADVISORY_DB")
REAL_PINS = [("pillow", "8.0.0"), ("pillow", "9.0.0"), ("cryptography", "3.2"), ("cryptography", "39.0.0"),
             ("flask", "0.12"), ("flask", "2.2.2"), ("tensorflow", "2.4.0"), ("tensorflow", "2.9.0")]
# The PyPA database's TensorFlow records end in 2021 (later ones are GHSA records on osv.dev), so
# 2.4.0 is the old pin that must have some; 2.9.0 is only compared with the reference.


@pytest.mark.skipif(not REAL, reason="set WHEELFERRY_ADVISORY_DB to a PyPA advisory-database checkout")
def test_real_records_match_the_reference_in_both_forms(tmp_path: Path) -> None:
    checkout = Path(str(REAL))
    names = frozenset(n for n, _ in REAL_PINS)
    subset = [p for n in names for p in sorted((checkout / "vulns" / n).glob("*.yaml"))]
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    records = [yaml.load(p.read_text(), Loader=loader) for p in subset]
    zipped = tmp_path / "all.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted((checkout / "vulns").rglob("*.yaml")):
            doc = yaml.load(p.read_text(), Loader=loader)
            zf.writestr(p.stem + ".json", json.dumps(doc, default=str))
    for db in (checkout, zipped):
        result = scan(db, names)
        assert not result.malformed
        for name, version in REAL_PINS:
            got = {frozenset(f.ids) for f in findings(result, [(name, version)])}
            assert got == reference(records, name, version), (db.name, name, version)
            if version in ("8.0.0", "0.12", "2.4.0", "3.2"):
                assert got, f"an old pin of {name} has known vulnerabilities"


# --- hostile input -----------------------------------------------------------------------------------------

@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".json", ".yaml"]))
def test_any_bytes_as_a_record_parse_or_fail_cleanly(tmp_path: Path, data: bytes, suffix: str) -> None:
    d = tmp_path / "fuzz"
    d.mkdir(exist_ok=True)
    for old in d.iterdir():
        old.unlink()
    (d / f"X{suffix}").write_bytes(data)
    try:
        result = scan(d, frozenset({"flask"}))
    except AdvisoryDBError as exc:
        assert "\n" not in str(exc) and "X" + suffix in str(exc)
    else:
        assert result.identity.records == 1


_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                    st.sampled_from(["0", "1.0", "2.x", "*", "PyPI", "ECOSYSTEM", "GIT", "flask"]))
_doc = st.recursive(_scalar, lambda c: st.lists(c, max_size=4) | st.dictionaries(
    st.sampled_from(["id", "modified", "affected", "package", "name", "ecosystem", "ranges", "type",
                     "events", "introduced", "fixed", "last_affected", "limit", "versions", "aliases",
                     "withdrawn", "severity", "score", "database_specific"]), c, max_size=6), max_leaves=30)


@settings(max_examples=300)
@given(doc=_doc)
def test_any_document_is_a_record_or_malformed(doc: Any) -> None:
    try:
        adv = parse_advisory(doc, "fuzz.json")
    except Malformed as exc:
        assert str(exc)
    else:
        for a in adv.affected:
            for r in a.ranges:
                r.includes(Version("1.0"))


@settings(max_examples=200)
@given(vector=st.one_of(st.text(max_size=60), st.sampled_from(["CVSS:3.1/AV:N", "CVSS:4.0/AV:X", "AV:N/AC:Q"])))
def test_any_cvss_vector_is_rated_or_none(vector: str) -> None:
    from wheelferry.offline.advisories import cvss_rating

    rated = cvss_rating(vector)
    assert rated is None or (0 <= rated[0] <= 10 and isinstance(rated[1], str))


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_any_bytes_as_a_zip_fail_cleanly(tmp_path: Path, data: bytes) -> None:
    z = tmp_path / "all.zip"
    z.write_bytes(b"PK\x03\x04" + data)
    with pytest.raises(AdvisoryDBError):
        scan(z)


# --- audit, build and the policy, end to end ---------------------------------------------------------

@pytest.fixture
def old_pins(tmp_path: Path) -> list[Path]:
    from tests.support.wheels import build_wheel

    d = tmp_path / "wheels"
    return [build_wheel(d, n, v) for n, v in PINS]


@pytest.fixture
def signed(gpg_keys: Any, tmp_path: Path, old_pins: list[Path]) -> tuple[Path, list[str]]:
    from tests.support.bundles import host_markers, make_bundle

    tar = make_bundle(tmp_path, old_pins, name="old", targets={"linux-x86_64-cp311-cpu": host_markers()})
    gpg_keys.sign("good", tar)
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    return tar, ["--keyring", str(ring), "--trusted-key", gpg_keys.fpr["good"]]


def _audit(capsys: Any, *argv: str) -> tuple[int, str, str]:
    from wheelferry.offline.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_audit_reports_advisories_in_every_format(signed: tuple[Path, list[str]], tmp_path: Path,
                                                 capsys: Any) -> None:
    tar, keys = signed
    db = as_zip(DATA, tmp_path / "all.zip")
    code, out, err = _audit(capsys, "audit", str(tar), *keys, "--advisories", str(db))
    assert code == 0, err
    lines = out.splitlines()
    head = lines.index(next(x for x in lines if x.startswith("PACKAGE ")))
    rows = [x.split()[:3] for x in lines[head + 1:head + 7]]
    assert [r[0] for r in rows] == ["cryptography", "cryptography", "flask", "pillow", "pillow", "tensorflow"]
    assert f"advisories: {db} (osv-zip, sha256 " in out and "14 records, newest modified 2024-03-01" in out
    assert "6 known vulnerabilities, 1 withdrawn ignored, 4 malformed skipped" in out
    assert "skipped malformed record PYSEC-TEST-8.json: affected[0].ranges[0].events[1].fixed '2.x.y!'" in out

    code, out, err = _audit(capsys, "audit", str(tar), *keys, "--advisories", str(db), "--format", "json")
    doc = json.loads(out)["advisories"]
    assert code == 0 and doc["database"]["records"] == 14 and doc["malformed"] == 4
    assert {tuple(f["ids"]) for f in doc["findings"] if f["package"] == "pillow"} == {
        ("PYSEC-TEST-1", "GHSA-test-aaaa-bbbb", "CVE-TEST-1"), ("PYSEC-TEST-2",)}
    assert "newest modified 2024-03-01T00:00:00Z" in err  # the identity is on stderr beside JSON

    code, out, err = _audit(capsys, "audit", str(tar), *keys, "--advisories", str(db), "--format", "cyclonedx")
    sbom = json.loads(out)
    refs = {c["bom-ref"] for c in sbom["components"]}
    vulns = {v["id"]: v for v in sbom["vulnerabilities"]}
    assert code == 0 and len(vulns) == 6
    assert [r["id"] for r in vulns["PYSEC-TEST-1"]["references"]] == ["GHSA-test-aaaa-bbbb", "CVE-TEST-1"]
    assert all(a["ref"] in refs for v in vulns.values() for a in v["affects"])
    assert vulns["PYSEC-TEST-1"]["affects"][0]["ref"].startswith("pkg:pypi/pillow@8.1.0")
    assert {"name": "wheelferry:advisories:records", "value": "14"} in sbom["metadata"]["properties"]
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out) is None
    assert {"method": "CVSSv31", "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:N/A:N", "score": 4.3,
            "severity": "medium"} in vulns["PYSEC-TEST-2"]["ratings"]

    code, out, err = _audit(capsys, "audit", str(tar), *keys, "--advisories", str(db), "--format", "html")
    assert code == 0 and "<h2>Known vulnerabilities</h2>" in out and "6 known vulnerabilities." in out
    assert "PYSEC-TEST-1, GHSA-test-aaaa-bbbb, CVE-TEST-1" in out and "PYSEC-TEST-8.json" in out
    assert doc["database"]["sha256"] in out


def test_policy_deny_ignore_and_expired_ignore(signed: tuple[Path, list[str]], tmp_path: Path,
                                               capsys: Any) -> None:
    tar, keys = signed
    policy = tmp_path / "policy.toml"
    policy.write_text('[advisories]\ndeny = "any"\n')
    code, _, err = _audit(capsys, "audit", str(tar), *keys, "--advisories", str(DATA), "--policy", str(policy))
    assert code == 1 and "6 policy violation(s)" in err
    assert "pillow 8.1.0: advisory: PYSEC-TEST-1 / GHSA-test-aaaa-bbbb / CVE-TEST-1: " \
           "Synthetic decoder overflow; fixed in 9.0.0" in err
    ids = ["CVE-TEST-1", "PYSEC-TEST-2", "PYSEC-TEST-4", "PYSEC-TEST-5", "GHSA-test-cccc-dddd", "PYSEC-TEST-6"]
    ignores = ",\n".join(f'  {{ id = "{i}", reason = "not reachable here", until = 2999-01-01 }}' for i in ids)
    policy.write_text(f'[advisories]\ndeny = "any"\nignore = [\n{ignores}\n]\n')
    code, out, err = _audit(capsys, "audit", str(tar), *keys, "--advisories", str(DATA), "--policy", str(policy))
    assert code == 0, err
    assert "policy: pillow 8.1.0: CVE-TEST-1 ignored until 2999-01-01: not reachable here" in out
    policy.write_text(policy.read_text().replace("2999-01-01 }\n]", "2020-01-01 }\n]"))
    code, _, err = _audit(capsys, "audit", str(tar), *keys, "--advisories", str(DATA), "--policy", str(policy))
    assert code == 1 and "1 policy violation(s)" in err
    assert "tensorflow 2.9.0: advisory-ignore-expired: PYSEC-TEST-6: the ignore of PYSEC-TEST-6 expired on " \
           "2020-01-01" in err
    # A severity floor: only high and critical (and records that give no severity) are denied;
    # PYSEC-TEST-2 is rated medium from its CVSS vector alone.
    policy.write_text('[advisories]\ndeny = "high"\nignore = [{ id = "PYSEC-TEST-6", reason = "r" }]\n')
    code, _, err = _audit(capsys, "audit", str(tar), *keys, "--advisories", str(DATA), "--policy", str(policy))
    assert code == 1 and "2 policy violation(s)" in err
    assert "PYSEC-TEST-1 /" in err and "GHSA-test-cccc-dddd" in err
    assert "PYSEC-TEST-4" not in err and "PYSEC-TEST-2" not in err


@pytest.mark.parametrize(("text", "problem"), [
    ('[advisories]\ndeny = "severe"\n', "advisories.deny must be"),
    ('[advisories]\nignore = [{ id = "X" }]\n', "advisories.ignore[0].reason must say why"),
    ('[advisories]\nignore = [{ id = "X", reason = "r", until = "soon" }]\n', "until 'soon' is not a date"),
    ('[advisories]\nblock = 1\n', "advisories.block is not a known key"),
])
def test_bad_advisories_table_is_exit_2(signed: tuple[Path, list[str]], tmp_path: Path, capsys: Any,
                                        text: str, problem: str) -> None:
    tar, keys = signed
    policy = tmp_path / "policy.toml"
    policy.write_text(text)
    code, _, err = _audit(capsys, "audit", str(tar), *keys, "--advisories", str(DATA), "--policy", str(policy))
    assert code == 2 and problem in err and "Traceback" not in err


def test_policy_with_advisories_needs_a_database(signed: tuple[Path, list[str]], tmp_path: Path,
                                                 capsys: Any) -> None:
    tar, keys = signed
    policy = tmp_path / "policy.toml"
    policy.write_text('[advisories]\ndeny = "any"\n')
    code, _, err = _audit(capsys, "audit", str(tar), *keys, "--policy", str(policy))
    assert code == 2 and "has [advisories] rules: pass --advisories DB" in err


def test_build_refuses_before_downloading(index_server: Any, tmp_path: Path, capsys: Any) -> None:
    from tests.support.wheels import build_wheel
    from wheelferry.cli import main as wheelferry

    d = tmp_path / "repo"
    build_wheel(d, "app", "1.0", requires=["flask==0.12"])
    build_wheel(d, "flask", "0.12")
    server = index_server(d)
    policy = tmp_path / "policy.toml"
    policy.write_text('[advisories]\ndeny = "any"\n')
    argv = ["build", "-r", "app", "--target", "linux-x86_64:3.11", "--index-url", server.url, "--no-sign",
            "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "out"), "--policy", str(policy),
            "--advisories", str(DATA)]
    code = wheelferry(argv)
    out, err = capsys.readouterr()
    assert code == 1 and "flask 0.12: advisory: PYSEC-TEST-4: Synthetic session issue; fixed in 0.12.3" in err
    assert f"advisories: {DATA} (osv-dir" in out
    assert server.count("GET", ".whl") == 0 and not (tmp_path / "out").exists()
    policy.write_text('[advisories]\nignore = [{ id = "PYSEC-TEST-4", reason = "session unused" }]\n')
    assert wheelferry(argv) == 0
    assert "policy: flask 0.12: PYSEC-TEST-4 ignored: session unused" in capsys.readouterr().out


def test_advisories_command_summarises_or_names_the_bad_file(tmp_path: Path, capsys: Any) -> None:
    code, out, err = _audit(capsys, "advisories", str(as_pypa_checkout(DATA, tmp_path / "db")))
    assert code == 0, err
    assert "(osv-dir, sha256 " in out and "14 records, newest modified 2024-03-01T00:00:00Z" in out
    assert "9 live records about 4 PyPI packages, 1 withdrawn, 4 malformed (skipped)" in out
    out = tmp_path / "converted.zip"
    code, text, err = _audit(capsys, "advisories", str(tmp_path / "db"), "--write-zip", str(out))
    assert code == 0 and "wrote 14 records as OSV JSON: advisories: " in text
    first = out.read_bytes()
    assert _audit(capsys, "advisories", str(tmp_path / "db"), "--write-zip", str(out))[0] == 0
    assert out.read_bytes() == first  # deterministic
    pins = frozenset(canonicalize_name(n) for n, _ in PINS)
    assert {f.ids for f in findings(scan(out, pins), PINS)} == \
        {f.ids for f in findings(scan(tmp_path / "db", pins), PINS)}
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "A.json").write_text('{"id": "A", "modified": "2024"}')
    (bad / "B.json").write_text('{"id": "B", ')
    code, out, err = _audit(capsys, "advisories", str(bad))
    assert code == 1 and len(err.strip().splitlines()) <= 2 and "Traceback" not in err
    assert "advisory record B.json does not parse as JSON" in err
    (tmp_path / "not.zip").write_bytes(b"not a zip at all")
    code, out, err = _audit(capsys, "advisories", str(tmp_path / "not.zip"))
    assert code == 1 and "cannot be read as a zip of OSV records" in err and "Traceback" not in err
    code, out, err = _audit(capsys, "advisories", str(tmp_path / "missing"))
    assert code == 1 and "does not exist" in err


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".json", ".yaml", ".zip"]))
def test_advisories_command_on_any_bytes_is_one_error_line(tmp_path: Path, capsys: Any, data: bytes,
                                                           suffix: str) -> None:
    from wheelferry.offline.cli import main

    d = tmp_path / "cli-fuzz"
    d.mkdir(exist_ok=True)
    for old in d.iterdir():
        old.unlink()
    target = d / f"R{suffix}"
    target.write_bytes(data)
    code = main(["advisories", str(target if suffix == ".zip" else d)])
    err = capsys.readouterr().err
    assert code in (0, 1) and "Traceback" not in err
    if code == 1:
        lines = err.splitlines()
        assert lines[0].startswith("error: ") and len(lines) <= 2 and lines[1:] == [
            x for x in lines[1:] if x.startswith("hint: ")]
