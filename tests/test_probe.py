"""`wheelferry probe`: capture an interpreter exactly, and lock for that capture."""

from __future__ import annotations

import itertools
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from packaging.version import Version

from tests.support.pythons import python39
from tests.support.wheels import build_wheel
from wheelferry.cli import main

ROOT = Path(__file__).resolve().parents[1]
PY39 = python39()


def run(*argv: str, capsys: Any) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def _native_linux_first(ladder: list[str]) -> list[str]:
    """Within each interpreter-abi run of *ladder*, the plain linux_* tags first (stable)."""
    out: list[str] = []
    for _key, group in itertools.groupby(ladder, key=lambda t: t.rsplit("-", 1)[0]):
        out += sorted(group, key=lambda t: not t.rsplit("-", 1)[1].startswith("linux_"))
    return out


def test_native_linux_first_moves_only_the_plain_linux_tag() -> None:
    old = ["cp39-cp39-manylinux_2_17_x86_64", "cp39-cp39-manylinux2014_x86_64", "cp39-cp39-linux_x86_64",
           "cp39-abi3-manylinux_2_17_x86_64", "cp39-abi3-linux_x86_64", "py3-none-any"]
    assert _native_linux_first(old) == [
        "cp39-cp39-linux_x86_64", "cp39-cp39-manylinux_2_17_x86_64", "cp39-cp39-manylinux2014_x86_64",
        "cp39-abi3-linux_x86_64", "cp39-abi3-manylinux_2_17_x86_64", "py3-none-any"]


def test_probe_equals_what_pip_here_accepts_in_order(tmp_path: Path, capsys: Any) -> None:
    code, _res = run("probe", "-o", str(tmp_path / "cap.json"), "--name", "here", capsys=capsys)
    assert code == 0
    cap = json.loads((tmp_path / "cap.json").read_text())
    from pip._vendor import packaging as pip_packaging
    from pip._vendor.packaging import markers, tags

    pip_tags = [str(t) for t in tags.sys_tags()]
    if Version(pip_packaging.__version__) < Version("26.3"):
        # The probe reads the kit's packaging (26.3), which puts a plain linux_* tag before
        # manylinux/musllinux (pypa/packaging#160); this pip (26.0.1 is the last for Python 3.9)
        # vendors an older one that puts it last.  The same tags, in that one order change.
        pip_tags = _native_linux_first(pip_tags)
    assert cap["compatible_tags"] == pip_tags
    assert cap["marker_environment"] == markers.default_environment()
    assert cap["name"] == "here" and cap["python"] == platform.python_version()


@pytest.mark.skipif(not PY39, reason="no pyenv Python 3.9 on this machine")
def test_probe_describes_another_interpreter(tmp_path: Path, capsys: Any) -> None:
    code, _res = run("probe", "--python", PY39, "-o", str(tmp_path / "c.json"), capsys=capsys)
    assert code == 0
    cap = json.loads((tmp_path / "c.json").read_text())
    assert cap["marker_environment"]["python_version"] == "3.9"
    assert cap["compatible_tags"][0].startswith("cp39-cp39-")


def test_offline_kit_probe_runs_without_site_packages(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-S", "-c", "from wheelferry.offline.cli import main; "
                           f"raise SystemExit(main(['probe', '-o', {str(tmp_path / 'p.json')!r}]))"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "p.json").read_text())["compatible_tags"]


@pytest.fixture
def glibc_repo(tmp_path: Path) -> Path:
    d = tmp_path / "wheels"
    build_wheel(d, "native", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    build_wheel(d, "native", "2.0", tag="cp311-cp311-manylinux_2_28_x86_64")
    build_wheel(d, "native", "2.0", tag="cp311-cp311-manylinux_2_34_x86_64", padding=10)
    return d


def _capture(tmp_path: Path, name: str, keep: Callable[[str], bool], fmt: str = "wheelferry") -> Path:
    from pip._vendor.packaging import markers, tags

    env = markers.default_environment()
    env.update(python_version="3.11", python_full_version="3.11.4", platform_machine="x86_64",
               sys_platform="linux", platform_system="Linux", implementation_name="cpython")
    ladder = [str(t) for t in tags.cpython_tags((3, 11), ["cp311"], ["manylinux_2_34_x86_64",
              "manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"])]
    doc: dict[str, Any] = {"marker_environment": env, "compatible_tags": [t for t in ladder if keep(t)]}
    if fmt == "wheelferry":
        doc["name"] = name
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def test_lock_for_an_old_glibc_capture_picks_the_older_wheel(index_server: Callable[..., Any],
                                                            glibc_repo: Path, tmp_path: Path,
                                                            capsys: Any) -> None:
    server = index_server(glibc_repo)
    old = _capture(tmp_path, "factory7", lambda t: "2_28" not in t and "2_34" not in t)
    new = _capture(tmp_path, "lab", lambda t: True)
    code, res = run("lock", "-r", "native", "--target", f"@{old}", "--target", f"@{new}",
                    "--index-url", server.url, "--cache", str(tmp_path / "c"), "-o", str(tmp_path / "o"),
                    capsys=capsys)
    assert code == 0, res
    by_id = {t["id"]: t["packages"] for t in res["targets"]}
    assert by_id == {"factory7": {"native": "1.0"}, "lab": {"native": "2.0"}}
    lock = json.loads((tmp_path / "o" / "wheelferry.lock.json").read_text())
    lab = next(t for t in lock["targets"] if t["id"] == "lab")
    assert lab["packages"][0]["wheel"].endswith("manylinux_2_34_x86_64.whl")
    assert lab["tags"][0] == "cp311-cp311-manylinux_2_34_x86_64"


def test_pex_complete_platform_file_is_accepted(index_server: Callable[..., Any], glibc_repo: Path,
                                                tmp_path: Path, capsys: Any) -> None:
    server = index_server(glibc_repo)
    pex = _capture(tmp_path, "pex-platform", lambda t: "2_34" not in t, fmt="pex")
    code, res = run("lock", "-r", "native", "--target", f"@{pex}", "--index-url", server.url,
                    "--cache", str(tmp_path / "c"), "-o", str(tmp_path / "o"), capsys=capsys)
    assert code == 0, res
    assert res["targets"][0]["id"] == "pex-platform" and res["targets"][0]["packages"] == {"native": "2.0"}


@pytest.mark.parametrize("content", ['{"marker_environment": {', '[]', '{"compatible_tags": []}',
                                     '{"marker_environment": {"python_version": "3.11"}, '
                                     '"compatible_tags": ["py3-none-any"]}'])
def test_malformed_capture_exits_2(content: str, tmp_path: Path, capsys: Any) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, res = run("lock", "-r", "six", "--target", f"@{bad}", "-o", str(tmp_path / "o"), capsys=capsys)
    assert code == 2, res
    assert "bad" in res["message"] and not (tmp_path / "o").exists()


@pytest.mark.skipif(not PY39, reason="no pyenv Python 3.9 on this machine")
def test_probe_of_python39_locks_like_the_matching_target(index_server: Callable[..., Any], tmp_path: Path,
                                                          capsys: Any) -> None:
    d = tmp_path / "w"
    build_wheel(d, "app", "1.0", requires=['backport; python_version < "3.10"', "native"])
    build_wheel(d, "backport", "1.0")
    build_wheel(d, "native", "1.0", tag="cp39-cp39-manylinux_2_17_x86_64")
    build_wheel(d, "native", "2.0", tag="cp310-cp310-manylinux_2_17_x86_64")
    server = index_server(d)
    assert run("probe", "--python", PY39, "-o", str(tmp_path / "p39.json"), capsys=capsys)[0] == 0
    glibc = ".".join(platform.libc_ver()[1].split(".")[:2])
    sets = []
    for target in (f"@{tmp_path / 'p39.json'}", "linux-x86_64:3.9"):
        code, res = run("lock", "-r", "app", "--target", target, "--glibc", glibc, "--index-url", server.url,
                        "--cache", str(tmp_path / "c"), "-o", str(tmp_path / f"o{len(sets)}"), capsys=capsys)
        assert code == 0, res
        sets.append(res["targets"][0]["packages"])
    assert sets[0] == sets[1] == {"app": "1.0", "backport": "1.0", "native": "1.0"}


@pytest.mark.skipif(python39() is None, reason="no pyenv Python 3.9 ($PYENV_ROOT/versions or ~/.pyenv/versions)")
def test_pipless_python39_is_described_with_manylinux_2_28(tmp_path: Path) -> None:
    """No pip in the interpreter: the kit's packaging reads its tags (PEP 600 included)."""
    from wheelferry.offline.hostmatch import probe_host

    py39 = python39()
    assert py39 is not None
    env = tmp_path / "nopip"
    subprocess.run([py39, "-m", "venv", "--without-pip", str(env)], check=True)
    python = str(env / "bin" / "python")
    assert subprocess.run([python, "-c", "import pip"], capture_output=True).returncode != 0
    host = probe_host(python)
    assert host.markers["python_version"] == "3.9"
    if platform.machine() == "x86_64" and platform.libc_ver()[0] == "glibc" \
            and tuple(map(int, platform.libc_ver()[1].split(".")[:2])) >= (2, 28):
        assert "cp39-cp39-manylinux_2_28_x86_64" in host.tags
    assert "py3-none-any" in host.tags
