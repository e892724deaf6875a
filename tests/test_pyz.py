"""The offline kit: deterministic zipapp that runs on a bare Python, and the import boundary."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import wheelferry
from tests.support.pythons import pyenv_python, python39
from wheelferry.offline import SHARED_MODULES, VENDORED
from wheelferry.pyz import write_offline_pyz

SRC = Path(wheelferry.__file__).parent.parent
OFFLINE = Path(wheelferry.__file__).parent / "offline"
BUILD_SIDE = ("requests", "resolvelib", "tqdm", "urllib3", "filelock", "platformdirs", "msgspec",
              "gnupg", "cyclonedx")


def _offline_modules() -> list[str]:
    return sorted("wheelferry.offline" if p.stem == "__init__" else f"wheelferry.offline.{p.stem}"
                  for p in OFFLINE.glob("*.py"))


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_offline_pyz(tmp_path_factory.mktemp("kit") / "wheelferry-offline.pyz")


def test_deterministic_bytes_and_layout(kit: Path, tmp_path: Path) -> None:
    again = write_offline_pyz(tmp_path / "wheelferry-offline.pyz")
    assert again.read_bytes() == kit.read_bytes()
    assert kit.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert kit.stat().st_mode & 0o777 == 0o755
    assert [p.name for p in tmp_path.iterdir()] == ["wheelferry-offline.pyz"]
    with zipfile.ZipFile(kit) as zf:
        names = zf.namelist()
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert b"wheelferry.offline.cli" in zf.read("__main__.py")
    assert names == sorted(names)
    expected = {"__main__.py", "wheelferry/__init__.py",
                *(f"wheelferry/{m}.py" for m in SHARED_MODULES),
                *(f"wheelferry/offline/{p.name}" for p in OFFLINE.glob("*.py"))}
    assert expected <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # The vendored libraries sit at the root with their licences; their pin list does not.
    for lib in VENDORED:
        assert f"{lib}/__init__.py" in names and any(n.startswith(f"{lib}.LICENSES/") for n in names)
    assert not [n for n in names if n.endswith("vendor.txt") or n.startswith("wheelferry/_vendor")]
    # Nothing of the build half rides along.
    assert "wheelferry/bundle.py" not in names and "wheelferry/cli.py" not in names
    # The kit only reads signatures: what cuts one out of gpg's signed message stays behind.
    assert "wheelferry/signedmessage.py" not in names
    with zipfile.ZipFile(kit) as zf:
        assert not [n for n in names if n.startswith("wheelferry/") and b"class PacketScanner" in zf.read(n)]


def _run_isolated(python: str, kit: Path) -> subprocess.CompletedProcess[str]:
    # -I: no user site, no PYTHON* variables; -S: no site-packages at all.
    return subprocess.run([python, "-I", "-S", str(kit), "--version"], capture_output=True,
                          text=True, check=False, env={"PATH": os.environ.get("PATH", "")})


def test_runs_without_site_packages(kit: Path) -> None:
    proc = _run_isolated(sys.executable, kit)
    assert proc.returncode == 0, proc.stderr
    assert wheelferry.__version__ in proc.stdout + proc.stderr


def test_runs_on_python_3_9(kit: Path) -> None:
    py39 = python39()
    if py39 is None:
        pytest.skip("no pyenv Python 3.9 ($PYENV_ROOT/versions or ~/.pyenv/versions)")
    proc = _run_isolated(py39, kit)
    assert proc.returncode == 0, proc.stderr
    assert wheelferry.__version__ in proc.stdout + proc.stderr
    # Every offline module imports on 3.9 from the kit alone.
    code = f"import sys; sys.path.insert(0, {str(kit)!r}); " + \
        "; ".join(f"import {m}" for m in _offline_modules())
    proc = subprocess.run([py39, "-I", "-S", "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr


def test_vendored_libraries_load_from_the_kit_alone(kit: Path) -> None:
    """With -I -S on the oldest supported Python, nothing comes from the host's site-packages."""
    py = python39() or sys.executable
    code = (f"import sys; sys.path.insert(0, {str(kit)!r}); "
            + "; ".join(f"import {m}" for m in (*_offline_modules(), *VENDORED,
                                                    "packaging.tags", "packaging.metadata",
                                                    "installer.sources", "installer.destinations"))
            + "; bad = sorted(n for n, m in sys.modules.items()"
            + " if (getattr(m, '__file__', None) or '').find('site-packages') >= 0"
            + f" or (n.split('.')[0] in {VENDORED!r} and {str(kit)!r} not in (m.__file__ or '')))"
            + "; print(' '.join(bad))")
    proc = subprocess.run([py, "-I", "-S", "-c", code], capture_output=True, text=True, check=False,
                          env={"PATH": os.environ.get("PATH", "")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"loaded from outside the kit: {proc.stdout}"


@pytest.mark.parametrize("series", ["3.8.", "3.7.", "3.6."])
def test_an_older_python_gets_one_plain_line(kit: Path, series: str) -> None:
    old = pyenv_python(series)
    if old is None:
        pytest.skip(f"no pyenv Python {series.rstrip('.')} on this machine")
    proc = _run_isolated(old, kit)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: wheelferry-offline needs Python 3.9 or newer;")
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_offline_half_imports_no_build_library() -> None:
    """The boundary: with every build library installed, the offline half loads none of them."""
    code = (f"import sys; sys.path.insert(0, {str(SRC)!r}); "
            + "; ".join(f"import {m}" for m in _offline_modules())
            + f"; print(' '.join(sorted(m for m in {BUILD_SIDE!r} if m in sys.modules)))"
            + "; print(' '.join(sorted(m for m in sys.modules if m.startswith('wheelferry.')"
            + " and not m.startswith('wheelferry.offline'))))")
    proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    build_libs, shared = proc.stdout.splitlines()
    assert build_libs == "", f"the offline half imported {build_libs}"
    assert set(shared.split()) <= {f"wheelferry.{m}" for m in SHARED_MODULES}
