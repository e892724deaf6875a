"""Live tests against the configured package index (opt-in: scripts/test --live)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.pythons import python39
from wheelferry.cli import main
from wheelferry.config import pip_index_config

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


# pip 20.2's vendored packaging predates PEP 600: its own tags hold no manylinux_2_28.
PIP_TAGS = ("from pip._internal.utils.compatibility_tags import get_supported; "
            "print(any('manylinux_2_28' in str(t) for t in get_supported()))")
IMPORTS = ("import cryptography, lxml.etree; from cryptography.fernet import Fernet; "
           "k = Fernet(Fernet.generate_key()); assert k.decrypt(k.encrypt(b'x')) == b'x'; "
           "print(cryptography.__version__, lxml.etree.fromstring(b'<a>5.3</a>').text, "
           "'.'.join(map(str, lxml.etree.LXML_VERSION[:3])))")


@pytest.mark.skipif(python39() is None, reason="no pyenv Python 3.9 ($PYENV_ROOT/versions or ~/.pyenv/versions)")
def test_live_pip_20_2_4_host_installs_manylinux_2_28_bundle_offline(tmp_path: Path, gpg_keys: Any,
                                                                       capsys: Any) -> None:
    """RHEL 8's case: Python 3.9 with pip 20.2.4 (which cannot install manylinux_2_28 wheels)
    gets a signed linux-x86_64:3.9 bundle of cryptography 43 and lxml 5.3 (manylinux_2_28
    wheels) and installs it with ``install --python`` from the kit, the network cut."""
    if subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("`unshare -rn` is unavailable here, so the network cannot be cut")
    py39 = python39()
    assert py39 is not None
    host = tmp_path / "host39"
    subprocess.run([py39, "-m", "venv", str(host)], check=True)
    python = str(host / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    index = pip_index_config().index_url
    assert index is not None
    pip = subprocess.run([python, "-m", "pip", "install", "-q", "--index-url", index, "pip==20.2.4"],
                         capture_output=True, text=True, env=env, check=False)
    assert pip.returncode == 0, pip.stderr
    version = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True, env=env)
    assert version.stdout.startswith("pip 20.2.4 "), version.stdout
    blind = subprocess.run([python, "-c", PIP_TAGS], capture_output=True, text=True, env=env, check=True)
    assert blind.stdout.strip() == "False"  # so pip 20.2.4 itself would refuse these wheels

    code = main(["build", "-r", "cryptography==43.0.3", "-r", "lxml==5.3.0", "--target", "linux-x86_64:3.9",
                 "--sign-key", gpg_keys.fpr["good"], "--gnupghome", str(gpg_keys.home),
                 "-o", str(tmp_path / "out"), "--cache", str(tmp_path / "c"), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0, res
    with tarfile.open(res["bundle"]) as tar:
        wheels = sorted(Path(n).name for n in tar.getnames() if n.endswith(".whl"))
    assert [w for w in wheels if w.startswith(("cryptography-", "lxml-"))] == [
        "cryptography-43.0.3-cp39-abi3-manylinux_2_28_x86_64.whl",
        "lxml-5.3.0-cp39-cp39-manylinux_2_28_x86_64.whl"], wheels
    keys = gpg_keys.export("good", path=tmp_path / "k.asc")
    proc = subprocess.run(["unshare", "-rn", python, str(tmp_path / "out" / "wheelferry-offline.pyz"), "install",
                           res["bundle"], "--keyring", str(keys), "--trusted-key", gpg_keys.fpr["good"],
                           "--python", python, "--state-dir", str(tmp_path / "s"), "--json"],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    report = json.loads(proc.stdout)
    assert report["target"] == "linux-x86_64-cp39-cpu", report
    assert {"cryptography==43.0.3", "lxml==5.3.0"} <= set(report["packages"]), report
    out = subprocess.run(["unshare", "-rn", python, "-c", IMPORTS], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["43.0.3", "5.3", "5.3.0"]
    # pip 20.2.4 sees a normal environment: the packages, installed by wheelferry, requirements met.
    listed = subprocess.run([python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True,
                            env=env, check=True)
    have = {d["name"].lower(): d["version"] for d in json.loads(listed.stdout)}
    assert have["cryptography"] == "43.0.3" and have["lxml"] == "5.3.0" and have["pip"] == "20.2.4"
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True, env=env)
    assert check.returncode == 0 and "No broken requirements found." in check.stdout, check.stdout
    sp = host / "lib" / "python3.9" / "site-packages"
    assert (sp / "cryptography-43.0.3.dist-info" / "INSTALLER").read_text().strip() == "wheelferry"
