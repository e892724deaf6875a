"""Signing through python-gnupg: check the key before any download, then detached signatures.

The passphrase reaches gpg only on its stdin (python-gnupg adds
``--pinentry-mode loopback --passphrase-fd 0``), never on a command line.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gnupg

from wheelferry.errors import SigningError, UsageError
from wheelferry.files import atomic_path, atomic_write

PASSPHRASE_ENV = "WHEELFERRY_PASSPHRASE"
# OpenPGP v4 fingerprints are 40 hex digits, v5/v6 ones 64.
_FINGERPRINT = re.compile(r"^(?:[0-9A-F]{40}|[0-9A-F]{64})$")


@dataclass(frozen=True)
class SigningKey:
    """A usable signing key: primary fingerprint, user ids, expiry (epoch seconds or None)."""

    fingerprint: str
    uids: tuple[str, ...]
    expires: int | None


def _gpg(gnupghome: str | None) -> gnupg.GPG:
    try:
        return gnupg.GPG(gnupghome=gnupghome)
    except (OSError, ValueError) as exc:
        raise SigningError(f"cannot run gpg: {exc}",
                           hint="install GnuPG 2.1 or newer, and check --gnupghome") from None


def _where(gnupghome: str | None) -> str:
    return f"GNUPGHOME {gnupghome}" if gnupghome else "gpg's default keyring"


def normalise_fingerprint(text: str) -> str:
    """Upper-case *text* without spaces (and a ``0x``); refuse short key ids."""
    fpr = re.sub(r"\s+", "", text).upper()
    fpr = fpr.removeprefix("0X")
    if not _FINGERPRINT.match(fpr):
        raise UsageError(f"{text!r} is not a full key fingerprint",
                         hint="pass all 40 hex digits, as `gpg --list-secret-keys` prints them; "
                              "short key ids can be forged")
    return fpr


def _find(keys: Any, fpr: str) -> dict[str, Any] | None:
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
    fpr = normalise_fingerprint(fingerprint)
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
    gpg = _gpg(gnupghome)
    if passphrase is not None and not gpg.is_valid_passphrase(passphrase):
        raise UsageError("the passphrase holds a line break or NUL character",
                         hint="a passphrase file holds the passphrase on its first line only")
    with atomic_path(final, 0o644) as tmp:
        with open(path, "rb") as f:
            result = gpg.sign_file(f, keyid=key.fingerprint, passphrase=passphrase or None,
                                   detach=True, clearsign=False, output=str(tmp))
        signer = getattr(result, "fingerprint", None) or ""
        if not result or not tmp.stat().st_size:
            raise SigningError(f"gpg could not sign {path.name}: {_reason(result, passphrase)}",
                               hint=_hint(result, passphrase))
        if signer and signer != key.fingerprint and not _is_subkey(gpg, key, signer):
            raise SigningError(f"gpg signed {path.name} with {signer}, not with {key.fingerprint}")
    return final


def _bad_passphrase(result: Any) -> bool:
    text = f"{getattr(result, 'status', '')} {getattr(result, 'stderr', '')}".lower()
    return "passphrase" in text or "no pinentry" in text or "bad_passphrase" in text


def _hint(result: Any, passphrase: str | None) -> str:
    if _bad_passphrase(result) or not passphrase:
        return (f"if the key has a passphrase, give it with --passphrase-file or ${PASSPHRASE_ENV}; "
                "without one gpg can only use its agent's cache")
    return "run `gpg --list-secret-keys` to check the key"


def _reason(result: Any, passphrase: str | None) -> str:
    if _bad_passphrase(result):
        return "bad passphrase" if passphrase else "the key needs a passphrase"
    lines = [ln for ln in str(getattr(result, "stderr", "")).splitlines()
             if ln.startswith("gpg:")]
    return lines[-1][5:].strip() if lines else str(getattr(result, "status", "") or "unknown error")


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
