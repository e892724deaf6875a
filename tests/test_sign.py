"""Signing: key checks before any download, detached signatures checked with real gpgv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.gpgkeys import PASSPHRASE, GpgKeys
from wheelferry.errors import SigningError, UsageError, WheelferryError
from wheelferry.sign import (
    SigningKey,
    StreamSigner,
    check_can_sign,
    check_signing_key,
    export_public_key,
    read_passphrase,
    sign_detached,
)


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--no-tty", "--quiet", *args],
                          input=stdin, capture_output=True, check=True).stdout


@pytest.fixture
def home(gpg_keys: GpgKeys) -> Iterator[Path]:
    """A private copy of the key home: its own gpg-agent, so no cached passphrase leaks in."""
    path = Path(tempfile.mkdtemp(prefix="wfs", dir="/tmp"))
    os.chmod(path, 0o700)
    for name in ("pubring.kbx", "trustdb.gpg"):
        shutil.copy2(gpg_keys.home / name, path / name)
    shutil.copytree(gpg_keys.home / "private-keys-v1.d", path / "private-keys-v1.d")
    try:
        yield path
    finally:
        subprocess.run(["gpgconf", "--homedir", str(path), "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(path, ignore_errors=True)


def _gpgv(keys: GpgKeys, name: str, signed: Path, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    armored = keys.export(name, path=tmp_path / f"{name}.asc")
    keyring = tmp_path / f"{name}.gpg"
    keyring.write_bytes(subprocess.run(["gpg", "--dearmor"], input=armored.read_bytes(),
                                       capture_output=True, check=True).stdout)
    return subprocess.run(["gpgv", "--keyring", str(keyring), str(signed) + ".asc", str(signed)],
                          capture_output=True, check=False)


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "out" / "demo.tar"
    path.parent.mkdir()
    path.write_bytes(b"bundle bytes\n" * 1000)
    return path


def test_good_key(gpg_keys: GpgKeys, home: Path) -> None:
    fpr = gpg_keys.fpr["good"]
    spaced = " ".join(fpr[i:i + 4] for i in range(0, 40, 4)).lower()
    key = check_signing_key(spaced, str(home))
    assert key == SigningKey(fpr, (gpg_keys.uid("good"),), None)


def test_missing_and_malformed_fingerprints(home: Path) -> None:
    with pytest.raises(SigningError, match="no key 0{40}") as exc:
        check_signing_key("0" * 40, str(home))
    assert exc.value.hint
    with pytest.raises(UsageError, match="not a full key fingerprint"):
        check_signing_key("A63EDA30", str(home))


def test_expired_key_fails_early(gpg_keys: GpgKeys, home: Path) -> None:
    with pytest.raises(SigningError, match="expired on 2020-01-02"):
        check_signing_key(gpg_keys.fpr["expired"], str(home))


def test_revoked_key_fails_early(gpg_keys: GpgKeys, home: Path) -> None:
    _gpg(home, "--import", stdin=gpg_keys.revocations["revoked"])
    with pytest.raises(SigningError, match="revoked"):
        check_signing_key(gpg_keys.fpr["revoked"], str(home))


def test_public_key_without_secret_part(gpg_keys: GpgKeys, tmp_path: Path) -> None:
    bare = Path(tempfile.mkdtemp(prefix="wfp", dir="/tmp"))
    try:
        os.chmod(bare, 0o700)
        _gpg(bare, "--import", str(gpg_keys.export("good", path=tmp_path / "good.asc")))
        with pytest.raises(SigningError, match="no secret part"):
            check_signing_key(gpg_keys.fpr["good"], str(bare))
    finally:
        subprocess.run(["gpgconf", "--homedir", str(bare), "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(bare, ignore_errors=True)


def test_certify_only_key_cannot_sign(home: Path) -> None:
    uid = "Wheelferry Test Certify <certify@example.test>"
    _gpg(home, "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", uid,
         "ed25519", "cert", "never")
    listing = _gpg(home, "--with-colons", "--list-keys", uid).decode()
    fpr = next(ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr:"))
    with pytest.raises(SigningError, match="no usable signing"):
        check_signing_key(fpr, str(home))


def test_signature_verifies_with_gpgv(gpg_keys: GpgKeys, home: Path, payload: Path,
                                      tmp_path: Path) -> None:
    key = check_signing_key(gpg_keys.fpr["good"], str(home))
    sig = sign_detached(payload, key, str(home), None)
    assert sig == payload.with_name("demo.tar.asc")
    assert sig.read_text().startswith("-----BEGIN PGP SIGNATURE-----")
    assert sorted(p.name for p in payload.parent.iterdir()) == ["demo.tar", "demo.tar.asc"]
    assert _gpgv(gpg_keys, "good", payload, tmp_path).returncode == 0
    payload.write_bytes(payload.read_bytes() + b"x")
    assert _gpgv(gpg_keys, "good", payload, tmp_path).returncode != 0


def test_signing_subkey_is_used(gpg_keys: GpgKeys, home: Path, payload: Path, tmp_path: Path) -> None:
    key = check_signing_key(gpg_keys.fpr["subkey"], str(home))
    assert key.fingerprint == gpg_keys.fpr["subkey"]
    sign_detached(payload, key, str(home), None)
    proc = _gpgv(gpg_keys, "subkey", payload, tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_protected_key_with_passphrase_file(gpg_keys: GpgKeys, home: Path, payload: Path,
                                            tmp_path: Path) -> None:
    pfile = tmp_path / "pass"
    pfile.write_text(PASSPHRASE + "\n")
    key = check_signing_key(gpg_keys.fpr["protected"], str(home))
    sign_detached(payload, key, str(home), read_passphrase(pfile))
    assert _gpgv(gpg_keys, "protected", payload, tmp_path).returncode == 0


def test_wrong_passphrase_fails_and_leaves_nothing(gpg_keys: GpgKeys, home: Path, payload: Path) -> None:
    key = check_signing_key(gpg_keys.fpr["protected"], str(home))
    with pytest.raises(SigningError, match="bad passphrase") as exc:
        sign_detached(payload, key, str(home), "wrong")
    assert "passphrase-file" in (exc.value.hint or "")
    assert "wrong" not in str(exc.value)
    assert sorted(p.name for p in payload.parent.iterdir()) == ["demo.tar"]


@pytest.mark.parametrize("passphrase", ["wrong", None])
def test_build_tries_the_passphrase_before_any_download(
        gpg_keys: GpgKeys, home: Path, tmp_path: Path, index_server: Callable[..., Any],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, passphrase: str | None) -> None:
    from tests.support.wheels import build_wheel
    from wheelferry.cli import main

    build_wheel(tmp_path / "wheels", "app", "1.0")
    server = index_server(tmp_path / "wheels")
    monkeypatch.delenv("WHEELFERRY_PASSPHRASE", raising=False)
    extra = []
    if passphrase is not None:
        (tmp_path / "pass").write_text(passphrase + "\n")
        extra = ["--passphrase-file", str(tmp_path / "pass")]
    code = main(["build", "-r", "app", "--target", "linux-x86_64:3.11", "--index-url", server.url,
                 "--sign-key", gpg_keys.fpr["protected"], "--gnupghome", str(home), *extra,
                 "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "out"), "--json"])
    assert code == 1
    message = json.loads(capsys.readouterr().out)["message"]
    assert "could not sign a test message" in message
    assert server.requests == [], "nothing is locked or fetched with a key that cannot sign"
    assert not (tmp_path / "out").exists()
    # With the right passphrase the same check passes.
    check_can_sign(check_signing_key(gpg_keys.fpr["protected"], str(home)), str(home), PASSPHRASE)


def test_protected_key_without_passphrase_fails_with_a_hint(gpg_keys: GpgKeys, home: Path,
                                                            payload: Path) -> None:
    key = check_signing_key(gpg_keys.fpr["protected"], str(home))
    with pytest.raises(SigningError, match="could not sign demo.tar") as exc:
        sign_detached(payload, key, str(home), None)
    assert "WHEELFERRY_PASSPHRASE" in (exc.value.hint or "")
    assert sorted(p.name for p in payload.parent.iterdir()) == ["demo.tar"]


def test_export_public_key_feeds_gpgv(gpg_keys: GpgKeys, home: Path, payload: Path,
                                      tmp_path: Path) -> None:
    key = check_signing_key(gpg_keys.fpr["good"], str(home))
    out = export_public_key(key, str(home), tmp_path / "demo.pub.asc")
    sign_detached(payload, key, str(home), None)
    keyring = tmp_path / "k.gpg"
    keyring.write_bytes(subprocess.run(["gpg", "--dearmor"], input=out.read_bytes(),
                                       capture_output=True, check=True).stdout)
    proc = subprocess.run(["gpgv", "--keyring", str(keyring), f"{payload}.asc", str(payload)],
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_read_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WHEELFERRY_PASSPHRASE", raising=False)
    assert read_passphrase(None) is None
    monkeypatch.setenv("WHEELFERRY_PASSPHRASE", "from env")
    assert read_passphrase(None) == "from env"
    f = tmp_path / "p"
    f.write_text("first line\r\nsecond\n")
    assert read_passphrase(f) == "first line"
    with pytest.raises(UsageError, match="cannot read the passphrase file"):
        read_passphrase(tmp_path / "missing")


def test_signed_bundle_passes_the_offline_verifier(gpg_keys: GpgKeys, home: Path, tmp_path: Path,
                                                   make_wheel: Callable[..., Path]) -> None:
    from tests.support.bundles import host_markers, make_lock
    from wheelferry.bundle import write_bundle
    from wheelferry.offline.verify import verify_bundle

    wheels = [make_wheel("alpha", "1.0")]
    lock = make_lock(wheels, name="demo", targets={"host": host_markers()})
    key = check_signing_key(gpg_keys.fpr["good"], str(home))
    result = write_bundle(tmp_path, name="demo", lock=lock,
                          lock_files={"wheelferry.lock.json": lock.dumps().encode()},
                          wheel_paths={w.name: w for w in wheels}, sequence=1, created=1767225600,
                          expires=None, tool="t")
    sign_detached(result.path, key, str(home), None)
    keyring = export_public_key(key, str(home), tmp_path / "demo.pub.asc")
    verified = verify_bundle(result.path, keyring=keyring, trusted=[key.fingerprint],
                             state_dir=tmp_path / "state")
    assert verified.signature is not None
    assert verified.manifest == result.manifest


def _stream_sign(key: SigningKey, home: Path, payload: Path, passphrase: str | None = None) -> bytes:
    signer = StreamSigner(key, str(home), passphrase)
    try:
        data = payload.read_bytes()
        for at in range(0, len(data), 3001):
            signer.feed(data[at:at + 3001])
        return signer.finish(payload)
    finally:
        signer.abort()


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The signature must come out of the signed message, not from signing the file again."""
    def refuse(*_args: object, **_kw: object) -> bytes:
        raise AssertionError("fell back to an ordinary detached signature")

    monkeypatch.setattr("wheelferry.sign.detached_signature", refuse)


@pytest.mark.parametrize("name", ["good", "subkey", "protected"])
@pytest.mark.usefixtures("no_fallback")
def test_signature_made_while_writing_verifies_with_gpgv(gpg_keys: GpgKeys, home: Path, payload: Path,
                                                         tmp_path: Path, name: str) -> None:
    payload.write_bytes(os.urandom(3 << 20))  # several of gpg's output pieces
    key = check_signing_key(gpg_keys.fpr[name], str(home))
    armored = _stream_sign(key, home, payload, PASSPHRASE if name == "protected" else None)
    assert armored.startswith(b"-----BEGIN PGP SIGNATURE-----\n\n")
    payload.with_name("demo.tar.asc").write_bytes(armored)
    proc = _gpgv(gpg_keys, name, payload, tmp_path)
    assert proc.returncode == 0, proc.stderr
    payload.write_bytes(payload.read_bytes()[:-1])
    assert _gpgv(gpg_keys, name, payload, tmp_path).returncode != 0


def test_signature_made_while_writing_refuses_a_wrong_passphrase(gpg_keys: GpgKeys, home: Path,
                                                                 payload: Path) -> None:
    key = check_signing_key(gpg_keys.fpr["protected"], str(home))
    with pytest.raises(SigningError, match="bad passphrase") as exc:
        _stream_sign(key, home, payload, "wrong")
    assert "wrong" not in str(exc.value)
    with pytest.raises(SigningError, match="could not sign demo.tar") as exc:
        _stream_sign(key, home, payload, None)
    assert "WHEELFERRY_PASSPHRASE" in (exc.value.hint or "")


def test_failed_signature_leaves_no_bundle(gpg_keys: GpgKeys, home: Path, tmp_path: Path,
                                           make_wheel: Callable[..., Path]) -> None:
    from tests.support.bundles import host_markers, make_lock
    from wheelferry.bundle import write_bundle

    wheels = [make_wheel("alpha", "1.0")]
    lock = make_lock(wheels, name="demo", targets={"host": host_markers()})
    key = check_signing_key(gpg_keys.fpr["protected"], str(home))
    signer = StreamSigner(key, str(home), "wrong")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SigningError, match="bad passphrase"):
        write_bundle(out, name="demo", lock=lock, lock_files={}, wheel_paths={w.name: w for w in wheels},
                     sequence=1, created=1767225600, expires=None, tool="t", tee=signer.feed,
                     before_publish=signer.finish)
    signer.abort()
    assert list(out.iterdir()) == []


def test_aborted_signature_stops_gpg(gpg_keys: GpgKeys, home: Path) -> None:
    key = check_signing_key(gpg_keys.fpr["good"], str(home))
    signer = StreamSigner(key, str(home), None)
    signer.feed(b"x" * (4 << 20))
    signer.abort()
    assert signer._proc.returncode is not None and signer._proc.returncode < 0  # killed, not finished


@pytest.mark.parametrize("compress", [None, "gzip"])
@pytest.mark.usefixtures("no_fallback")
def test_bundle_signed_while_written_verifies_with_gpgv(gpg_keys: GpgKeys, home: Path, tmp_path: Path,
                                                       make_wheel: Callable[..., Path],
                                                       compress: str | None) -> None:
    from tests.support.bundles import host_markers, make_lock
    from wheelferry.bundle import write_bundle

    wheels = [make_wheel("alpha", "1.0"), make_wheel("beta", "2.0")]
    lock = make_lock(wheels, name="demo", targets={"host": host_markers()})
    key = check_signing_key(gpg_keys.fpr["good"], str(home))
    signer = StreamSigner(key, str(home), None)
    made: list[bytes] = []
    (tmp_path / "out").mkdir()
    result = write_bundle(tmp_path / "out", name="demo", lock=lock, lock_files={},
                          wheel_paths={w.name: w for w in wheels}, sequence=1, created=1767225600,
                          expires=None, tool="t", compress=compress, tee=signer.feed,
                          before_publish=lambda tmp: made.append(signer.finish(tmp)))
    result.path.with_name(result.path.name + ".asc").write_bytes(made[0])
    proc = _gpgv(gpg_keys, "good", result.path, tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_signing_runs_the_gpg_wheelferry_gpg_names(gpg_keys: GpgKeys, home: Path, payload: Path,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which("gpg")
    assert real is not None
    log = tmp_path / "calls.log"
    wrapper = tmp_path / "wrapped" / "gpg"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{real}" "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    monkeypatch.setenv("WHEELFERRY_GPG", str(wrapper))
    key = check_signing_key(gpg_keys.fpr["good"], str(home))  # python-gnupg
    sign_detached(payload, key, str(home), None)
    streamed = _stream_sign(key, home, payload, None)  # gpg --sign fed while writing
    calls = log.read_text(encoding="utf-8").splitlines()
    assert any("--list-secret-keys" in c for c in calls)
    assert any("--detach-sign" in c for c in calls) and any(c.split().count("--sign") for c in calls)
    assert _gpgv(gpg_keys, "good", payload, tmp_path).returncode == 0
    payload.with_name("demo.tar.asc").write_bytes(streamed)
    assert _gpgv(gpg_keys, "good", payload, tmp_path).returncode == 0


def test_bad_wheelferry_gpg_stops_signing(gpg_keys: GpgKeys, home: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHEELFERRY_GPG", str(tmp_path / "no-such-gpg"))
    with pytest.raises(WheelferryError, match=r"^WHEELFERRY_GPG=.*no-such-gpg is not an executable file$") as e:
        check_signing_key(gpg_keys.fpr["good"], str(home))
    assert e.value.exit_code == 1
