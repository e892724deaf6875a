"""The kit's install engine against real pip, real venvs and broken wheels."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import marshal
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.pythons import pip_for, pipless_venv
from tests.support.wheels import build_wheel
from wheelferry.errors import InstallError
from wheelferry.offline.engine import (
    _TASK_BYTES,
    check_requirements,
    install_wheels,
    venv_scheme,
)

ENTRY = b"[console_scripts]\nalpha-tool = alpha.cli:main\n[gui_scripts]\nalpha-gui = alpha.cli:main\n"
CLI = b"def main():\n    print('alpha tool ran')\n"


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _rezip(wheel: Path, out: Path, replace: dict[str, bytes] | None = None,
           modes: dict[str, int] | None = None, fix_record: bool = False) -> Path:
    """Copy *wheel* to *out*, member bytes replaced (RECORD left as it was unless *fix_record*)."""
    replace, modes = replace or {}, modes or {}
    with zipfile.ZipFile(wheel) as src:
        items = [(i, replace.get(i.filename, src.read(i))) for i in src.infolist()]
    if fix_record:
        record_name = next(i.filename for i, _ in items if i.filename.endswith(".dist-info/RECORD"))
        lines = [f"{i.filename},{_digest(d)},{len(d)}" for i, d in items if i.filename != record_name]
        items = [(i, ("\n".join([*lines, f"{record_name},,"]) + "\n").encode() if i.filename == record_name else d)
                 for i, d in items]
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in items:
            new = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            new.external_attr = modes.get(info.filename, info.external_attr >> 16) << 16
            new.compress_type = info.compress_type
            zf.writestr(new, data)
    return out


def _rich_wheel(directory: Path) -> Path:
    """alpha 1.0 with subpackages, .data scripts/headers/data/purelib, entry points, an executable file."""
    chunks = {f"alpha/blob{i}.bin": hashlib.shake_256(b"%d" % i).digest(3 * _TASK_BYTES // 2) for i in range(3)}
    base = build_wheel(directory / "raw", "alpha", "1.0", requires=["beta>=1"], files={
        "alpha/cli.py": CLI,
        "alpha/sub/__init__.py": b"X = 1\n",
        "alpha/sub/mod.py": b"def f():\n    return 42\n",
        "alpha/run.sh": b"#!/bin/sh\necho hi\n",
        "alpha-1.0.dist-info/entry_points.txt": ENTRY,
        "alpha-1.0.data/scripts/alpha-legacy": b"#!python\nprint('legacy script ran')\n",
        "alpha-1.0.data/headers/alpha.h": b"#define ALPHA 1\n",
        "alpha-1.0.data/data/share/alpha/readme.txt": b"shared data\n",
        "alpha-1.0.data/purelib/alpha_extra.py": b"EXTRA = 'yes'\n",
        **chunks,
    })
    return _rezip(base, directory / base.name, modes={"alpha/run.sh": 0o755})


def _venv(path: Path) -> Path:
    """A venv without pip of its own: where pip is needed, pip_for() runs the suite's pip on it."""
    return pipless_venv(path)


def _record(site: Path, dist_info: str) -> dict[str, tuple[str, str]]:
    rows = csv.reader(io.StringIO((site / dist_info / "RECORD").read_text(encoding="utf-8")))
    return {r[0]: (r[1], r[2]) for r in rows}


def _site(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return Path(out)


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same wheels installed by real pip into one venv and by the engine into another."""
    root = tmp_path_factory.mktemp("engine")
    wheels = [_rich_wheel(root / "w"), build_wheel(root / "w", "beta", "1.0")]
    by_pip = _venv(root / "pip-env")
    subprocess.run([*pip_for(by_pip), "install", "-q", "--no-index", "--no-deps", "--find-links",
                    str(root / "w"), "alpha==1.0", "beta==1.0"], check=True,
                   env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    ours = _venv(root / "engine-env")
    written = install_wheels(wheels, venv_scheme(str(ours)), str(ours), workers=4)
    return {"root": root, "pip": by_pip, "ours": ours, "written": written}  # type: ignore[dict-item]


def test_engine_installs_the_files_pip_installs(twins: dict[str, Path]) -> None:
    pip_site, our_site = _site(twins["pip"]), _site(twins["ours"])
    for dist_info in ("alpha-1.0.dist-info", "beta-1.0.dist-info"):
        theirs, mine = _record(pip_site, dist_info), _record(our_site, dist_info)
        # Same files in RECORD (pip's .pyc and REQUESTED included).
        assert sorted(mine) == sorted(theirs)
        for path, (digest, size) in mine.items():
            full = our_site / path
            assert full.is_file() or path.endswith("/RECORD"), path
            if digest:
                data = full.read_bytes()
                assert digest == _digest(data) and size == str(len(data)), path
            # Files unpacked from the wheel are byte for byte what pip wrote; scripts (another
            # template, another interpreter path), bytecode (source mtime) and INSTALLER differ.
            generated = path.endswith((".pyc", "/INSTALLER")) or path.startswith("../../../bin/")
            if not generated:
                assert (digest, size) == theirs[path], path
        assert (our_site / dist_info / "INSTALLER").read_text() == "wheelferry\n"
    env = twins["ours"].parent.parent
    assert (env / "include" / "site" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "alpha" /
            "alpha.h").is_file()
    assert (env / "share" / "alpha" / "readme.txt").read_text() == "shared data\n"
    assert os.stat(our_site / "alpha" / "run.sh").st_mode & stat.S_IXUSR
    assert not os.stat(our_site / "alpha" / "cli.py").st_mode & stat.S_IXUSR
    recorded = {os.path.normpath(our_site / p) for d in ("alpha-1.0.dist-info", "beta-1.0.dist-info")
                for p in _record(our_site, d)}
    assert {os.path.normpath(p) for p in twins["written"]} == recorded  # type: ignore[attr-defined]


def test_scripts_entry_points_and_metadata_work(twins: dict[str, Path]) -> None:
    bindir = twins["ours"].parent
    for tool, said in (("alpha-tool", "alpha tool ran"), ("alpha-gui", "alpha tool ran"),
                       ("alpha-legacy", "legacy script ran")):
        assert (bindir / tool).read_text().startswith(f"#!{twins['ours']}\n")
        out = subprocess.run([str(bindir / tool)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == said
    code = ("import importlib.metadata as m, json; d = m.distribution('alpha'); "
            "print(json.dumps([d.version, d.read_text('INSTALLER'), sorted(e.name for e in d.entry_points), "
            "d.requires, len(d.files), __import__('alpha_extra').EXTRA]))")
    got = json.loads(subprocess.run([str(twins["ours"]), "-c", code], capture_output=True, text=True,
                                    check=True).stdout)
    assert got[:4] == ["1.0", "wheelferry\n", ["alpha-gui", "alpha-tool"], ["beta>=1"]]
    assert got[4] == len(_record(_site(twins["ours"]), "alpha-1.0.dist-info")) and got[5] == "yes"


def test_bytecode_names_the_final_path(tmp_path: Path) -> None:
    built, lives = tmp_path / "env.staging", tmp_path / "env"
    python = _venv(built)
    wheel = build_wheel(tmp_path / "w", "alpha", "1.0", files={"alpha/sub/mod.py": b"def f():\n    return 42\n"})
    install_wheels([wheel], venv_scheme(str(python)), str(python), shebang=str(lives / "bin" / "python"),
                   moved=(built, lives))
    pycs = list(built.glob("lib/python*/site-packages/alpha/sub/__pycache__/mod.*.pyc"))
    assert len(pycs) == 1
    code = marshal.loads(pycs[0].read_bytes()[16:])
    assert code.co_filename == str(lives / pycs[0].parent.parent.relative_to(built) / "mod.py")
    os.rename(built, lives)
    out = subprocess.run([str(lives / "bin" / "python"), "-c", "import alpha.sub.mod as m; print(m.f())"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "42"


def test_no_compile_writes_no_bytecode(tmp_path: Path) -> None:
    python = _venv(tmp_path / "env")
    wheel = build_wheel(tmp_path / "w", "alpha", "1.0")
    written = install_wheels([wheel], venv_scheme(str(python)), str(python), compile=False)
    assert written and not [p for p in written if p.suffix == ".pyc"]
    assert not list((tmp_path / "env").rglob("*.pyc"))


def test_the_biggest_wheel_lands_whole_however_the_workers_share_it(tmp_path: Path) -> None:
    # Four workers share the members of the biggest wheel (its three big members are a task each):
    # every member lands once, with its bytes and mode, as one worker writes it.  That the sharing
    # makes the unpack faster is a speed property: benchmarks/unpack_split.py measures it.
    big = _rich_wheel(tmp_path / "w")
    small = build_wheel(tmp_path / "w", "beta", "1.0")
    trees = {}
    for workers in (1, 4):
        root = tmp_path / f"dest-{workers}"
        scheme = {k: str(root / k) for k in ("purelib", "platlib", "headers", "scripts", "data")}
        written = install_wheels([big, small], scheme, sys.executable, compile=False, workers=workers)
        tree = {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode)
                for p in root.rglob("*") if p.is_file()}
        assert sorted(str(Path(p).relative_to(root)) for p in written) == sorted(tree)
        trees[workers] = tree
        with zipfile.ZipFile(big) as zf:
            for name in zf.namelist():
                if name.startswith("alpha/"):
                    assert (root / "purelib" / name).read_bytes() == zf.read(name), name
    assert trees[4] == trees[1]


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def scheme(tmp_path: Path) -> dict[str, str]:
    out = {k: str(tmp_path / "dest" / k) for k in ("purelib", "platlib", "headers", "scripts", "data")}
    for d in out.values():
        os.makedirs(d)
    return out


def _refused(wheels: list[Path], scheme: dict[str, str], match: str, **kw: object) -> str:
    before = _tree(Path(scheme["purelib"]).parent)
    with pytest.raises(InstallError, match=match) as e:
        install_wheels(wheels, scheme, sys.executable, **kw)  # type: ignore[arg-type]
    assert _tree(Path(scheme["purelib"]).parent) == before  # nothing half-written
    assert "\n" not in str(e.value)
    return str(e.value)


def test_a_record_that_lies_is_refused_and_nothing_stays(tmp_path: Path, scheme: dict[str, str]) -> None:
    good = build_wheel(tmp_path / "w", "alpha", "1.0", padding=3 * _TASK_BYTES)
    # The padding is written last and big: the other members and wheels are on disk when the lie shows.
    liar = _rezip(good, tmp_path / "bad" / good.name, replace={"alpha/_padding.bin": b"\0" * (3 * _TASK_BYTES)})
    other = build_wheel(tmp_path / "w", "beta", "1.0")
    msg = _refused([other, liar], scheme, r"^alpha-1\.0-py3-none-any\.whl: its RECORD lies about alpha/_padding\.bin")
    assert "refused, nothing was installed" in msg
    short = _rezip(good, tmp_path / "short" / good.name, replace={"alpha/__init__.py": b"x = 1\n"})
    _refused([short], scheme, "RECORD lies about alpha/__init__.py")
    unlisted = _rezip(good, tmp_path / "unl" / good.name, replace={"alpha/_padding.bin": b""})
    with zipfile.ZipFile(unlisted, "a") as zf:
        zf.writestr("alpha/sneaky.py", b"import os\n")
    _refused([unlisted], scheme, "alpha/sneaky.py is not listed in its RECORD")


def test_two_wheels_writing_one_file_are_refused(tmp_path: Path, scheme: dict[str, str]) -> None:
    a = build_wheel(tmp_path / "w", "a", "1.0", files={"shared/x.py": b"A = 1\n"})
    b = build_wheel(tmp_path / "w", "b", "1.0", files={"b-1.0.data/purelib/shared/x.py": b"B = 1\n"})
    msg = _refused([a, b], scheme, r"a-1\.0-py3-none-any\.whl and b-1\.0-py3-none-any\.whl both write")
    assert "shared" in msg


def test_a_script_two_wheels_declare_is_written_once(tmp_path: Path, scheme: dict[str, str]) -> None:
    """tensorflow and tensorboard both declare ``tensorboard``: as with pip, it is written once, by
    the wheel of that name (else the last), and only that wheel's RECORD lists it."""
    ep = b"[console_scripts]\ntool = tool.main:run\nc-only = c:main\n"
    c = build_wheel(tmp_path / "w2", "c", "1.0", files={"c-1.0.dist-info/entry_points.txt": ep})
    tool = build_wheel(tmp_path / "w2", "tool", "2.0", files={"tool-2.0.dist-info/entry_points.txt":
                                                              b"[console_scripts]\ntool = tool.main:run\n"})
    install_wheels([tool, c], scheme, sys.executable, compile=False)
    records = {name: Path(scheme["purelib"], f"{name}.dist-info", "RECORD").read_text()
               for name in ("c-1.0", "tool-2.0")}
    assert Path(scheme["scripts"], "tool").is_file() and Path(scheme["scripts"], "c-only").is_file()
    assert "/tool," in records["tool-2.0"] and "/tool," not in records["c-1.0"]
    assert "/c-only," in records["c-1.0"]


def test_an_existing_file_is_refused_unless_replacing(tmp_path: Path, scheme: dict[str, str]) -> None:
    a = build_wheel(tmp_path / "w", "a", "1.0")
    Path(scheme["purelib"], "a").mkdir()
    Path(scheme["purelib"], "a", "__init__.py").write_text("mine\n")
    _refused([a], scheme, r"a-1\.0-py3-none-any\.whl would overwrite .*__init__\.py, which exists")
    install_wheels([a], scheme, sys.executable, replace=True, compile=False)
    assert "__version__ = '1.0'" in Path(scheme["purelib"], "a", "__init__.py").read_text()


def test_wrong_tags_and_broken_wheels_are_refused(tmp_path: Path, scheme: dict[str, str]) -> None:
    win = build_wheel(tmp_path / "w", "a", "1.0", tag="cp39-cp39-win_amd64")
    _refused([win], scheme, r"a-1\.0-cp39-cp39-win_amd64\.whl: its tags \(cp39-cp39-win_amd64\) do not fit",
             tags={"py3-none-any", "cp39-cp39-manylinux_2_28_x86_64"})
    future = build_wheel(tmp_path / "w2", "z", "1.0", files={
        "z-1.0.dist-info/WHEEL": b"Wheel-Version: 9.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"})
    _refused([future], scheme, r"z-1\.0-py3-none-any\.whl: .*Wheel-Version 9\.0")
    bad_ep = build_wheel(tmp_path / "w3", "e", "1.0", files={"e-1.0.dist-info/entry_points.txt":
                                                             b"[console_scripts]\ntool = not a module!\n"})
    _refused([bad_ep], scheme, r"e-1\.0-py3-none-any\.whl: its entry_points\.txt is malformed")


def test_cancel_removes_what_was_written(tmp_path: Path, scheme: dict[str, str]) -> None:
    wheel = build_wheel(tmp_path / "w", "alpha", "1.0", padding=2 * _TASK_BYTES)
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 2

    _refused([wheel], scheme, "cancelled", cancelled=cancelled)


def test_requirements_check_says_what_pip_check_says(tmp_path: Path) -> None:
    reqs = ["beta>=2", "gamma", "delta; sys_platform == 'win32'", "Beta<5"]
    wheels = [build_wheel(tmp_path / "w", "alpha", "1.0", requires=reqs, extras={"fancy": ["epsilon"]}),
              build_wheel(tmp_path / "w", "beta", "1.0", requires=["alpha==1.*"]),
              build_wheel(tmp_path / "w", "zeta", "1.0rc1"),
              build_wheel(tmp_path / "w", "eta", "1.0", requires=["zeta>=0.9"])]
    python = _venv(tmp_path / "env")
    subprocess.run([*pip_for(python), "install", "-q", "--no-index", "--no-deps", *map(str, wheels)],
                   check=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    pip_says = subprocess.run([*pip_for(python), "check"], capture_output=True, text=True, check=False)
    assert pip_says.returncode == 1
    markers = json.loads(subprocess.run([str(python), "-c", "import json, packaging.markers as m; "
                                         "print(json.dumps(m.default_environment()))"],
                                        capture_output=True, text=True, check=True,
                                        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src" /
                                                                          "wheelferry" / "_vendor")}).stdout)
    ours = check_requirements([_site(python)], markers)
    assert sorted(ours) == sorted(line for line in pip_says.stdout.splitlines() if line.strip())
    assert any("gamma, which is not installed" in line for line in ours)
    assert check_requirements([_site(python)], {**markers, "sys_platform": "win32"}) != ours  # markers judged


def test_pip_sees_a_normal_environment(tmp_path: Path) -> None:
    """pip list, pip check and pip uninstall work on what the engine installed."""
    python = _venv(tmp_path / "env")
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    install_wheels([_rich_wheel(tmp_path / "w"), build_wheel(tmp_path / "w", "beta", "1.0")],
                   venv_scheme(str(python)), str(python))
    listed = subprocess.run([*pip_for(python), "list", "--format=json"], capture_output=True, text=True,
                            check=True, env=env).stdout
    assert {"name": "alpha", "version": "1.0"} in json.loads(listed)
    check = subprocess.run([*pip_for(python), "check"], capture_output=True, text=True, check=False, env=env)
    assert check.returncode == 0, check.stdout
    subprocess.run([*pip_for(python), "uninstall", "-y", "-q", "alpha", "beta"], check=True, env=env)
    site = _site(python)
    assert not [p.name for p in site.iterdir() if p.name.startswith(("alpha", "beta"))]
    assert not (python.parent / "alpha-tool").exists() and not (tmp_path / "env" / "share" / "alpha").exists()
