"""Replay protection: the highest bundle sequence accepted per bundle name, kept on the isolated host.

Standard library only.  One small JSON file per bundle name in the state
directory (``--state-dir``, else ``$WHEELFERRY_STATE_DIR``, else
``/var/lib/wheelferry`` when run as root, else ``$XDG_STATE_HOME/wheelferry``
or ``~/.local/state/wheelferry``), always replaced atomically under a lock
file, so two runs at once never lose the higher mark.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from wheelferry.errors import UsageError, VerificationError
from wheelferry.files import atomic_write
from wheelferry.jsontypes import JSONObject
from wheelferry.timestamps import utc_text


@dataclass(frozen=True)
class Accepted:
    """The newest bundle of one name that this host accepted."""

    name: str
    sequence: int
    manifest_sha256: str
    accepted: str

    def to_json(self) -> JSONObject:
        return {"name": self.name, "sequence": self.sequence,
                "manifest-sha256": self.manifest_sha256, "accepted": self.accepted}


SYSTEM_STATE_DIR = Path("/var/lib/wheelferry")
STATE_DIR_ENV = "WHEELFERRY_STATE_DIR"


def default_state_dir(*, windows: bool = os.name == "nt", environ: Mapping[str, str] = os.environ,
                      root: bool | None = None) -> Path:
    """``$WHEELFERRY_STATE_DIR``; on Windows ``%LOCALAPPDATA%\\wheelferry``; ``/var/lib/wheelferry``
    as root; else the XDG user state dir."""
    env = environ.get(STATE_DIR_ENV)
    if env:
        return Path(env)
    if windows and environ.get("LOCALAPPDATA"):
        return Path(environ["LOCALAPPDATA"]) / "wheelferry"
    # Root (sudo included, whose environment may still name a user's XDG_STATE_HOME) shares
    # one system-wide mark: a replay must not pass just because another account runs it.
    if root is None:
        root = hasattr(os, "geteuid") and os.geteuid() == 0
    if root:
        return SYSTEM_STATE_DIR
    base = environ.get("XDG_STATE_HOME")
    if base and os.path.isabs(base):
        return Path(base) / "wheelferry"
    return Path.home() / ".local" / "state" / "wheelferry"


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Hold the state directory's lock file (blocking): one read-compare-write at a time."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.name == "nt":
            import msvcrt
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined]
        else:
            import fcntl
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _state_file(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.json"


def load_accepted(state_dir: Path, name: str) -> Accepted | None:
    """What was last accepted for bundle *name*, or None if nothing was."""
    path = _state_file(state_dir, name)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Accepted(str(raw["name"]), int(raw["sequence"]), str(raw["manifest-sha256"]),
                        str(raw.get("accepted", "")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"the state file {path} is unreadable ({exc})",
                         hint="restore it from a backup; deleting it disables replay protection "
                              "for this bundle name") from None


def check_sequence(state_dir: Path, name: str, sequence: int, manifest_sha256: str,
                   force_older: bool = False) -> str | None:
    """Refuse an older (or same-numbered but different) bundle; return a warning when forced."""
    last = load_accepted(state_dir, name)
    if last is None:
        return None
    problem = None
    if sequence < last.sequence:
        problem = (f"bundle {name} has sequence {sequence}, older than {last.sequence} "
                   f"which this host already accepted (a replayed older bundle?)")
    elif sequence == last.sequence and manifest_sha256 != last.manifest_sha256:
        problem = (f"bundle {name} has sequence {sequence} like the one already accepted, "
                   f"but different contents")
    if problem is None:
        return None
    if force_older:
        return problem + "; accepted anyway because of --force-older"
    raise VerificationError(problem, hint="use the newest bundle, or pass --force-older to roll back "
                                          "on purpose")


def record_accepted(state_dir: Path, name: str, sequence: int, manifest_sha256: str,
                    force_older: bool = False) -> Accepted:
    """Remember *sequence* for *name* (atomically, under the lock); only a forced rollback lowers it.

    Another run may have accepted a higher sequence since this one's check:
    then that mark stays and is returned.
    """
    with _locked(state_dir):
        last = load_accepted(state_dir, name)
        if last is not None and last.sequence > sequence and not force_older:
            return last
        now = utc_text()
        entry = Accepted(name, sequence, manifest_sha256, now)
        atomic_write(_state_file(state_dir, name),
                     (json.dumps(entry.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return entry
