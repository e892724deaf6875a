"""N of M signatures: the builder's ``BUNDLE.tar.asc`` and every approval ``BUNDLE.tar.*.asc``.

Standard library only.  Each signature file holds exactly one signature; all
of them are checked by gpg processes fed from the same single read of the data
(the caller hands every chunk to :meth:`SignaturesCheck.feed`).  Good
signatures are counted once per pinned primary key (a subkey counts for its
primary).  A signature by a key that is not pinned, or not in the keyring, is
ignored and named; an expired or revoked key is named and not counted; a bad
signature in any file is refused as tampering.
"""

from __future__ import annotations

import contextlib
import glob
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from wheelferry.errors import VerificationError
from wheelferry.offline.gpg import (
    _ERRSIG_MISSING_KEY,
    SignatureCheck,
    SignatureInfo,
    _when,
    normalize_fingerprint,
    parse_status,
    private_keyring,
    trust_inputs,
)


def approval_path(data_path: Path, fingerprint: str) -> Path:
    """Where an approval of *data_path* by *fingerprint* goes: ``NAME.<last 16 hex>.asc``."""
    fpr = normalize_fingerprint(fingerprint)
    return data_path.with_name(f"{data_path.name}.{fpr[-16:]}.asc")


def signature_files(data_path: Path) -> list[Path]:
    """The builder's ``DATA.asc`` (when present) first, then every approval ``DATA.*.asc``, sorted."""
    data_path = Path(data_path)
    main = data_path.with_name(data_path.name + ".asc")
    pattern = glob.escape(str(data_path)) + ".*.asc"
    approvals = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
    return ([main] if main.is_file() else []) + approvals


@dataclass(frozen=True)
class Tally:
    """Who signed: counted signatures (one per pinned primary key) and what was not counted, and why."""

    counted: tuple[SignatureInfo, ...]
    ignored: tuple[str, ...] = ()

    def require(self, need: int, what: str) -> None:
        """Refuse unless at least *need* distinct pinned keys signed."""
        if len(self.counted) >= need:
            return
        signed = ", ".join(f"{s.fingerprint} ({s.uid})" for s in self.counted) or "nobody"
        not_counted = f"; not counted: {'; '.join(self.ignored)}" if self.ignored else ""
        raise VerificationError(
            f"{what} carries {len(self.counted)} of the {need} required signatures by distinct "
            f"pinned keys (counted: {signed}{not_counted})",
            hint="have more pinned people approve it (`wheelferry approve`), or pin their keys "
                 "with --trusted-key and their public keys in --keyring")

    def merge(self, other: Tally | None) -> Tally:
        """Both tallies, each pinned key still once (a split bundle: its volume list's and its tar's)."""
        if other is None:
            return self
        counted = {s.fingerprint: s for s in (*other.counted, *self.counted)}
        return Tally(tuple(counted.values()), (*other.ignored, *self.ignored))

    def lines(self) -> list[str]:
        """Human lines: each counted signer, then each signature not counted."""
        out = [f"signed by {s.fingerprint} ({s.uid})" for s in self.counted]
        return out + [f"not counted: {text}" for text in self.ignored]

    def to_json(self) -> dict[str, object]:
        return {"signatures": [s.to_json() for s in self.counted], "not-counted": list(self.ignored)}


class _RawCheck(SignatureCheck):
    def status(self) -> str:
        """End of data: wait for gpg and return its status lines."""
        self._close()
        self._out.seek(0)
        return self._out.read().decode("utf-8", errors="replace")


def judge(name: str, status: str, pinned: set[str], keyring_name: str) -> tuple[SignatureInfo | None, str]:
    """One file's verdict: (the good pinned signature, "") or (None, why it is not counted).

    Raises VerificationError for a bad or unreadable signature: that is tampering.
    """
    words = [w for w in (ln.split(" ")[1:] for ln in status.splitlines() if ln.startswith("[GNUPG:] ")) if w]
    kinds = [w[0] for w in words]
    uid = next((" ".join(w[2:]) for w in words
                if w[0] in ("GOODSIG", "BADSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG") and len(w) > 1), "")
    valid = next((w for w in words if w[0] == "VALIDSIG"), None)
    signer = valid[1] if valid and len(valid) > 1 else ""
    primary = (valid[10] if valid and len(valid) > 10 else signer).upper()
    if kinds.count("NEWSIG") != 1:
        raise VerificationError(f"{name} holds {kinds.count('NEWSIG')} signatures gpg can read; "
                                f"exactly one expected", hint="each .asc beside a bundle holds one signature")
    if "BADSIG" in kinds:
        raise VerificationError(f"the signature in {name} does not match the data (tampering, or an "
                                f"approval of another bundle)",
                                hint="do not install this bundle; remove that file only if you know "
                                     "where it came from, and get a fresh copy from the sender")
    for w in words:
        if w[0] == "NO_PUBKEY" or (w[0] == "ERRSIG" and len(w) > 6 and w[6] == _ERRSIG_MISSING_KEY):
            keyid = w[-1] if w[0] == "ERRSIG" and len(w) > 7 else w[1] if len(w) > 1 else "?"
            return None, f"{name}: signed by key {keyid}, which is not in {keyring_name} (ignored)"
        if w[0] == "ERRSIG":
            raise VerificationError(f"gpg could not check the signature in {name} (unsupported "
                                    f"algorithm or damaged signature)", hint="re-sign with an ed25519 or RSA key")
    who = f"{primary or signer or 'unknown'} ({uid or 'no user id'})"
    if "EXPKEYSIG" in kinds:
        at = next((_when(w[1]) for w in words if w[0] == "KEYEXPIRED" and len(w) > 1), "an earlier date")
        return None, f"{name}: the key {who} expired on {at}"
    if "REVKEYSIG" in kinds:
        return None, f"{name}: the key {who} was revoked"
    if "EXPSIG" in kinds:
        return None, f"{name}: the signature by {who} has expired"
    if primary and primary not in pinned:
        return None, f"{name}: signed by {who}, which is not pinned with --trusted-key (ignored)"
    # Everything else (no VALIDSIG, a signature class other than a binary document) is refused.
    try:
        return parse_status(status, pinned, keyring_name), ""
    except VerificationError as exc:
        raise VerificationError(f"{name}: {exc}", hint=exc.hint) from None


class SignaturesCheck:
    """Every signature file over the same data, each checked by its own gpg, all fed at once."""

    def __init__(self, gpg: str, home: Path, files: list[Path], keyring_name: str, trusted: list[str]) -> None:
        self._pinned = set(trusted)
        self._keyring_name = keyring_name
        self._checks: list[tuple[str, _RawCheck]] = []
        try:
            for path in files:
                self._checks.append((path.name, _RawCheck(gpg, home, path, keyring_name, trusted)))
        except BaseException:
            self.abort()
            raise

    def feed(self, chunk: bytes) -> None:
        """The next bytes of the signed data, for every gpg."""
        for _, check in self._checks:
            check.feed(chunk)

    def result(self) -> Tally:
        """End of data: every verdict; refuses tampering anywhere, counts each pinned key once."""
        verdicts = [(name, check.status()) for name, check in self._checks]
        counted: dict[str, SignatureInfo] = {}
        ignored: list[str] = []
        for name, status in verdicts:
            info, why = judge(name, status, self._pinned, self._keyring_name)
            if info is None:
                ignored.append(why)
            elif info.fingerprint in counted:
                ignored.append(f"{name}: {info.fingerprint} ({info.uid}) already counted (one key counts once)")
            else:
                counted[info.fingerprint] = info
        return Tally(tuple(counted.values()), tuple(ignored))

    def abort(self) -> None:
        for _, check in self._checks:
            check.abort()


@contextlib.contextmanager
def signatures_check(data_path: Path, keyring_path: Path,
                     trusted_fingerprints: Iterable[str]) -> Iterator[SignaturesCheck]:
    """Import *keyring_path* once, privately, and start a check of every signature file of *data_path*."""
    keyring_path, trusted = trust_inputs(keyring_path, trusted_fingerprints)
    data_path = Path(data_path)
    files = signature_files(data_path)
    if not files:
        raise VerificationError(f"no signature file {data_path.name}.asc beside the bundle",
                                hint="copy the .asc files too, or pass --allow-unsigned for a lab")
    with private_keyring(keyring_path) as (gpg, home):
        check = SignaturesCheck(gpg, home, files, keyring_path.name, trusted)
        try:
            yield check
        finally:
            check.abort()
