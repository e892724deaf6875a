"""The policy gate: licence allow/deny, unknown licences, denied version ranges, release age, bad files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.bundles import host_markers, make_bundle, make_lock
from tests.support.wheels import build_wheel
from wheelferry.errors import PolicyFileError, PolicyViolation
from wheelferry.lockfile import Lock
from wheelferry.offline.cli import main
from wheelferry.offline.policy import (
    PackageFacts,
    evaluate,
    facts_from_lock,
    parse_denied,
    policy_from_text,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
POLICY = """\
# what may ship
[licenses]
allow = ["MIT", "BSD-3-Clause", "Apache-2.0",  # the usual three
         "MPL-2.0"]
deny = ["GPL-3.0-only"]
unknown = "fail"

[packages]
deny = ["leftpad", "urllib3 >=1.0, <1.26.18", 'pyyaml~=5.3']

[releases]
max-age-days = 365
"""


@pytest.mark.parametrize(("text", "where"), [
    ("[licenses]\nallow = [\"MIT\"\n", "end of document"), ("[licenses]\n[licenses]\n", "line 2"),
    ("a = 'x\n", "end of document"), ("[releases]\nmax-age-days = 3 4\n", "line 2"),
    ("x = \"\\q\"\n", "line 1"), ('x = "\\UFFFFFFFF"\n', "line 1"),
])
def test_a_malformed_toml_file_names_the_place(text: str, where: str) -> None:
    with pytest.raises(PolicyFileError, match=f"p.toml: .*{where}"):
        policy_from_text(text, "p.toml")


@pytest.mark.parametrize(("version", "op", "spec", "hit"), [
    ("1.26.17", "<", "1.26.18", True), ("1.26.18", "<", "1.26.18", False), ("1.0", "==", "1.0.0", True),
    ("5.3.1", "~=", "5.3", True), ("5.4", "~=", "5.3.0", False), ("1.0rc1", "<", "1.0", False),
    ("1.0.dev1", "<", "1.0a1", True), ("1.0.post1", ">", "1.0", False), ("1.0.post1", ">=", "1.0", True),
    ("2.1.7", "==", "2.1.*", True),
    ("2.10", "==", "2.1.*", False), ("1!0.1", ">", "9.9", True), ("1.0+local", "==", "1.0", True),
    ("3.0", "!=", "3.0.*", False),
])
def test_denied_version_ranges(version: str, op: str, spec: str, hit: bool) -> None:
    # A deny entry's range is judged as packaging judges it, pre-releases included.
    denied = parse_denied(f"Some_Pkg{op}{spec}", "p.toml")
    assert denied.matches("some-pkg", version) is hit
    assert denied.matches("other", version) is False


def _policy(text: str = POLICY) -> Any:
    return policy_from_text(text, "p.toml")


def _facts(name: str, version: str = "1.0", spdx: str | None = "MIT", uploaded: str | None = None) -> PackageFacts:
    return PackageFacts(name, version, f"{name}-{version}-py3-none-any.whl", spdx, spdx or "UNKNOWN",
                        uploaded or "2025-10-01T00:00:00Z")


def test_every_rule() -> None:
    report = evaluate(_policy(), [
        _facts("ok"), _facts("either", spdx="GPL-3.0-only OR MIT"),
        _facts("both", spdx="GPL-3.0-only AND MIT"), _facts("weird", spdx="Zlib"),
        _facts("nolicence", spdx=None), _facts("LeftPad"), _facts("urllib3", "1.26.17"),
        _facts("urllib3", "1.26.18"), _facts("PyYAML", "5.3.1"), _facts("old", uploaded="2024-06-01T10:00:00.5Z"),
    ], now=NOW)
    got = {(v.package, v.rule) for v in report.violations}
    assert got == {("both", "licence-denied"), ("weird", "licence-not-allowed"),
                   ("nolicence", "licence-unknown"), ("LeftPad", "package-denied"),
                   ("urllib3", "package-denied"), ("PyYAML", "package-denied"), ("old", "release-too-old")}
    assert [v.version for v in report.violations if v.package == "urllib3"] == ["1.26.17"]
    with pytest.raises(PolicyViolation) as e:
        report.raise_if_failed()
    assert "7 policy violation(s)" in str(e.value) and "old 1.0: release-too-old" in str(e.value)


def test_unknown_licence_can_warn() -> None:
    report = evaluate(_policy(POLICY.replace('unknown = "fail"', 'unknown = "warn"')),
                      [_facts("nolicence", spdx=None)], now=NOW)
    assert not report.violations and report.warnings[0].rule == "licence-unknown"


def test_build_skips_licences_and_says_so() -> None:
    report = evaluate(_policy(), [_facts("nolicence", spdx=None), _facts("leftpad")], licences=False, now=NOW)
    assert [v.rule for v in report.violations] == ["package-denied"]
    assert "once they are fetched, before anything is signed" in report.skipped[0]


@pytest.mark.parametrize(("text", "where"), [
    ("[licenses]\nalow = []\n", "licenses.alow is not a known key"),
    ("[licences]\n", "[licences] is not a policy table"),
    ("[licenses]\nunknown = \"maybe\"\n", "licenses.unknown"),
    ("[licenses]\nallow = \"MIT\"\n", "licenses.allow must be a list of strings"),
    ("[releases]\nmax-age-days = -1\n", "must not be negative"),
    ("[packages]\ndeny = [\"x<<1\"]\n", "packages.deny[0]"),
    ("[packages]\ndeny = [\"x~=1\"]\n", "~= needs at least two"),
    ("[licenses]\ndeny = [\"MIT AND\"]\n", "is not an SPDX id"),
])
def test_malformed_policy_names_the_place(text: str, where: str) -> None:
    with pytest.raises(PolicyFileError, match="p.toml") as e:
        _policy(text)
    assert where in str(e.value)


def test_denied_entry_parts() -> None:
    d = parse_denied("Foo.Bar >=1.0,<2", "w")
    assert d.name == "foo-bar" and d.matches("foo_bar", "1.5") and not d.matches("foo_bar", "2.0")


def _aged_lock(wheels: list[Path], when: str) -> Lock:
    lock = make_lock(wheels, name="demo", targets={"host": host_markers()})
    return dataclasses.replace(lock, wheels={k: dataclasses.replace(w, upload_time=when)
                                             for k, w in lock.wheels.items()})


def test_facts_from_lock_carry_upload_time(tmp_path: Path) -> None:
    lock = _aged_lock([build_wheel(tmp_path, "alpha", "1.0")], "2020-01-01T00:00:00Z")
    report = evaluate(_policy(), facts_from_lock(lock), licences=False, now=NOW)
    assert [v.rule for v in report.violations] == ["release-too-old"]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    d = tmp_path / "built"
    wheels = [build_wheel(d, "alpha", "1.0", license_expression="MIT"),
              build_wheel(d, "beta", "2.0", license="GPL-3.0-only"),
              build_wheel(d, "gamma", "0.1", license=None)]
    return make_bundle(tmp_path, wheels, lock=_aged_lock(wheels, "2001-01-01T00:00:00Z"))


def _audit(capsys: Any, bundle: Path, policy: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["audit", str(bundle), "--allow-unsigned", "--policy", str(policy), *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_audit_policy_lists_every_violation(tmp_path: Path, bundle: Path, capsys: Any) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    code, out, _ = _audit(capsys, bundle, policy, "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["error"] == "PolicyViolation"
    for needle in ("beta 2.0: licence-denied", "gamma 0.1: licence-unknown", "alpha 1.0: release-too-old"):
        assert needle in doc["message"]
    found = {(v["package"], v["rule"]): v for v in doc["policy"]["violations"]}
    assert set(found) >= {("beta", "licence-denied"), ("gamma", "licence-unknown"), ("alpha", "release-too-old")}
    beta = found[("beta", "licence-denied")]
    assert beta["version"] == "2.0" and beta["file"].startswith("beta-2.0-") and beta["evidence"].startswith("License")
    assert found[("alpha", "release-too-old")]["evidence"].startswith("upload-time ")
    assert doc["policy"]["ok"] is False


def test_audit_policy_passes_with_warnings(tmp_path: Path, bundle: Path, capsys: Any) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[licenses]\ndeny = ["AGPL-3.0-only"]\nunknown = "warn"\n')
    code, out, err = _audit(capsys, bundle, policy)
    assert code == 0, err
    assert "policy: gamma 0.1: licence-unknown" in err and "passed (3 wheels)" in out


def test_audit_malformed_policy_is_exit_2_before_verifying(tmp_path: Path, capsys: Any) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[licenses]\nallow = [\"MIT\" \"BSD-3-Clause\"]\nunknown = \"warn\"\n")
    code, _, err = _audit(capsys, tmp_path / "nonexistent.tar", policy)
    assert code == 2 and "policy.toml" in err and "line 2" in err


def test_build_policy_refuses_before_any_download(index_server: Any, tmp_path: Path, capsys: Any) -> None:
    from wheelferry.cli import main as wheelferry

    d = tmp_path / "repo"
    build_wheel(d, "app", "1.0", requires=["dep"])
    build_wheel(d, "dep", "1.3")
    server = index_server(d)
    policy = tmp_path / "policy.toml"
    policy.write_text('[licenses]\nallow = ["MIT"]\n[packages]\ndeny = ["dep>=1.2,<2"]\n')
    argv = ["build", "-r", "app", "--target", "linux-x86_64:3.11", "--index-url", server.url, "--no-sign",
            "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "out"), "--policy", str(policy)]
    code = wheelferry(argv)
    err = capsys.readouterr().err
    assert code == 1 and "dep 1.3: package-denied: matches 'dep>=1.2,<2'" in err
    assert server.count("GET", ".whl") == 0 and not (tmp_path / "out").exists()
    policy.write_text('[licenses]\nallow = ["MIT"]\n[packages]\ndeny = ["dep<1"]\n')
    assert wheelferry(argv) == 0
    out = capsys.readouterr().out
    assert "licence rules: judged on the wheels once they are fetched" in out
    assert "the wheels pass (licence, package and age rules)" in out


def test_build_policy_refuses_a_denied_licence_before_signing(index_server: Any, gpg_keys: Any, tmp_path: Path,
                                                              capsys: Any) -> None:
    from wheelferry.cli import main as wheelferry

    d = tmp_path / "repo"
    build_wheel(d, "app", "1.0", requires=["cuda-thing"])
    build_wheel(d, "cuda-thing", "12.2", license="NVIDIA Proprietary Software",
                classifiers=["License :: Other/Proprietary License"])
    server = index_server(d)
    policy = tmp_path / "policy.toml"
    policy.write_text('[licenses]\ndeny = ["LicenseRef-NVIDIA-Proprietary"]\n')
    out_dir = tmp_path / "out"
    argv = ["build", "-r", "app", "--target", "linux-x86_64:3.11", "--index-url", server.url,
            "--sign-key", gpg_keys.fpr["good"], "--gnupghome", str(gpg_keys.home),
            "--cache", str(tmp_path / "cache"), "-o", str(out_dir), "--policy", str(policy)]
    code = wheelferry(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    assert "cuda-thing 12.2: licence-denied: LicenseRef-NVIDIA-Proprietary" in err
    assert server.count("GET", ".whl") == 2  # judged on the fetched wheels ...
    assert not out_dir.exists()  # ... and nothing written, nothing signed
    policy.write_text('[licenses]\ndeny = ["GPL-3.0-only"]\n')
    assert wheelferry(argv) == 0
    assert sorted(p.suffix for p in out_dir.glob("*.tar*")) == [".asc", ".tar"]


def test_build_malformed_policy_is_exit_2(tmp_path: Path, capsys: Any) -> None:
    from wheelferry.cli import main as wheelferry

    policy = tmp_path / "policy.toml"
    policy.write_text("[packages]\ndeny = [\"dep>=\"]\n")
    code = wheelferry(["build", "-r", "app", "--no-sign", "--policy", str(policy), "-o", str(tmp_path / "o")])
    assert code == 2 and "packages.deny[0]" in capsys.readouterr().err and not (tmp_path / "o").exists()
