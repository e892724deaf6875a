"""Signing through python-gnupg: check the key before any download, then detached signatures.

The passphrase reaches gpg only on its stdin (python-gnupg adds
``--pinentry-mode loopback --passphrase-fd 0``), never on a command line.
"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import gnupg

from wheelferry.errors import SigningError, UsageError
from wheelferry.files import atomic_write
from wheelferry.offline.gpg import (
    GPG_ENV,
    PipeFeeder,
    find_gpg,
    gpg_env,
    normalize_fingerprint,
    widen_pipe,
)
from wheelferry.offline.openpgp import single_signature
from wheelferry.signedmessage import PacketScanner, armor

PASSPHRASE_ENV = "WHEELFERRY_PASSPHRASE"
_MAX_PASSPHRASE = 4095  # with its newline, one page: what any pipe holds
# OpenPGP v4 fingerprints are 40 hex digits, v5/v6 ones 64.


@dataclass(frozen=True)
class SigningKey:
    """A usable signing key: primary fingerprint, user ids, expiry (epoch seconds or None)."""

    fingerprint: str
    uids: tuple[str, ...]
    expires: int | None


def _binary() -> str:
    path = find_gpg()
    if path is None:
        raise SigningError("gpg is not installed, so nothing can be signed",
                           hint=f"install GnuPG 2.1 or newer, or set {GPG_ENV} to its gpg binary")
    return path


def _gpg(gnupghome: str | None) -> gnupg.GPG:
    try:
        return gnupg.GPG(gpgbinary=_binary(), gnupghome=gnupghome, env=gpg_env(gnupghome))
    except (OSError, ValueError) as exc:
        raise SigningError(f"cannot run gpg: {exc}",
                           hint="install GnuPG 2.1 or newer, and check --gnupghome") from None


def _where(gnupghome: str | None) -> str:
    return f"GNUPGHOME {gnupghome}" if gnupghome else "gpg's default keyring"



def _find(keys: Any, fpr: str) -> dict[str, Any] | None:  # Any: python-gnupg's untyped key listing
    """The listed key whose primary or a subkey has fingerprint *fpr*."""
    for key in keys:
        if key.get("fingerprint") == fpr:
            return dict(key)
        for sub in key.get("subkeys") or []:
            if len(sub) > 2 and sub[2] == fpr:
                return dict(key)
    return None


def check_signing_key(fingerprint: str, gnupghome: str | None) -> SigningKey:
    """Return the key *fingerprint* if it can sign now; else raise :class:`SigningError`."""
    fpr = normalize_fingerprint(fingerprint)
    gpg = _gpg(gnupghome)
    public = _find(gpg.list_keys(keys=[fpr]), fpr)
    if public is None:
        raise SigningError(f"no key {fpr} in {_where(gnupghome)}",
                           hint="check the fingerprint with `gpg --list-secret-keys`, or pass --gnupghome")
    if _find(gpg.list_keys(secret=True, keys=[fpr]), fpr) is None:
        raise SigningError(f"key {fpr} has no secret part in {_where(gnupghome)}: it cannot sign",
                           hint="import the secret key, or use a key you hold")
    validity = public.get("trust", "")
    expires = int(public["expires"]) if public.get("expires") else None
    if validity == "r":
        raise SigningError(f"key {fpr} is revoked", hint="sign with a key that is not revoked")
    if validity == "e" or (expires is not None and expires <= time.time()):
        when = time.strftime("%Y-%m-%d", time.gmtime(expires)) if expires else "an earlier date"
        raise SigningError(f"key {fpr} expired on {when}",
                           hint="extend it (`gpg --quick-set-expire`) or sign with another key")
    # gpg lists the capabilities usable right now in upper case (S = can sign, possibly
    # through a subkey); lower-case letters only say what the primary key was made for.
    if "S" not in public.get("cap", ""):
        raise SigningError(f"key {fpr} has no usable signing (sub)key",
                           hint="add one with `gpg --quick-add-key FPR ed25519 sign`")
    return SigningKey(str(public["fingerprint"]), tuple(public.get("uids") or ()), expires)


def sign_detached(path: Path, key: SigningKey, gnupghome: str | None,
                  passphrase: str | None) -> Path:
    """Write ``<path>.asc``, an ASCII-armoured detached signature of *path* by *key*."""
    path = Path(path)
    final = path.with_name(path.name + ".asc")
    atomic_write(final, detached_signature(path, key, gnupghome, passphrase), 0o644)
    return final


def detached_signature(path: Path, key: SigningKey, gnupghome: str | None,
                       passphrase: str | None) -> bytes:
    """An ASCII-armoured detached signature of *path* by *key*, made by gpg reading the file."""
    with open(path, "rb") as f:
        return _signature_of(f, Path(path).name, key, gnupghome, passphrase)


def check_can_sign(key: SigningKey, gnupghome: str | None, passphrase: str | None) -> None:
    """Sign a few bytes now, so a wrong or missing passphrase fails before anything is fetched."""
    _signature_of(io.BytesIO(b"wheelferry: can this key sign?\n"), "a test message", key, gnupghome,
                  passphrase)


def _signature_of(f: IO[bytes], what: str, key: SigningKey, gnupghome: str | None,
                  passphrase: str | None) -> bytes:
    gpg = _gpg(gnupghome)
    _check_passphrase(passphrase)
    result = gpg.sign_file(f, keyid=key.fingerprint, passphrase=passphrase or None,
                           detach=True, clearsign=False)
    status = f"{getattr(result, 'status', '')}\n{getattr(result, 'stderr', '')}"
    data = bytes(getattr(result, "data", b"") or b"")
    if not result or b"BEGIN PGP SIGNATURE" not in data:
        raise SigningError(f"gpg could not sign {what}: {_reason(status, passphrase)}",
                           hint=_hint(status, passphrase))
    _check_signer(gpg, key, getattr(result, "fingerprint", None) or "", what)
    return data


def _check_passphrase(passphrase: str | None) -> None:
    if passphrase is None:
        return
    if "\n" in passphrase or "\r" in passphrase or "\0" in passphrase:
        raise UsageError("the passphrase holds a line break or NUL character",
                         hint="a passphrase file holds the passphrase on its first line only")
    if len(passphrase.encode("utf-8")) > _MAX_PASSPHRASE:  # it must fit a pipe's buffer at once
        raise UsageError(f"the passphrase is longer than {_MAX_PASSPHRASE} bytes")


def _check_signer(gpg: gnupg.GPG, key: SigningKey, signer: str, what: str) -> None:
    if signer and signer != key.fingerprint and not _is_subkey(gpg, key, signer):
        raise SigningError(f"gpg signed {what} with {signer}, not with {key.fingerprint}")


class StreamSigner:
    """``gpg --sign`` fed a file's bytes while they are written; the detached signature is cut out.

    For a version 4 signature over a binary document the signature of a signed
    message is the detached signature of its literal data (RFC 4880 5.2.4), and
    gpg hashes a signed message's data in blocks rather than byte by byte, so
    signing costs no extra read of the file and runs on another core while it
    is written.  gpg's output (the data again, framed) is scanned and dropped.
    Should gpg's output hold anything but one plain v4 signature (a gpg.conf
    asking for text mode, say), :meth:`finish` signs the finished file the
    ordinary way instead.  The passphrase reaches gpg on a pipe of its own.
    """

    def __init__(self, key: SigningKey, gnupghome: str | None, passphrase: str | None) -> None:
        _check_passphrase(passphrase)
        self.key, self.gnupghome, self.passphrase = key, gnupghome, passphrase
        cmd = [_binary(), "--status-fd", "2", "--no-tty", "--batch"]
        if gnupghome:
            cmd += ["--homedir", gnupghome]
        read_end = None
        if passphrase is not None:
            read_end = _passphrase_pipe(passphrase)
            cmd += ["--pinentry-mode", "loopback", "--passphrase-fd", str(read_end)]
        cmd += ["--default-key", key.fingerprint, "--no-armor", "--no-textmode", "--compress-algo",
                "none", "--sign", "--output", "-"]
        self._status = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=self._status, env=gpg_env(gnupghome),
                                          pass_fds=(read_end,) if read_end is not None else ())
        except OSError as exc:
            self._status.close()
            raise SigningError(f"cannot run gpg: {exc.strerror}", hint="install GnuPG 2.1 or newer") from None
        finally:
            if read_end is not None:
                os.close(read_end)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        widen_pipe(self._proc.stdin)
        self._batch_reads = widen_pipe(self._proc.stdout)
        self._feeder = PipeFeeder(self._proc.stdin)
        self._scanner = PacketScanner()
        self._reader = threading.Thread(target=self._scan, args=(self._proc.stdout,),
                                        name="gpg-output", daemon=True)
        self._reader.start()
        self._done = False

    def _scan(self, out: IO[bytes]) -> None:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        raw = cast(io.RawIOBase, getattr(out, "raw", out))  # unbuffered: no copy through a buffer
        while n := raw.readinto(buf):
            self._scanner.feed(view[:n])
            if self._batch_reads and n < len(buf) // 4:
                # gpg writes 8 KiB at a time: let the widened pipe fill up rather than wake
                # for each write (less CPU on this thread for the same bytes).
                time.sleep(0.001)

    def feed(self, chunk: bytes) -> None:
        """The next bytes of the file being signed."""
        self._feeder.put(chunk)

    def _wait(self) -> str:
        self._feeder.close()
        self._reader.join()
        self._proc.wait()
        self._done = True
        self._status.seek(0)
        status = self._status.read().decode("utf-8", errors="replace")
        self._status.close()
        return status

    def finish(self, path: Path, name: str | None = None) -> bytes:
        """The armoured detached signature of everything fed, which is the content of *path*.

        *name* is what messages call the file (the bundle's final name, not a temporary one).
        """
        name = name or Path(path).name
        status = self._wait()
        created = [ln.split() for ln in status.splitlines() if ln.startswith("[GNUPG:] SIG_CREATED ")]
        if self._proc.returncode != 0 or len(created) != 1:
            raise SigningError(f"gpg could not sign {name}: {_reason(status, self.passphrase)}",
                               hint=_hint(status, self.passphrase))
        if created[0][-1] != self.key.fingerprint:  # a signing subkey: ask gpg whose it is
            _check_signer(_gpg(self.gnupghome), self.key, created[0][-1], name)
        sigs = [raw for tag, raw in self._scanner.packets if tag == 2]
        signature = single_signature(sigs[0]) if self._scanner.complete() and len(sigs) == 1 else None
        if signature is None:
            return detached_signature(path, self.key, self.gnupghome, self.passphrase)
        return armor(signature.packet)

    def abort(self) -> None:
        """Stop gpg; nothing is signed."""
        if self._proc.poll() is None:
            self._proc.kill()
        if not self._done:
            self._wait()


def _passphrase_pipe(passphrase: str) -> int:
    """The read end of a pipe holding *passphrase* and a newline, numbered 3 or above."""
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as w:  # it fits the pipe's buffer (see _check_passphrase)
        w.write(passphrase.encode("utf-8") + b"\n")
    if read_end < 3:  # stdin, stdout or stderr were closed: never hand gpg fd 0, 1 or 2
        import fcntl

        moved = fcntl.fcntl(read_end, fcntl.F_DUPFD_CLOEXEC, 3)
        os.close(read_end)
        read_end = moved
    return read_end


def _bad_passphrase(status: str) -> bool:
    text = status.lower()
    return "passphrase" in text or "no pinentry" in text or "bad_passphrase" in text


def _hint(status: str, passphrase: str | None) -> str:
    if _bad_passphrase(status) or not passphrase:
        return (f"if the key has a passphrase, give it with --passphrase-file or ${PASSPHRASE_ENV}; "
                "without one gpg can only use its agent's cache")
    return "run `gpg --list-secret-keys` to check the key"


def _reason(status: str, passphrase: str | None) -> str:
    if _bad_passphrase(status):
        return "bad passphrase" if passphrase else "the key needs a passphrase"
    lines = [ln for ln in status.splitlines() if ln.startswith("gpg:")]
    if lines:
        return lines[-1][5:].strip()
    words = [ln[9:] for ln in status.splitlines() if ln.startswith("[GNUPG:] ")]
    return words[-1] if words else "unknown error"


def _is_subkey(gpg: gnupg.GPG, key: SigningKey, fpr: str) -> bool:
    listed = _find(gpg.list_keys(keys=[key.fingerprint]), fpr)
    return listed is not None and listed.get("fingerprint") == key.fingerprint


def export_public_key(key: SigningKey, gnupghome: str | None, out: Path) -> Path:
    """Write the ASCII-armoured public key of *key* to *out* (for the isolated host's keyring)."""
    armored = _gpg(gnupghome).export_keys(key.fingerprint, armor=True)
    if not armored or "BEGIN PGP PUBLIC KEY BLOCK" not in armored:
        raise SigningError(f"gpg exported nothing for key {key.fingerprint}")
    out = Path(out)
    atomic_write(out, armored.encode("ascii"), 0o644)
    return out


def read_passphrase(passphrase_file: Path | None, env_var: str = PASSPHRASE_ENV) -> str | None:
    """The signing passphrase: the first line of *passphrase_file*, else ``$env_var``, else None."""
    if passphrase_file is not None:
        try:
            text = Path(passphrase_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the passphrase file {passphrase_file}: {exc.strerror}",
                             hint="pass a readable file holding the passphrase on its first line") from None
        except UnicodeDecodeError:
            raise UsageError(f"the passphrase file {passphrase_file} is not UTF-8 text") from None
        lines = text.splitlines()
        return lines[0] if lines else ""
    value = os.environ.get(env_var)
    return value if value is not None else None
