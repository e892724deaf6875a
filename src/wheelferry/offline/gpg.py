"""Detached-signature checks by pinned fingerprints, driving the gpg binary through --status-fd.

Standard library only.  The keyring is imported into a private, temporary
GNUPGHOME (never the user's), which is removed afterwards.  gpg's exit code is
not trusted on its own: an expired or revoked key still yields exit code 0, so
the decision is made from the machine-readable status lines (see gpg's
doc/DETAILS, "Format of the --status-fd output").
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from wheelferry.errors import UsageError, VerificationError, WheelferryError
from wheelferry.files import FILE_CHUNK
from wheelferry.offline.openpgp import (
    MAX_SIGNATURE_FILE,
    LiteralFramer,
    signature_packet,
    single_signature,
)
from wheelferry.timestamps import utc_text

_HEX_FPR = re.compile(r"^(?:[0-9A-F]{40}|[0-9A-F]{64})$")
_ERRSIG_MISSING_KEY = "9"


@dataclass(frozen=True)
class SignatureInfo:
    """A good signature: the pinned primary key, the (sub)key that signed, its uid, when."""

    fingerprint: str
    signer: str
    uid: str
    created: str
    data_sha256: str = ""  # of the bytes gpg was fed, so a later read can prove it saw the same

    def to_json(self) -> dict[str, str]:
        return {"fingerprint": self.fingerprint, "signer": self.signer, "uid": self.uid,
                "created": self.created}


def normalize_fingerprint(text: str) -> str:
    """Upper-case hex without spaces or ``0x``; short key ids are refused (they collide)."""
    fpr = re.sub(r"\s+", "", text).upper()
    fpr = fpr.removeprefix("0X")
    if not _HEX_FPR.match(fpr):
        raise UsageError(
            f"{text!r} is not a full key fingerprint",
            hint="pass the 40-hex-digit fingerprint (gpg --fingerprint), not a short key id",
        )
    return fpr


GPG_ENV = "WHEELFERRY_GPG"
# The folders Gpg4win's installer puts GnuPG under (%ProgramFiles(x86)% for its 32-bit builds).
_GPG4WIN_BASES = ("ProgramFiles(x86)", "ProgramFiles")


def find_gpg(*, windows: bool = os.name == "nt", environ: Mapping[str, str] = os.environ) -> str | None:
    """The gpg that every part of wheelferry runs; None when there is none.

    ``$WHEELFERRY_GPG`` when set (a path, or a name looked up on PATH; one that is
    not an executable file is an error, never a silent fallback); else ``gpg`` on
    PATH (``gpg.exe`` on Windows), else ``gpg2``; on Windows then Gpg4win's default
    folders, ``%ProgramFiles(x86)%\\GnuPG\\bin`` and ``%ProgramFiles%\\GnuPG\\bin``.
    """
    path = environ.get("PATH")
    given = environ.get(GPG_ENV)
    if given:
        found = shutil.which(given, path=path)
        if found is None:
            raise WheelferryError(f"{GPG_ENV}={given} is not an executable file",
                                  hint=f"point {GPG_ENV} at the gpg binary, or unset it to use gpg from PATH")
        return os.path.abspath(found)
    found = shutil.which("gpg", path=path) or shutil.which("gpg2", path=path)
    if found is None and windows:
        for base in (environ.get(b) for b in _GPG4WIN_BASES):
            exe = os.path.join(base, "GnuPG", "bin", "gpg.exe") if base else ""
            if exe and os.path.isfile(exe):
                return exe
    return found


def gpg_binary() -> str:
    """Path of the gpg binary, or a VerificationError saying how to get one."""
    path = find_gpg()
    if path is None:
        raise VerificationError(
            "gpg is not installed, so the bundle's signature cannot be checked",
            hint=f"install GnuPG (package gnupg) or set {GPG_ENV} to its gpg binary; for a lab only, "
                 f"--allow-unsigned",
        )
    return path


def gpg_env(home: str | os.PathLike[str] | None) -> dict[str, str]:
    """The environment every gpg runs in: this one with ``LC_ALL=C`` (gpg's messages, quoted in
    errors, in English), ``GNUPGHOME`` set to *home* when one is given, and no ``GPG_*``
    variable but ``GPG_TTY`` (the others point at an agent of another home)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPG_") or k == "GPG_TTY"}
    env["LC_ALL"] = "C"
    if home is not None:
        env["GNUPGHOME"] = os.fspath(home)
    return env


def _when(epoch: str) -> str:
    try:
        return utc_text(int(epoch))
    except (ValueError, OverflowError, OSError):
        return "an unknown date"


def _private_home() -> Path:
    # gpg-agent sockets live in the home and have a ~100 byte path limit: keep it short.
    base = "/tmp" if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK) else None
    home = Path(tempfile.mkdtemp(prefix="wfgpg", dir=base))
    os.chmod(home, 0o700)
    return home


def _command(gpg: str, home: Path, args: list[str]) -> tuple[list[str], dict[str, str]]:
    return [gpg, "--homedir", str(home), "--batch", "--no-tty", "--no-auto-key-retrieve",
            "--no-auto-key-locate", "--status-fd", "1", *args], gpg_env(home)


def _run(gpg: str, home: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    cmd, env = _command(gpg, home, args)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False,
                          stdin=subprocess.DEVNULL)


def widen_pipe(pipe: IO[bytes] | None) -> bool:
    """Give *pipe* a 1 MiB buffer where the platform allows (fewer wake-ups for big streams)."""
    # A 1 MiB pipe (Linux F_SETPIPE_SZ, 1031; the unprivileged maximum) keeps gpg reading
    # while the feeding thread waits for the GIL (benchmarks/verify_throughput.py).
    if pipe is None or not sys.platform.startswith("linux"):
        return False
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        return False
    return True


class PipeFeeder:
    """Writes queued chunks to a child's stdin from a thread, so the caller never waits on the child.

    *pieces* turns each chunk (and None, the end) into what is written; *head*
    goes first.  A child that stops reading is drained past, never blocked on.
    """

    def __init__(self, pipe: IO[bytes], pieces: Callable[[bytes | None], Sequence[bytes | memoryview]]
                 = lambda chunk: [chunk] if chunk is not None else [],
                 head: Sequence[bytes] = (), depth: int = 4) -> None:
        self._pipe = pipe
        self._pieces = pieces
        self._head = head
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._pump, name="gpg-feed", daemon=True)
        self._thread.start()
        self._closed = False

    def _pump(self) -> None:
        ok = self._write(self._head)
        while True:
            chunk = self._queue.get()
            if ok:
                ok = self._write(self._pieces(chunk))
            if chunk is None:
                break
        with contextlib.suppress(OSError):
            self._pipe.close()

    def _write(self, pieces: Sequence[bytes | memoryview]) -> bool:
        try:
            for piece in pieces:
                self._pipe.write(piece)
        except OSError:
            return False
        return True

    def put(self, chunk: bytes) -> None:
        """Queue *chunk*, the next bytes for the child."""
        if chunk:
            self._queue.put(chunk)

    def close(self) -> None:
        """End of data: write what is queued and the tail, then close the pipe."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()


class SignatureCheck:
    """A running gpg check of *sig_path* fed the signed data chunk by chunk from a writer thread.

    The caller reads the data once and hands every chunk to :meth:`feed`; a
    bounded queue and a thread keep gpg busy on another core while the caller
    parses and hashes the same bytes (hashlib and pipe writes release the GIL).
    A single v4 signature is checked as a one-pass signed message built around
    the data (see :mod:`wheelferry.offline.openpgp`: three times faster in gpg,
    the same verdict); anything else goes to ``gpg --verify SIG -`` as it is.
    """

    def __init__(self, gpg: str, home: Path, sig_path: Path, keyring_name: str,
                 trusted: list[str]) -> None:
        with open(sig_path, "rb") as f:
            # One byte past the cap is enough to refuse a larger file.
            packet = signature_packet(f.read(MAX_SIGNATURE_FILE + 1), Path(sig_path).name)
        signature = single_signature(packet)
        if signature is None:  # one checked signature packet, of another version: gpg's detached path
            copy = home / "signature.sig"
            copy.write_bytes(packet)
            args = ["--verify", str(copy), "-"]
        else:
            args = ["--verify"]
        cmd, env = _command(gpg, home, args)
        self._trusted = trusted
        self._keyring_name = keyring_name
        # Status goes to a file, not a pipe, so gpg can never block on a reader we do not run;
        # abort() closes it.
        self._out = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=self._out,
                                      stderr=subprocess.DEVNULL, env=env)
        assert self._proc.stdin is not None
        widen_pipe(self._proc.stdin)
        if signature is None:
            self._feeder = PipeFeeder(self._proc.stdin)
        else:
            framer = LiteralFramer()

            def pieces(chunk: bytes | None) -> Sequence[bytes | memoryview]:
                return framer.frame(chunk) if chunk is not None else [framer.end(), signature.packet]

            self._feeder = PipeFeeder(self._proc.stdin, pieces, head=[signature.one_pass(), framer.start()])
        self._closed = False

    def feed(self, chunk: bytes) -> None:
        """Queue *chunk* (the next bytes of the signed data) for gpg."""
        self._feeder.put(chunk)

    def _close(self) -> None:
        if not self._closed:
            self._feeder.close()
            self._proc.wait()
            self._closed = True  # only now: an interrupted wait leaves abort() something to kill

    def result(self) -> SignatureInfo:
        """End of data: wait for gpg and decide from its status lines."""
        self._close()
        self._out.seek(0)
        status = self._out.read().decode("utf-8", errors="replace")
        return parse_status(status, self._trusted, self._keyring_name)

    def abort(self) -> None:
        """Stop gpg without a verdict (the caller is failing for another reason)."""
        if not self._closed:
            self._proc.kill()
            self._close()
        self._out.close()


def trust_inputs(keyring_path: Path, trusted_fingerprints: Iterable[str]) -> tuple[Path, list[str]]:
    """The keyring file and the normalised pinned fingerprints, or a usage error naming what is missing."""
    trusted = [normalize_fingerprint(t) for t in trusted_fingerprints]
    if not trusted:
        raise UsageError("no trusted key fingerprint given",
                         hint="pass --trusted-key FPR (or --allow-unsigned for a lab)")
    keyring_path = Path(keyring_path)
    if not keyring_path.is_file():
        raise UsageError(f"keyring {keyring_path} does not exist",
                         hint="pass the sender's public key file with --keyring KEYS.asc")
    return keyring_path, trusted


def import_keyring(gpg: str, home: Path, keyring_path: Path) -> None:
    """Import the pinned keyring into the private *home*; refuse a file that holds no public key."""
    imported = _run(gpg, home, ["--import", str(keyring_path)])
    if "[GNUPG:] IMPORT_OK " not in imported.stdout:
        raise VerificationError(f"{keyring_path.name} holds no public key gpg can import",
                                hint="export it with `gpg --armor --export FPR > KEYS.asc`")


@contextlib.contextmanager
def signature_check(sig_path: Path, keyring_path: Path,
                    trusted_fingerprints: Iterable[str]) -> Iterator[SignatureCheck]:
    """Import *keyring_path* privately and start checking *sig_path*; feed it, then ``result()``."""
    keyring_path, trusted = trust_inputs(keyring_path, trusted_fingerprints)
    if not Path(sig_path).is_file():
        raise VerificationError(f"no signature file {sig_path} beside the bundle",
                                hint="copy the .asc too, or pass --allow-unsigned for a lab")
    with private_keyring(keyring_path) as (gpg, home):
        check = SignatureCheck(gpg, home, Path(sig_path), keyring_path.name, trusted)
        try:
            yield check
        finally:
            check.abort()


@contextlib.contextmanager
def private_keyring(keyring_path: Path) -> Iterator[tuple[str, Path]]:
    """(gpg, a private GNUPGHOME holding only *keyring_path*'s keys); the home and its agent go after."""
    gpg = gpg_binary()
    home = _private_home()
    try:
        import_keyring(gpg, home, keyring_path)
        yield gpg, home
    finally:
        _cleanup(home)


def _cleanup(home: Path) -> None:
    # gpgconf stops the agent a private home started: the one installed beside gpg first.
    gpg = find_gpg()
    beside = Path(gpg).with_name("gpgconf" + Path(gpg).suffix) if gpg else None
    gpgconf = str(beside) if beside is not None and beside.is_file() else shutil.which("gpgconf")
    if gpgconf is not None:
        subprocess.run([gpgconf, "--homedir", str(home), "--kill", "all"],
                       capture_output=True, check=False, stdin=subprocess.DEVNULL)
    shutil.rmtree(home, ignore_errors=True)


def parse_status(status: str, trusted: Iterable[str], keyring_name: str = "the keyring") -> SignatureInfo:
    """Decide on gpg ``--status-fd`` output: exactly one good signature by a pinned key."""
    lines = [ln.split(" ")[1:] for ln in status.splitlines() if ln.startswith("[GNUPG:] ")]
    words = [ln for ln in lines if ln]
    uid_of: dict[str, str] = {}
    expired_at = ""
    for w in words:
        if w[0] in ("GOODSIG", "BADSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG") and len(w) > 1:
            uid_of[w[1]] = " ".join(w[2:])
        if w[0] == "KEYEXPIRED" and len(w) > 1:
            expired_at = _when(w[1])
    kinds = [w[0] for w in words]
    count = kinds.count("NEWSIG")
    if count == 0:
        raise VerificationError("the signature file holds no signature gpg can read",
                                hint="it must be the detached, armoured .asc made by `wheelferry build`")
    if count > 1:
        raise VerificationError(f"{_number(count)} signatures; exactly one expected",
                                hint="re-sign the bundle with a single key")
    valid = next((w for w in words if w[0] == "VALIDSIG"), None)
    signer = valid[1] if valid and len(valid) > 1 else ""
    primary = valid[10] if valid and len(valid) > 10 else signer
    uid = next(iter(uid_of.values()), "") or "no user id"
    who = f"{primary or 'unknown'} ({uid})"
    for w in words:
        if w[0] == "BADSIG":
            raise VerificationError("the signature does not match the data (file altered?)",
                                    hint="copy the bundle again and compare `sha256sum BUNDLE` with the sha256 "
                                         "build printed (`sha256:` line, or \"sha256\" of build --json)")
        if w[0] in ("NO_PUBKEY",) or (w[0] == "ERRSIG" and len(w) > 6 and w[6] == _ERRSIG_MISSING_KEY):
            keyid = w[-1] if w[0] == "ERRSIG" and len(w) > 7 else w[1] if len(w) > 1 else "?"
            raise VerificationError(f"no public key for the signer {keyid} in {keyring_name}",
                                    hint="ask the sender for the public key and check its fingerprint")
        if w[0] == "ERRSIG":
            raise VerificationError("gpg could not check the signature (unsupported algorithm or "
                                    "damaged signature)", hint="re-sign with an ed25519 or RSA key")
        if w[0] == "EXPKEYSIG":
            raise VerificationError(f"the signing key {who} expired on {expired_at or 'an earlier date'}",
                                    hint="the sender must extend the key's expiry or re-sign with a current key")
        if w[0] == "REVKEYSIG":
            raise VerificationError(f"the signing key {who} was revoked",
                                    hint="do not install this bundle; ask the sender for one signed by a live key")
        if w[0] == "EXPSIG":
            raise VerificationError(f"the signature by {who} has expired",
                                    hint="ask the sender to re-sign the bundle")
    if valid is None or "GOODSIG" not in kinds:
        raise VerificationError("gpg did not report a good signature",
                                hint="check the .asc belongs to this bundle")
    sig_class = valid[9] if len(valid) > 9 else ""
    if sig_class != "00":  # what gpg itself saw, whatever the file looked like to signature_packet
        raise VerificationError(f"the signature is of class 0x{sig_class or '??'}, not over a binary "
                                f"document (0x00) as build makes", hint="check the .asc belongs to this bundle")
    pinned = {normalize_fingerprint(t) for t in trusted}
    if primary.upper() not in pinned:
        raise VerificationError(f"signed by key {who}, which is not one you trust",
                                hint="pass the fingerprint you were given out of band with --trusted-key")
    return SignatureInfo(primary.upper(), signer.upper(), uid, _when(valid[3] if len(valid) > 3 else ""))


def _number(n: int) -> str:
    return {2: "two", 3: "three"}.get(n, str(n))


def verify_signature(data_path: Path, sig_path: Path, keyring_path: Path,
                     trusted_fingerprints: Iterable[str]) -> SignatureInfo:
    """Check *sig_path* is one good detached signature over *data_path* by a pinned key."""
    digest = hashlib.sha256()
    with signature_check(sig_path, keyring_path, trusted_fingerprints) as check, \
            open(data_path, "rb") as data:
        for chunk in iter(lambda: data.read(FILE_CHUNK), b""):
            digest.update(chunk)
            check.feed(chunk)
        info = check.result()
    return dataclasses.replace(info, data_sha256=digest.hexdigest())
