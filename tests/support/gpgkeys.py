"""Throwaway ed25519 gpg keys in a temporary GNUPGHOME, for signing and verification tests.

``gpg_keys`` (session fixture) holds these keys, none with a passphrase unless said:

* ``good``      primary key that can sign
* ``other``     a second, unrelated signing key
* ``expired``   created in 2020 with a one-day expiry (signs with a faked 2020 clock)
* ``revoked``   its revocation certificate is part of every exported keyring
* ``subkey``    certify-only primary key with an ed25519 signing subkey
* ``protected`` passphrase ``s3cret``
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PASSPHRASE = "s3cret"
# gpg's clock for the expired key: created and used on 2020-01-01, expired a day later.
_PAST = "20200101T120000!"
_KEYS = ("good", "other", "expired", "revoked", "subkey", "protected")


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--quiet", *args],
        input=stdin, capture_output=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"gpg {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc


@dataclass
class GpgKeys:
    """The throwaway keys: ``home``, primary fingerprints ``fpr``, ``export`` and ``sign``."""

    home: Path
    fpr: dict[str, str] = field(default_factory=dict)
    signing_fpr: dict[str, str] = field(default_factory=dict)
    revocations: dict[str, bytes] = field(default_factory=dict)

    def uid(self, name: str) -> str:
        """The user id of key *name*."""
        return f"Wheelferry Test {name.capitalize()} <{name}@example.test>"

    def export(self, *names: str, path: Path) -> Path:
        """Write an ASCII-armoured public keyring holding *names* to *path*."""
        proc = _gpg(self.home, "--armor", "--export", *(self.fpr[n] for n in names))
        data = proc.stdout
        for n in names:
            if n in self.revocations:
                data += self.revocations[n]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def sign(self, name: str, file: Path, out: Path | None = None, *, extra: tuple[str, ...] = ()) -> Path:
        """Detached armoured signature of *file* by key *name* (``file.asc`` unless *out*).

        *extra* gpg options change how it is made (``--textmode``, ``--no-armor``, ...).
        """
        out = out or file.with_name(file.name + ".asc")
        args = ["--yes", "--armor", *extra, "--detach-sign", "--output", str(out),
                "--local-user", self.signing_fpr[name] + "!"]
        if name == "expired":
            args = ["--faked-system-time", _PAST, "--ignore-time-conflict", *args]
        if name == "protected":
            args = ["--pinentry-mode", "loopback", "--passphrase-fd", "0", *args]
            _gpg(self.home, *args, str(file), stdin=PASSPHRASE.encode() + b"\n")
        else:
            args = ["--pinentry-mode", "loopback", "--passphrase", "", *args]
            _gpg(self.home, *args, str(file))
        return out


def _fingerprints(home: Path, uid: str) -> list[str]:
    out = _gpg(home, "--with-colons", "--list-keys", uid).stdout.decode()
    return [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]


def make_keys(home: Path) -> GpgKeys:
    """Generate every throwaway key into *home* (an empty directory with mode 0700)."""
    keys = GpgKeys(home)
    nopass = ["--pinentry-mode", "loopback", "--passphrase", ""]
    for name in _KEYS:
        uid = keys.uid(name)
        if name == "expired":
            _gpg(home, *nopass, "--faked-system-time", _PAST, "--quick-gen-key", uid, "ed25519", "sign", "1d")
        elif name == "subkey":
            _gpg(home, *nopass, "--quick-gen-key", uid, "ed25519", "cert", "never")
        elif name == "protected":
            _gpg(home, "--pinentry-mode", "loopback", "--passphrase", PASSPHRASE,
                 "--quick-gen-key", uid, "ed25519", "sign", "never")
        else:
            _gpg(home, *nopass, "--quick-gen-key", uid, "ed25519", "sign", "never")
        fprs = _fingerprints(home, uid)
        keys.fpr[name] = fprs[0]
        if name == "subkey":
            _gpg(home, *nopass, "--quick-add-key", fprs[0], "ed25519", "sign", "never")
            keys.signing_fpr[name] = _fingerprints(home, uid)[1]
        else:
            keys.signing_fpr[name] = fprs[0]
    # gpg writes a revocation certificate on key creation, with a colon to defuse it.
    # It is kept apart from the home (so the key can still sign) and shipped in exports.
    rev = (home / "openpgp-revocs.d" / f"{keys.fpr['revoked']}.rev").read_text()
    block = rev[rev.index(":-----BEGIN") + 1:]
    keys.revocations["revoked"] = block.encode()
    return keys


@pytest.fixture(scope="session")
def gpg_keys() -> Iterator[GpgKeys]:
    """Session-wide throwaway keys; the gpg-agent of their home is killed at teardown."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed")
    # A short path: gpg-agent's socket path has a length limit of about 100 bytes.
    home = Path(tempfile.mkdtemp(prefix="wfk", dir="/tmp"))
    os.chmod(home, 0o700)
    try:
        yield make_keys(home)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"],
                       capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)
