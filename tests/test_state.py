"""Replay state: system-wide as root, locked against concurrent runs, moved only by a verified signature."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.bundles import make_bundle
from tests.support.gpgkeys import GpgKeys
from tests.support.wheels import build_wheel
from wheelferry.offline.cli import main
from wheelferry.offline.state import SYSTEM_STATE_DIR, load_accepted, record_accepted

SRC = Path(__file__).resolve().parents[1] / "src"
_PRINT = "from wheelferry.offline.state import default_state_dir; print(default_state_dir())"


def _default_dir(prefix: list[str], **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("WHEELFERRY_STATE_DIR", "XDG_STATE_HOME")}
    proc = subprocess.run([*prefix, sys.executable, "-c", _PRINT], capture_output=True, text=True,
                          env={**base, "PYTHONPATH": str(SRC), **env}, check=True, cwd="/")
    return proc.stdout.strip()


def test_state_dir_is_system_wide_as_root_and_per_user_otherwise(tmp_path: Path) -> None:
    root = [] if os.geteuid() == 0 else ["unshare", "-r"]  # a user namespace maps this user to root
    if root and shutil.which("unshare") is None:
        pytest.skip("needs root or unshare -r")
    # As root (so under sudo too, which may pass on a user's XDG_STATE_HOME): one mark for all.
    assert _default_dir(root, XDG_STATE_HOME=str(tmp_path / "xdg")) == str(SYSTEM_STATE_DIR)
    user = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"] if os.geteuid() == 0 else []
    if user and shutil.which("setpriv") is None:
        pytest.skip("as root, needs setpriv to run as another user")
    if user:  # e.g. a pyenv Python under /root whose libpython that user cannot read
        probe = subprocess.run([*user, sys.executable, "-c", "pass"], capture_output=True, text=True,
                               check=False, cwd="/")
        if probe.returncode != 0:
            pytest.skip(f"{sys.executable} cannot run as uid 65534: "
                        + (probe.stderr.strip().splitlines() or ["no output"])[-1])
    assert _default_dir(user, XDG_STATE_HOME=str(tmp_path / "xdg")) == str(tmp_path / "xdg" / "wheelferry")
    assert _default_dir(user, HOME=str(tmp_path / "home")) == str(tmp_path / "home/.local/state/wheelferry")
    assert _default_dir(root, WHEELFERRY_STATE_DIR=str(tmp_path / "own")) == str(tmp_path / "own")


def test_mark_is_never_lowered_except_by_a_forced_rollback(tmp_path: Path) -> None:
    record_accepted(tmp_path, "demo", 9, "a" * 64)
    assert record_accepted(tmp_path, "demo", 5, "b" * 64).sequence == 9
    assert load_accepted(tmp_path, "demo").sequence == 9  # type: ignore[union-attr]
    record_accepted(tmp_path, "demo", 5, "b" * 64, force_older=True)
    assert load_accepted(tmp_path, "demo").sequence == 5  # type: ignore[union-attr]


_RECORDER = r"""
import random, sys
from pathlib import Path
from wheelferry.offline.state import record_accepted
seqs = list(range(int(sys.argv[2]), 2000, 8))
random.Random(int(sys.argv[2])).shuffle(seqs)
for n in seqs:
    record_accepted(Path(sys.argv[1]), "demo", n, "0" * 64)
"""


def test_concurrent_runs_keep_the_highest_mark(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    procs = [subprocess.Popen([sys.executable, "-c", _RECORDER, str(tmp_path), str(i)], env=env)
             for i in range(8)]
    assert [p.wait(timeout=300) for p in procs] == [0] * 8
    # Eight runs each wrote 250 marks in shuffled order: without the lock a lower one lands last.
    assert load_accepted(tmp_path, "demo").sequence == 1999  # type: ignore[union-attr]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "demo.json"]


def test_unsigned_replay_cannot_lock_out_the_signed_bundle(tmp_path: Path, gpg_keys: GpgKeys,
                                                           capsys: Any) -> None:
    wheel = build_wheel(tmp_path / "built", "alpha", "1.0")
    signed = {}
    for seq in (9, 10):
        out = tmp_path / f"seq{seq}"
        out.mkdir()
        signed[seq] = make_bundle(tmp_path, [wheel], sequence=seq, out=out / "demo.tar")
        gpg_keys.sign("good", signed[seq])
    forged = make_bundle(tmp_path, [wheel], sequence=9_999_999_999, out=tmp_path / "demo.tar")
    state = ["--state-dir", str(tmp_path / "state")]
    keys = ["--keyring", str(gpg_keys.export("good", path=tmp_path / "KEYS.asc")),
            "--trusted-key", gpg_keys.fpr["good"], *state]
    assert main(["verify", str(forged), "--allow-unsigned", *state]) == 0
    assert main(["verify", str(signed[10]), *keys]) == 0
    assert load_accepted(tmp_path / "state", "demo").sequence == 10  # type: ignore[union-attr]
    capsys.readouterr()
    assert main(["verify", str(signed[9]), *keys]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: bundle demo has sequence 9, older than 10 which this host already accepted "
        "(a replayed older bundle?)")
    assert load_accepted(tmp_path / "state", "demo").sequence == 10  # type: ignore[union-attr]
