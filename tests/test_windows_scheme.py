"""A windows-amd64 lock laid out by the engine in a Windows scheme, on Linux: Lib/site-packages,
Scripts/*.exe from the vendored installer's launchers, RECORD naming them; and the in-place
transaction's plan of the same wheels names exactly what the engine wrote; and the same from
the kit's .pyz run by Python 3.9 (launchers read from inside the zip)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.support.pythons import python39
from tests.support.wheels import build_wheel
from wheelferry.offline.engine import install_wheels, installed_distributions
from wheelferry.offline.sitetxn import plan_wheel
from wheelferry.offline.state import default_state_dir

LAUNCHERS = Path(__file__).resolve().parents[1] / "src" / "wheelferry" / "_vendor" / "installer" / "_scripts"
PYTHON_EXE = r"C:\srv\tf\Scripts\python.exe"
WIN_TAGS = ["cp39-cp39-win_amd64", "cp39-abi3-win_amd64", "cp39-none-any", "py3-none-any"]
ENTRY = b"[console_scripts]\nalpha-tool = alpha:main\n[gui_scripts]\nalpha-gui = alpha:gui\n"


def _scheme(root: Path) -> dict[str, str]:
    """What sysconfig's ``nt`` scheme gives a venv at *root* (headers as pip puts them there)."""
    return {"purelib": str(root / "Lib" / "site-packages"), "platlib": str(root / "Lib" / "site-packages"),
            "scripts": str(root / "Scripts"), "data": str(root), "headers": str(root / "Include" / "site")}


@pytest.fixture()
def wheels(tmp_path: Path) -> list[Path]:
    w = tmp_path / "wheels"
    native = build_wheel(w, "alpha", "1.0", tag="cp39-cp39-win_amd64", files={
        "alpha/__init__.py": b"__version__ = '1.0'\ndef main():\n    pass\ndef gui():\n    pass\n",
        "alpha/_speedups.pyd": b"MZ not really a DLL\n",
        "alpha-1.0.dist-info/entry_points.txt": ENTRY,
        "alpha-1.0.data/scripts/alpha-setup.bat": b"@echo off\r\n",
        "alpha-1.0.data/headers/alpha.h": b"#define ALPHA 1\n",
        "alpha-1.0.data/data/share/alpha/LICENSE.txt": b"MIT\n"})
    return [native, build_wheel(w, "beta", "2.0")]


def test_windows_layout_with_exe_launchers(tmp_path: Path, wheels: list[Path]) -> None:
    root = tmp_path / "tf"
    scheme = _scheme(root)
    written = install_wheels(wheels, scheme, "python3", shebang=PYTHON_EXE, compile=False,
                             launcher="win-amd64", tags=WIN_TAGS)
    site = root / "Lib" / "site-packages"
    assert (site / "alpha" / "__init__.py").is_file() and (site / "alpha" / "_speedups.pyd").is_file()
    assert (site / "beta" / "__init__.py").is_file()
    assert (root / "Scripts" / "alpha-setup.bat").read_bytes() == b"@echo off\r\n"
    assert (root / "Include" / "site" / "alpha" / "alpha.h").is_file()
    assert (root / "share" / "alpha" / "LICENSE.txt").is_file()
    assert not (root / "bin").exists() and not (root / "lib").exists()
    # Console and GUI scripts: installer's own launcher, the interpreter's path, a zip with __main__.py.
    for name, launcher in (("alpha-tool", "t64.exe"), ("alpha-gui", "w64.exe")):
        exe = (root / "Scripts" / f"{name}.exe").read_bytes()
        template = (LAUNCHERS / launcher).read_bytes()
        assert exe.startswith(template), name
        assert exe[len(template):].startswith(f"#!{PYTHON_EXE}\n".encode()), name
        with zipfile.ZipFile(io.BytesIO(exe)) as zf:
            main = zf.read("__main__.py").decode()
        assert "from alpha import" in main and ("main" if name == "alpha-tool" else "gui") in main
        assert not (root / "Scripts" / name).exists()
    rows = {r[0]: r for r in csv.reader((site / "alpha-1.0.dist-info" / "RECORD").read_text().splitlines())}
    assert "../../Scripts/alpha-tool.exe" in rows and rows["../../Scripts/alpha-tool.exe"][1].startswith("sha256=")
    assert "../../Scripts/alpha-gui.exe" in rows and "alpha/_speedups.pyd" in rows
    assert (site / "alpha-1.0.dist-info" / "INSTALLER").read_text().strip() == "wheelferry"
    assert set(installed_distributions([site])) == {"alpha", "beta"}
    # The --python transaction plans the same files (so it stashes and undoes the right ones).
    planned = {p for w in wheels for p in plan_wheel(w, {**scheme, "launcher": "win-amd64"}).files}
    assert {str(p) for p in written} <= planned
    assert {p for p in planned if Path(p).exists()} == {str(p) for p in written}


def test_windows_wheel_refused_for_a_linux_interpreter(tmp_path: Path, wheels: list[Path]) -> None:
    from wheelferry.errors import InstallError

    with pytest.raises(InstallError, match="alpha-1.0-cp39-cp39-win_amd64.whl"):
        install_wheels(wheels, _scheme(tmp_path / "x"), "python3", compile=False,
                       tags=["cp39-cp39-manylinux_2_28_x86_64", "py3-none-any"])
    assert not (tmp_path / "x").exists()


def test_state_directory_on_windows_is_under_localappdata() -> None:
    local = r"C:\Users\op\AppData\Local"
    assert str(default_state_dir(windows=True, environ={"LOCALAPPDATA": local})) == local + "/wheelferry"
    assert default_state_dir(windows=False, environ={"XDG_STATE_HOME": "/var/lib/s"}, root=False) == Path(
        "/var/lib/s/wheelferry")


# Run by Python 3.9 with -I -S and the kit's .pyz first on the path (nothing from a checkout or
# site-packages): read every launcher installer ships through importlib.resources (a zip
# import), then lay out the Windows wheels as the engine does for a windows-amd64 install.
KIT_WINDOWS = """
import hashlib, json, os, sys
pyz, root, shebang, tags, *wheels = sys.argv[1:]
sys.path.insert(0, pyz)
from importlib.resources import read_binary
from wheelferry.offline.engine import _vendored, install_wheels
_vendored()
import installer._scripts
read = {n: hashlib.sha256(read_binary(installer._scripts, n)).hexdigest()
        for n in ("t32.exe", "t64.exe", "w32.exe", "w64.exe", "t64-arm.exe", "w64-arm.exe")}
scheme = {"purelib": os.path.join(root, "Lib", "site-packages"), "scripts": os.path.join(root, "Scripts"),
          "data": root, "headers": os.path.join(root, "Include", "site")}
scheme["platlib"] = scheme["purelib"]
install_wheels(wheels, scheme, sys.executable, shebang=shebang, compile=False, launcher="win-amd64",
               tags=json.loads(tags))
mods = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}
print(json.dumps({"read": read, "version": list(sys.version_info[:2]),
                  "installer": mods["installer"], "engine": mods["wheelferry.offline.engine"]}))
"""


@pytest.mark.skipif(python39() is None, reason="no pyenv Python 3.9 ($PYENV_ROOT/versions or ~/.pyenv/versions)")
def test_windows_launchers_from_the_pyz_on_python39(tmp_path: Path, wheels: list[Path]) -> None:
    """The kit as build writes it, run by Python 3.9: installer's .exe launchers are read from
    inside the zip, and a windows-amd64 install writes Scripts/*.exe made of exactly them."""
    from wheelferry.pyz import write_offline_pyz

    kit = write_offline_pyz(tmp_path / "wheelferry-offline.pyz")
    with zipfile.ZipFile(kit) as zf:  # the kit carries every launcher, byte for byte
        for exe in sorted(LAUNCHERS.glob("*.exe")):
            assert zf.read(f"installer/_scripts/{exe.name}") == exe.read_bytes(), exe.name
    py39 = python39()
    assert py39 is not None
    root = tmp_path / "tf"
    proc = subprocess.run([py39, "-I", "-S", "-c", KIT_WINDOWS, str(kit), str(root), PYTHON_EXE,
                           json.dumps(WIN_TAGS), *map(str, wheels)],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["version"] == [3, 9]
    assert got["installer"].startswith(str(kit)) and got["engine"].startswith(str(kit)), got
    assert got["read"] == {n: hashlib.sha256((LAUNCHERS / n).read_bytes()).hexdigest() for n in got["read"]}
    for name, launcher in (("alpha-tool", "t64.exe"), ("alpha-gui", "w64.exe")):
        exe = (root / "Scripts" / f"{name}.exe").read_bytes()
        template = (LAUNCHERS / launcher).read_bytes()
        assert exe[:len(template)] == template, name
        assert exe[len(template):].startswith(f"#!{PYTHON_EXE}\n".encode()), name
        with zipfile.ZipFile(io.BytesIO(exe)) as zf:
            assert "from alpha import" in zf.read("__main__.py").decode()
    rows = {r[0]: r for r in csv.reader((root / "Lib" / "site-packages" / "alpha-1.0.dist-info" / "RECORD")
                                         .read_text().splitlines())}
    digest = hashlib.sha256((root / "Scripts" / "alpha-tool.exe").read_bytes()).digest()
    assert rows["../../Scripts/alpha-tool.exe"][1] == "sha256=" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
