"""Live tests against the configured package index (opt-in: scripts/test --live)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wheelferry.cli import main

pytestmark = pytest.mark.live
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")

CASES = [
    ("tensorflow==2.15.0", "windows-amd64:3.10", "x86_64-pc-windows-msvc", "3.10"),
    ("tensorflow[and-cuda]==2.20.0", "linux-x86_64:3.11", "x86_64-manylinux_2_28", "3.11"),
    ("tensorflow==2.13.0", "macos-arm64:3.11", "aarch64-apple-darwin", "3.11"),
    ("tensorflow==2.15.0", "linux-aarch64:3.11", "aarch64-manylinux_2_28", "3.11"),
]


@pytest.mark.skipif(UV is None, reason="uv is not installed")
@pytest.mark.parametrize("req,target,uv_platform,pyver", CASES, ids=[c[0] + "@" + c[1] for c in CASES])
def test_live_lock_equals_uv(req: str, target: str, uv_platform: str, pyver: str, tmp_path: Path,
                             capsys: Any) -> None:
    code = main(["lock", "-r", req, "--target", target, "-o", str(tmp_path / "o"), "--cache",
                 str(tmp_path / "c"), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0, res
    (tmp_path / "req.in").write_text(req + "\n")
    env = {**os.environ, "UV_NO_CONFIG": "1", "MACOSX_DEPLOYMENT_TARGET": "12.0"}
    proc = subprocess.run([UV, "pip", "compile", str(tmp_path / "req.in"), "--python-platform", uv_platform,
                           "--python-version", pyver, "--only-binary", ":all:", "--no-header",
                           "--no-annotate", "-q", "--cache-dir", str(tmp_path / "uvc")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    uv_set = dict(line.split("==", 1) for line in proc.stdout.split() if "==" in line)
    assert res["targets"][0]["packages"] == uv_set


def test_live_build_verify_install_offline(tmp_path: Path, gpg_keys: Any, capsys: Any) -> None:
    code = main(["build", "-r", "requests", "--target", "host", "--sign-key", gpg_keys.fpr["good"],
                 "--gnupghome", str(gpg_keys.home), "-o", str(tmp_path / "out"), "--cache",
                 str(tmp_path / "c"), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0, res
    keys = gpg_keys.export("good", path=tmp_path / "k.asc")
    cut = ["unshare", "-rn"] if subprocess.run(["unshare", "-rn", "true"]).returncode == 0 else []
    proc = subprocess.run([*cut, sys.executable, str(tmp_path / "out" / "wheelferry-offline.pyz"), "install",
                           res["bundle"], "--keyring", str(keys), "--trusted-key", gpg_keys.fpr["good"],
                           "--venv", str(tmp_path / "venv"), "--state-dir", str(tmp_path / "s")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([*cut, str(tmp_path / "venv" / "bin" / "python"), "-c", "import requests"])
    assert out.returncode == 0
