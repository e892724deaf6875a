"""Signature checks by pinned fingerprints against real gpg and throwaway keys."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.gpgkeys import GpgKeys
from wheelferry.errors import UsageError, VerificationError, WheelferryError
from wheelferry.offline.gpg import (
    GPG_ENV,
    find_gpg,
    normalize_fingerprint,
    parse_status,
    verify_signature,
)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "bundle.tar"
    path.write_bytes(b"not really a tar, but bytes to sign\n" * 100)
    return path


def _check(keys: GpgKeys, tmp_path: Path, data: Path, signer: str, ring: tuple[str, ...],
           trusted: tuple[str, ...]) -> object:
    sig = keys.sign(signer, data, tmp_path / f"{signer}.asc")
    keyring = keys.export(*ring, path=tmp_path / "KEYS.asc")
    return verify_signature(data, sig, keyring, [keys.fpr[t] for t in trusted])


def test_good_signature_by_pinned_key(gpg_keys: GpgKeys, tmp_path: Path, data: Path) -> None:
    info = _check(gpg_keys, tmp_path, data, "good", ("good",), ("good",))
    assert info.fingerprint == gpg_keys.fpr["good"]  # type: ignore[attr-defined]
    assert info.signer == gpg_keys.fpr["good"]  # type: ignore[attr-defined]
    assert "good@example.test" in info.uid  # type: ignore[attr-defined]
    assert info.created.endswith("Z")  # type: ignore[attr-defined]


def test_fixture_keys_are_distinct(gpg_keys: GpgKeys) -> None:
    assert len(set(gpg_keys.fpr.values())) == 6
    assert gpg_keys.signing_fpr["subkey"] != gpg_keys.fpr["subkey"]


def test_other_key_in_keyring_is_not_trusted(gpg_keys: GpgKeys, tmp_path: Path, data: Path) -> None:
    with pytest.raises(VerificationError, match="which is not one you trust") as e:
        _check(gpg_keys, tmp_path, data, "other", ("good", "other"), ("good",))
    assert gpg_keys.fpr["other"] in str(e.value)
    assert "other@example.test" in str(e.value)


def test_expired_key(gpg_keys: GpgKeys, tmp_path: Path, data: Path) -> None:
    with pytest.raises(VerificationError, match=r"expired on 2020-01-02"):
        _check(gpg_keys, tmp_path, data, "expired", ("expired",), ("expired",))


def test_revoked_key(gpg_keys: GpgKeys, tmp_path: Path, data: Path) -> None:
    with pytest.raises(VerificationError, match="was revoked"):
        _check(gpg_keys, tmp_path, data, "revoked", ("revoked",), ("revoked",))


def test_signing_subkey_of_pinned_key(gpg_keys: GpgKeys, tmp_path: Path, data: Path) -> None:
    info = _check(gpg_keys, tmp_path, data, "subkey", ("subkey",), ("subkey",))
    assert info.fingerprint == gpg_keys.fpr["subkey"]  # type: ignore[attr-defined]
    assert info.signer == gpg_keys.signing_fpr["subkey"]  # type: ignore[attr-defined]


def test_pinning_the_subkey_itself_is_not_enough(gpg_keys: GpgKeys, tmp_path: Path, data: Path) -> None:
    sig = gpg_keys.sign("subkey", data, tmp_path / "s.asc")
    ring = gpg_keys.export("subkey", path=tmp_path / "KEYS.asc")
    with pytest.raises(VerificationError, match="not one you trust"):
        verify_signature(data, sig, ring, [gpg_keys.signing_fpr["subkey"]])


def test_protected_key_signs_and_verifies(gpg_keys: GpgKeys, tmp_path: Path, data: Path) -> None:
    info = _check(gpg_keys, tmp_path, data, "protected", ("protected",), ("protected",))
    assert info.fingerprint == gpg_keys.fpr["protected"]  # type: ignore[attr-defined]


def test_two_signatures_concatenated(gpg_keys: GpgKeys, tmp_path: Path, data: Path) -> None:
    a = gpg_keys.sign("good", data, tmp_path / "a.asc")
    b = gpg_keys.sign("other", data, tmp_path / "b.asc")
    both = tmp_path / "both.asc"
    both.write_bytes(a.read_bytes() + b.read_bytes())
    ring = gpg_keys.export("good", "other", path=tmp_path / "KEYS.asc")
    with pytest.raises(VerificationError, match="two signatures; exactly one expected"):
        verify_signature(data, both, ring, [gpg_keys.fpr["good"], gpg_keys.fpr["other"]])


def test_altered_data(gpg_keys: GpgKeys, tmp_path: Path, data: Path) -> None:
    sig = gpg_keys.sign("good", data, tmp_path / "g.asc")
    raw = bytearray(data.read_bytes())
    raw[10] ^= 1
    data.write_bytes(bytes(raw))
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    with pytest.raises(VerificationError, match=r"does not match the data \(file altered\?\)"):
        verify_signature(data, sig, ring, [gpg_keys.fpr["good"]])


def test_signer_missing_from_keyring(gpg_keys: GpgKeys, tmp_path: Path, data: Path) -> None:
    sig = gpg_keys.sign("other", data, tmp_path / "o.asc")
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    with pytest.raises(VerificationError, match="no public key for the signer .* in KEYS.asc"):
        verify_signature(data, sig, ring, [gpg_keys.fpr["good"]])


def test_fingerprint_normalised_and_short_ids_refused(gpg_keys: GpgKeys, tmp_path: Path, data: Path) -> None:
    fpr = gpg_keys.fpr["good"]
    spaced = " ".join(fpr[i:i + 4] for i in range(0, 40, 4)).lower()
    assert normalize_fingerprint(spaced) == fpr
    assert normalize_fingerprint("0x" + fpr.lower()) == fpr
    with pytest.raises(UsageError):
        normalize_fingerprint(fpr[-16:])
    sig = gpg_keys.sign("good", data, tmp_path / "g.asc")
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    assert verify_signature(data, sig, ring, [spaced]).fingerprint == fpr


def test_no_gpg_on_path(gpg_keys: GpgKeys, tmp_path: Path, data: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    sig = gpg_keys.sign("good", data, tmp_path / "g.asc")
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(VerificationError, match="gpg is not installed") as e:
        verify_signature(data, sig, ring, [gpg_keys.fpr["good"]])
    assert e.value.hint


def test_missing_keyring_is_usage_error(gpg_keys: GpgKeys, tmp_path: Path, data: Path) -> None:
    sig = gpg_keys.sign("good", data, tmp_path / "g.asc")
    with pytest.raises(UsageError):
        verify_signature(data, sig, tmp_path / "nope.asc", [gpg_keys.fpr["good"]])


def test_user_gnupghome_untouched(gpg_keys: GpgKeys, tmp_path: Path, data: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    user_home = tmp_path / "userhome"
    user_home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(user_home))
    _check(gpg_keys, tmp_path, data, "good", ("good",), ("good",))
    assert os.listdir(user_home) == []


def test_parse_status_ignores_noise() -> None:
    with pytest.raises(VerificationError, match="no signature"):
        parse_status("gpg: some text\n", ["A" * 40])


def test_streamed_check_matches_whole_file_check(gpg_keys: GpgKeys, tmp_path: Path, data: Path) -> None:
    from wheelferry.offline.gpg import signature_check
    sig = gpg_keys.sign("good", data, tmp_path / "good.asc")
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    raw = data.read_bytes()
    with signature_check(sig, ring, [gpg_keys.fpr["good"]]) as check:
        for i in range(0, len(raw), 7):
            check.feed(raw[i:i + 7])
        info = check.result()
    assert info.fingerprint == gpg_keys.fpr["good"]
    with signature_check(sig, ring, [gpg_keys.fpr["good"]]) as check:
        check.feed(raw[:-1])
        with pytest.raises(VerificationError, match="does not match the data"):
            check.result()


def test_streamed_check_survives_gpg_quitting_early(gpg_keys: GpgKeys, tmp_path: Path) -> None:
    from wheelferry.offline.gpg import signature_check
    from wheelferry.signedmessage import armor
    junk = tmp_path / "junk.asc"
    # A truncated version 3 signature packet of class 0x00: it passes the shape check, gpg gives up on it.
    junk.write_bytes(armor(bytes([0xC2, 7, 3, 5, 0, 0, 0, 0, 0])))
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    with signature_check(junk, ring, [gpg_keys.fpr["good"]]) as check:
        for _ in range(64):  # far more than a pipe buffer, written after gpg may have exited
            check.feed(b"\0" * (1 << 20))
        with pytest.raises(VerificationError):
            check.result()


def test_aborted_check_leaves_no_private_home(gpg_keys: GpgKeys, tmp_path: Path, data: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from wheelferry.offline.gpg import signature_check
    sig = gpg_keys.sign("good", data, tmp_path / "good.asc")
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    # The homes this check makes, by name (other runs on the machine make their own in /tmp).
    made: list[Path] = []
    real = tempfile.mkdtemp

    def recording(*args: Any, **kwargs: Any) -> str:
        path = real(*args, **kwargs)
        made.append(Path(path))
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", recording)
    with pytest.raises(KeyboardInterrupt), signature_check(sig, ring, [gpg_keys.fpr["good"]]) as check:
        check.feed(b"x" * 100_000)
        raise KeyboardInterrupt
    assert any(p.name.startswith("wfgpg") for p in made), made
    assert [p for p in made if p.exists()] == []


# -- which gpg: WHEELFERRY_GPG, PATH, Gpg4win's folders


def _wrapper(tmp_path: Path, log: Path) -> Path:
    """A gpg wrapper script (as a locked-down host might install one): logs each call, runs gpg."""
    real = shutil.which("gpg")
    assert real is not None
    script = tmp_path / "wrapped" / "gpg-wrapper"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{real}" "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    return script


def test_wheelferry_gpg_names_the_binary(gpg_keys: GpgKeys, tmp_path: Path, data: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    sig = gpg_keys.sign("good", data, tmp_path / "g.asc")
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    real = shutil.which("gpg")
    assert real is not None
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no gpg but the one named
    monkeypatch.setenv(GPG_ENV, real)
    assert find_gpg() == real
    assert verify_signature(data, sig, ring, [gpg_keys.fpr["good"]]).fingerprint == gpg_keys.fpr["good"]


def test_wheelferry_gpg_runs_a_wrapper_script(gpg_keys: GpgKeys, tmp_path: Path, data: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sig = gpg_keys.sign("good", data, tmp_path / "g.asc")
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    log = tmp_path / "calls.log"
    monkeypatch.setenv(GPG_ENV, str(_wrapper(tmp_path, log)))
    assert verify_signature(data, sig, ring, [gpg_keys.fpr["good"]]).fingerprint == gpg_keys.fpr["good"]
    calls = log.read_text(encoding="utf-8").splitlines()
    assert any("--import" in c for c in calls) and any("--verify" in c for c in calls)
    # The wrapper's verdict is still gpg's: altered data is refused through it as well.
    data.write_bytes(data.read_bytes() + b"x")
    with pytest.raises(VerificationError, match=r"does not match the data \(file altered\?\)"):
        verify_signature(data, sig, ring, [gpg_keys.fpr["good"]])


@pytest.mark.parametrize("bad", ["missing", "directory", "not-executable"])
def test_wheelferry_gpg_that_is_no_program_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       bad: str) -> None:
    path = tmp_path / bad
    if bad == "directory":
        path.mkdir()
    elif bad == "not-executable":
        path.write_text("#!/bin/sh\n", encoding="utf-8")
        path.chmod(0o644)
    monkeypatch.setenv(GPG_ENV, str(path))
    with pytest.raises(WheelferryError) as e:
        find_gpg()
    assert e.value.exit_code == 1
    assert str(e.value) == f"{GPG_ENV}={path} is not an executable file"
    assert GPG_ENV in (e.value.hint or "")


def test_gpg4win_folders_after_path(tmp_path: Path) -> None:
    real = shutil.which("gpg")
    assert real is not None
    x86, plain, on_path = tmp_path / "pf86", tmp_path / "pf", tmp_path / "bin"
    env = {"PATH": str(on_path), "ProgramFiles(x86)": str(x86), "ProgramFiles": str(plain)}
    assert find_gpg(windows=True, environ=env) is None
    exe = plain / "GnuPG" / "bin" / "gpg.exe"
    exe.parent.mkdir(parents=True)
    exe.symlink_to(real)
    assert find_gpg(windows=True, environ=env) == str(exe)
    assert find_gpg(windows=False, environ=env) is None  # only Windows looks there
    first = x86 / "GnuPG" / "bin" / "gpg.exe"
    first.parent.mkdir(parents=True)
    first.symlink_to(real)
    assert find_gpg(windows=True, environ=env) == str(first)
    # What it found is a gpg that runs.
    out = subprocess.run([str(first), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("gpg (GnuPG)")
    on_path.mkdir()
    (on_path / "gpg").symlink_to(real)
    assert find_gpg(windows=True, environ=env) == str(on_path / "gpg")  # PATH comes first
