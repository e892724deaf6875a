"""N of M: the builder's signature and approvals by distinct pinned keys, with real gpg keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.bundles import make_bundle
from tests.support.gpgkeys import GpgKeys
from tests.support.wheels import build_wheel
from wheelferry.errors import VerificationError
from wheelferry.offline.approvals import approval_path
from wheelferry.offline.cli import main
from wheelferry.offline.verify import verify_bundle


@pytest.fixture
def wheels(tmp_path: Path) -> list[Path]:
    return [build_wheel(tmp_path / "built", "alpha", "1.0")]


@pytest.fixture
def ring(gpg_keys: GpgKeys, tmp_path: Path) -> Path:
    # One export per key, concatenated: gpg applies a revocation certificate only right after its key.
    names = ("good", "other", "subkey", "expired", "revoked", "protected")
    parts = [gpg_keys.export(n, path=tmp_path / "keys" / f"{n}.asc").read_bytes() for n in names]
    ring = tmp_path / "KEYS.asc"
    ring.write_bytes(b"".join(parts))
    return ring


def _approve(keys: GpgKeys, name: str, tar: Path) -> Path:
    return keys.sign(name, tar, approval_path(tar, keys.fpr[name]))


def _verify(tar: Path, ring: Path, trusted: list[str], tmp_path: Path, threshold: int = 1) -> Any:
    return verify_bundle(tar, keyring=ring, trusted=trusted, state_dir=tmp_path / "state",
                         threshold=threshold)


def test_two_of_three_accepted(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path], ring: Path) -> None:
    tar = make_bundle(tmp_path, wheels)
    gpg_keys.sign("good", tar)
    _approve(gpg_keys, "other", tar)
    pinned = [gpg_keys.fpr[n] for n in ("good", "other", "protected")]
    b = _verify(tar, ring, pinned, tmp_path, threshold=2)
    assert b.signers is not None
    assert [s.fingerprint for s in b.signers.counted] == [gpg_keys.fpr["good"], gpg_keys.fpr["other"]]
    assert gpg_keys.uid("other") in b.signed_by()
    with pytest.raises(VerificationError, match="2 of the 3 required"):
        _verify(tar, ring, pinned, tmp_path, threshold=3)


def test_one_signer_refused_and_cli_names_signers(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                                  ring: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tar = make_bundle(tmp_path, wheels)
    gpg_keys.sign("good", tar)
    pinned = [gpg_keys.fpr["good"], gpg_keys.fpr["other"]]
    with pytest.raises(VerificationError, match=r"1 of the 2 required.*" + gpg_keys.fpr["good"]):
        _verify(tar, ring, pinned, tmp_path, threshold=2)
    keys = ["--keyring", str(ring), *(a for f in pinned for a in ("--trusted-key", f))]
    assert main(["verify", str(tar), *keys, "--threshold", "2"]) == 1
    assert "1 of the 2 required" in capsys.readouterr().err
    _approve(gpg_keys, "other", tar)
    assert main(["verify", str(tar), *keys, "--threshold", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {s["fingerprint"] for s in doc["signatures"]} == set(pinned)
    assert all(s["uid"] for s in doc["signatures"])
    assert main(["verify", str(tar), *keys, "--threshold", "0"]) == 2


def test_same_key_in_two_files_counts_once(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                           ring: Path) -> None:
    tar = make_bundle(tmp_path, wheels)
    gpg_keys.sign("good", tar)
    _approve(gpg_keys, "good", tar)
    gpg_keys.sign("good", tar, tar.with_name(tar.name + ".again.asc"))
    pinned = [gpg_keys.fpr["good"], gpg_keys.fpr["other"]]
    with pytest.raises(VerificationError, match="1 of the 2 required.*counts once"):
        _verify(tar, ring, pinned, tmp_path, threshold=2)
    assert len(_verify(tar, ring, pinned, tmp_path).signers.counted) == 1


def test_subkey_and_primary_count_once(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                       ring: Path) -> None:
    tar = make_bundle(tmp_path, wheels)
    gpg_keys.sign("subkey", tar)  # by the signing subkey
    # and once by the primary itself (certify-only keys can still be made to sign with '!')
    primary = gpg_keys.fpr["subkey"]
    other = tar.with_name(tar.name + "." + primary[-16:] + ".asc")
    gpg_keys.sign("subkey", tar, other)
    pinned = [primary, gpg_keys.fpr["good"]]
    with pytest.raises(VerificationError, match="1 of the 2 required"):
        _verify(tar, ring, pinned, tmp_path, threshold=2)
    b = _verify(tar, ring, pinned, tmp_path)
    assert b.signers.counted[0].fingerprint == primary
    assert b.signers.counted[0].signer == gpg_keys.signing_fpr["subkey"]


def test_untrusted_extra_signer_ignored_and_named(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                                  ring: Path) -> None:
    tar = make_bundle(tmp_path, wheels)
    gpg_keys.sign("good", tar)
    _approve(gpg_keys, "other", tar)  # other is in the keyring but not pinned
    _approve(gpg_keys, "protected", tar)
    pinned = [gpg_keys.fpr["good"], gpg_keys.fpr["protected"]]
    b = _verify(tar, ring, pinned, tmp_path, threshold=2)
    assert len(b.signers.counted) == 2
    assert any(gpg_keys.fpr["other"] in line and "not pinned" in line for line in b.signers.ignored)
    # A signer missing from the keyring is ignored and named too.
    small = gpg_keys.export("good", "protected", path=tmp_path / "SMALL.asc")
    b = _verify(tar, small, pinned, tmp_path, threshold=2)
    assert any("not in SMALL.asc" in line for line in b.signers.ignored)


def test_approval_of_another_bundle_refused(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                            ring: Path) -> None:
    tar = make_bundle(tmp_path, wheels, sequence=2)
    gpg_keys.sign("good", tar)
    elsewhere = tmp_path / "old"
    elsewhere.mkdir()
    old = make_bundle(elsewhere, wheels, sequence=1)
    copied = _approve(gpg_keys, "other", old)
    approval_path(tar, gpg_keys.fpr["other"]).write_bytes(copied.read_bytes())
    with pytest.raises(VerificationError, match="does not match the data.*another bundle"):
        _verify(tar, ring, [gpg_keys.fpr["good"], gpg_keys.fpr["other"]], tmp_path, threshold=1)


def test_expired_and_revoked_approvers_not_counted(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                                   ring: Path) -> None:
    tar = make_bundle(tmp_path, wheels)
    gpg_keys.sign("good", tar)
    _approve(gpg_keys, "expired", tar)
    _approve(gpg_keys, "revoked", tar)
    pinned = [gpg_keys.fpr[n] for n in ("good", "expired", "revoked")]
    with pytest.raises(VerificationError) as e:
        _verify(tar, ring, pinned, tmp_path, threshold=2)
    text = str(e.value)
    assert "1 of the 2 required" in text
    assert f"{gpg_keys.fpr['expired']}" in text and "expired on" in text
    assert f"{gpg_keys.fpr['revoked']}" in text and "was revoked" in text


def test_manifest_approvals_not_lowered_by_threshold(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                                     ring: Path) -> None:
    def two(members: list[Any]) -> list[Any]:
        i = next(i for i, m in enumerate(members) if m.name.endswith("/MANIFEST.json"))
        doc = json.loads(members[i].data)
        doc["approvals"] = 2
        members[i] = members[i].with_data(json.dumps(doc).encode())
        return members

    tar = make_bundle(tmp_path, wheels, tamper=two)
    gpg_keys.sign("good", tar)
    pinned = [gpg_keys.fpr["good"], gpg_keys.fpr["other"]]
    with pytest.raises(VerificationError, match="1 of the 2 required"):
        _verify(tar, ring, pinned, tmp_path, threshold=1)
    _approve(gpg_keys, "other", tar)
    assert _verify(tar, ring, pinned, tmp_path, threshold=1).manifest.approvals == 2


def _keys(ring: Path, *fprs: str) -> list[str]:
    return ["--keyring", str(ring), *(a for f in fprs for a in ("--trusted-key", f))]


def test_approve_writes_an_approval_that_verify_counts(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                                       ring: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tar = make_bundle(tmp_path, wheels)
    gpg_keys.sign("good", tar)
    keys = _keys(ring, gpg_keys.fpr["good"], gpg_keys.fpr["protected"])
    state = ["--state-dir", str(tmp_path / "state")]
    assert main(["verify", str(tar), *keys, *state, "--threshold", "2"]) == 1
    capsys.readouterr()
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not it\n")
    home = ["--gnupghome", str(gpg_keys.home)]
    # A copy of the home with an agent of its own: no passphrase cached from another test.
    fresh = Path(tempfile.mkdtemp(prefix="wfa", dir="/tmp")) / "h"
    shutil.copytree(gpg_keys.home, fresh, ignore=shutil.ignore_patterns("S.*", "*.lock"))
    try:
        assert main(["approve", str(tar), "--sign-key", gpg_keys.fpr["protected"], "--gnupghome", str(fresh),
                     "--passphrase-file", str(wrong), *keys]) == 1
    finally:
        subprocess.run(["gpgconf", "--homedir", str(fresh), "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(fresh.parent, ignore_errors=True)
    assert "could not sign" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("demo.tar")) == ["demo.tar",
                                                                                         "demo.tar.asc"]
    pw = tmp_path / "pw.txt"
    pw.write_text("s3cret\n")
    assert main(["approve", str(tar), "--sign-key", gpg_keys.fpr["protected"], *home,
                 "--passphrase-file", str(pw), *keys, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["approval"] == str(approval_path(tar, gpg_keys.fpr["protected"]))
    assert doc["name"] == "demo" and doc["packages"] == 1 and len(doc["sha256"]) == 64
    assert [s["fingerprint"] for s in doc["signatures"]] == [gpg_keys.fpr["good"]]
    assert main(["verify", str(tar), *keys, *state, "--threshold", "2"]) == 0
    out = capsys.readouterr().out
    assert gpg_keys.uid("good") in out and gpg_keys.uid("protected") in out
    # A tampered bundle is never approved: the check comes first.
    raw = bytearray(tar.read_bytes())
    raw[len(raw) // 2] ^= 1
    tar.write_bytes(bytes(raw))
    assert main(["approve", str(tar), "--sign-key", gpg_keys.fpr["other"], *home, *keys]) == 1
    assert not approval_path(tar, gpg_keys.fpr["other"]).exists()


def test_split_volumes_approved_and_verified(gpg_keys: GpgKeys, tmp_path: Path, ring: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from wheelferry.offline.volumes import split_bundle

    d = tmp_path / "built"
    wheels = [build_wheel(d, "alpha", "1.0", padding=12000), build_wheel(d, "beta", "2.0", padding=9000)]
    media = tmp_path / "media"
    media.mkdir()
    tar = make_bundle(tmp_path, wheels, out=media / "demo.tar")
    gpg_keys.sign("good", tar)
    list_path, _ = split_bundle(tar, -(-tar.stat().st_size // 3))
    gpg_keys.sign("good", list_path)
    tar.unlink()
    keys = _keys(ring, gpg_keys.fpr["good"], gpg_keys.fpr["other"])
    state = ["--state-dir", str(tmp_path / "state")]
    first = media / "demo.tar.000"
    assert main(["verify", str(first), *keys, *state, "--threshold", "2"]) == 1
    capsys.readouterr()
    assert main(["approve", str(first), "--sign-key", gpg_keys.fpr["other"],
                 "--gnupghome", str(gpg_keys.home), *keys]) == 0
    assert approval_path(list_path, gpg_keys.fpr["other"]).is_file()
    capsys.readouterr()
    assert main(["verify", str(first), *keys, *state, "--threshold", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {s["fingerprint"] for s in doc["signatures"]} == {gpg_keys.fpr["good"], gpg_keys.fpr["other"]}
    assert main(["verify", str(first), *keys, *state, "--threshold", "3"]) == 1
    # An approval over an edited list is tampering.
    list_path.write_bytes(list_path.read_bytes().replace(b"demo", b"demo", 1) + b" ")
    assert main(["verify", str(first), *keys, *state, "--threshold", "2"]) == 1
    assert "does not match" in capsys.readouterr().err


def test_build_approvals_recorded(index_server: Any, tmp_path: Path, gpg_keys: GpgKeys, ring: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    import tarfile

    from wheelferry.cli import main as wheelferry

    d = tmp_path / "repo"
    build_wheel(d, "app", "1.0")
    server = index_server(d)
    out = tmp_path / "out"
    assert wheelferry(["build", "-r", "app", "--target", "linux-x86_64:3.11", "--index-url", server.url,
                       "--cache", str(tmp_path / "cache"), "-o", str(out), "--approvals", "2",
                       "--sign-key", gpg_keys.fpr["good"], "--gnupghome", str(gpg_keys.home)]) == 0
    tar = out / "app.tar"
    with tarfile.open(tar) as tf:
        member = tf.extractfile("app/MANIFEST.json")
        assert member is not None and json.load(member)["approvals"] == 2
    keys = _keys(ring, gpg_keys.fpr["good"], gpg_keys.fpr["other"])
    state = ["--state-dir", str(tmp_path / "state")]
    capsys.readouterr()
    assert main(["verify", str(tar), *keys, *state, "--threshold", "1"]) == 1
    assert "1 of the 2 required" in capsys.readouterr().err
    assert wheelferry(["approve", str(tar), "--sign-key", gpg_keys.fpr["other"],
                       "--gnupghome", str(gpg_keys.home), *keys]) == 0
    assert main(["verify", str(tar), *keys, *state]) == 0
    assert wheelferry(["build", "-r", "app", "--index-url", server.url, "--approvals", "0",
                       "--no-sign", "-o", str(tmp_path / "x")]) == 2


def _network_cut_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False).returncode == 0
    except OSError:
        return False


KIT_RUN = "import sys; sys.path.insert(0, sys.argv.pop(1)); from wheelferry.offline.cli import main; " \
          "sys.exit(main(sys.argv[1:]))"


@pytest.mark.skipif(not _network_cut_works(), reason="needs unprivileged user namespaces (unshare -rn)")
def test_offline_kit_installs_a_two_of_three_bundle_with_no_network(gpg_keys: GpgKeys, tmp_path: Path,
                                                                    ring: Path) -> None:
    import sys

    from tests.support.bundles import host_markers, make_lock
    from wheelferry.pyz import write_offline_pyz

    wheels = [build_wheel(tmp_path / "w", "alpha", "1.0")]
    lock = make_lock(wheels, name="demo", targets={"host": host_markers()})

    def two(members: list[Any]) -> list[Any]:
        i = next(i for i, m in enumerate(members) if m.name.endswith("/MANIFEST.json"))
        doc = json.loads(members[i].data)
        doc["approvals"] = 2
        members[i] = members[i].with_data(json.dumps(doc).encode())
        return members

    tar = make_bundle(tmp_path, wheels, lock=lock, tamper=two)
    gpg_keys.sign("good", tar)
    kit = write_offline_pyz(tmp_path / "wheelferry-offline.pyz")
    pinned = [a for n in ("good", "other", "protected") for a in ("--trusted-key", gpg_keys.fpr[n])]
    keys = ["--keyring", str(ring), *pinned]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}

    def kit_run(*args: str, cut: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-I", "-S", "-c", KIT_RUN, str(kit), *args]
        return subprocess.run(["unshare", "-rn", *argv] if cut else argv, capture_output=True, text=True,
                              env=env, check=False, cwd=tmp_path)

    install = ("install", str(tar), *keys, "--state-dir", str(tmp_path / "state"), "--venv",
               str(tmp_path / "env"), "--json")
    refused = kit_run(*install)
    assert refused.returncode == 1 and "1 of the 2 required" in json.loads(refused.stdout)["message"]
    assert not (tmp_path / "env").exists()
    # The second person approves with the kit on the isolated side (their key in their own home).
    approved = kit_run("approve", str(tar), "--sign-key", gpg_keys.fpr["other"], "--gnupghome",
                       str(gpg_keys.home), *keys, cut=False)
    assert approved.returncode == 0, approved.stderr
    done = kit_run(*install)
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads(done.stdout)
    assert report["packages"] == ["alpha==1.0"]
    assert {x["fingerprint"] for x in report["signatures"]} == {gpg_keys.fpr["good"], gpg_keys.fpr["other"]}
    out = subprocess.run([str(tmp_path / "env" / "bin" / "python"), "-c", "import alpha; print(alpha.__version__)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1.0"


def test_audit_diff_export_index_take_threshold(gpg_keys: GpgKeys, tmp_path: Path, wheels: list[Path],
                                                ring: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tar = make_bundle(tmp_path, wheels)
    gpg_keys.sign("good", tar)
    keys = _keys(ring, gpg_keys.fpr["good"], gpg_keys.fpr["other"])
    state = ["--state-dir", str(tmp_path / "state")]
    commands = [["audit", str(tar)], ["diff", str(tar), str(tar)],
                ["export-index", str(tar), str(tmp_path / "index"), *state]]
    for cmd in commands:
        assert main([*cmd, *keys, "--threshold", "2"]) == 1, cmd
        assert "1 of the 2 required" in capsys.readouterr().err
    assert not (tmp_path / "index").exists()
    _approve(gpg_keys, "other", tar)
    for cmd in commands:
        assert main([*cmd, *keys, "--threshold", "2"]) == 0, cmd
        out = capsys.readouterr().out
        assert gpg_keys.uid("good") in out and gpg_keys.uid("other") in out, cmd


def test_signing_primary_and_its_subkey_count_once(tmp_path: Path, wheels: list[Path]) -> None:
    """A primary key that signs itself and through its signing subkey: one signer, not two."""
    from tests.support.gpgkeys import _fingerprints, _gpg

    home = Path(tempfile.mkdtemp(prefix="wfs", dir="/tmp"))
    os.chmod(home, 0o700)
    nopass = ["--pinentry-mode", "loopback", "--passphrase", ""]
    uid = "Wheelferry Test Both <both@example.test>"
    try:
        _gpg(home, *nopass, "--quick-gen-key", uid, "ed25519", "sign", "never")
        primary = _fingerprints(home, uid)[0]
        _gpg(home, *nopass, "--quick-add-key", primary, "ed25519", "sign", "never")
        sub = _fingerprints(home, uid)[1]
        tar = make_bundle(tmp_path, wheels)
        for fpr, out in ((primary, tar.with_name(tar.name + ".asc")), (sub, approval_path(tar, sub))):
            _gpg(home, *nopass, "--armor", "--detach-sign", "--local-user", fpr + "!", "--output", str(out),
                 str(tar))
        ring = tmp_path / "BOTH.asc"
        ring.write_bytes(_gpg(home, "--armor", "--export", primary).stdout)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)
    b = _verify(tar, ring, [primary], tmp_path)
    assert b.signers is not None and [s.fingerprint for s in b.signers.counted] == [primary]
    assert any("already counted" in line for line in b.signers.ignored)
    with pytest.raises(VerificationError, match="1 of the 2 required"):
        _verify(tar, ring, [primary], tmp_path, threshold=2)
