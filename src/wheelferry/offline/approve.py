"""``approve``: a second person checks a bundle and adds a detached signature of their own beside it.

Standard library and gpg only (it runs in the offline kit too).  The bundle is
verified first exactly as ``verify`` does; then the tar (for split volumes:
the volume list, which pins every volume's sha256) is signed with the
approver's key into ``DATA.<last 16 hex digits of FPR>.asc``, written
atomically.  The file must be unchanged between the check and the signature.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wheelferry.errors import UsageError, VerificationError
from wheelferry.files import atomic_path, hash_file
from wheelferry.jsontypes import JSONObject
from wheelferry.offline.approvals import approval_path
from wheelferry.offline.gpg import gpg_binary, gpg_env, normalize_fingerprint
from wheelferry.offline.volumes import _list_of, is_split


@dataclass(frozen=True)
class Approval:
    """What was approved and where the approval went."""

    data: Path
    signature: Path
    name: str
    sequence: int
    sha256: str
    packages: int
    licences: dict[str, int]
    signers: JSONObject

    def to_json(self) -> JSONObject:
        return {"approved": str(self.data), "approval": str(self.signature), "name": self.name,
                "sequence": self.sequence, "sha256": self.sha256, "packages": self.packages,
                "licences": self.licences, **self.signers}


def _stamp(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns


def _sha256(path: Path) -> str:
    return str(hash_file(path).hexdigest())


def sign_file(data: Path, out: Path, fingerprint: str, gnupghome: str | None,
              passphrase_file: Path | None) -> None:
    """Detached armoured signature of *data* by *fingerprint* into *out*, atomically."""
    gpg = gpg_binary()
    args = [gpg, "--batch", "--no-tty", "--status-fd", "2", "--yes"]
    env = gpg_env(gnupghome or None)
    if gnupghome:
        args += ["--homedir", str(gnupghome)]
    if passphrase_file is not None:
        if not Path(passphrase_file).is_file():
            raise UsageError(f"passphrase file {passphrase_file} does not exist")
        args += ["--pinentry-mode", "loopback", "--passphrase-file", str(passphrase_file)]
    with atomic_path(out, 0o644) as tmp:
        args += ["--armor", "--local-user", fingerprint + "!", "--output", str(tmp), "--detach-sign", str(data)]
        proc = subprocess.run(args, capture_output=True, text=True, env=env, check=False,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or "[GNUPG:] SIG_CREATED D " not in proc.stderr:
            reason = "no secret key for it" if "NO_SECKEY" in proc.stderr or "No secret key" in proc.stderr \
                else "bad or missing passphrase" if "BAD_PASSPHRASE" in proc.stderr or "MISSING_PASSPHRASE" \
                in proc.stderr else "key expired or revoked" if "KEYEXPIRED" in proc.stderr \
                or "KEYREVOKED" in proc.stderr else f"gpg exit code {proc.returncode}"
            raise VerificationError(f"gpg could not sign {data.name} with {fingerprint}: {reason}",
                                    hint="check --sign-key, --gnupghome and --passphrase-file")


def approve_bundle(path: Path, *, sign_key: str, gnupghome: str | None = None,
                   passphrase_file: Path | None = None, keyring: Path | None, trusted: Iterable[str],
                   allow_unsigned: bool = False, threshold: int = 1) -> Approval:
    """Verify *path* (a tar or split volumes), then write the approval signature beside what is signed."""
    from wheelferry.offline import audit

    fingerprint = normalize_fingerprint(sign_key)
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"bundle {path} does not exist", hint="pass the path of NAME.tar")
    data = _list_of(path) if is_split(path) else path
    if not data.is_file():
        raise UsageError(f"the volume list {data.name} is not beside the volumes")
    before = _stamp(data)
    # The approvals the manifest requires are not all there yet: that is what approving adds.
    with audit.checked_bundle(path, keyring=keyring, trusted=list(trusted), allow_unsigned=allow_unsigned,
                              extract=True, threshold=threshold, manifest_approvals=False) as bundle:
        assert bundle.extracted is not None
        rows = audit.audit_rows(bundle, bundle.extracted)
    sha = _sha256(data)
    out = approval_path(data, fingerprint)
    sign_file(data, out, fingerprint, gnupghome, passphrase_file)
    if _stamp(data) != before or _sha256(data) != sha:
        out.unlink(missing_ok=True)
        raise VerificationError(f"{data.name} changed while it was being approved; no approval written",
                                hint="copy the bundle again and approve it once nothing writes to it")
    licences: dict[str, int] = {}
    for r in rows:
        licences[r.licence.text] = licences.get(r.licence.text, 0) + 1
    m = bundle.manifest
    return Approval(data, out, m.name, m.sequence, sha, len(rows), dict(sorted(licences.items())),
                    bundle.signers.to_json() if bundle.signers else {})
