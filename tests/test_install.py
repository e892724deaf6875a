"""Installs of verified bundles with real pip into real venvs, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.bundles import host_markers, make_bundle, make_lock
from tests.support.gpgkeys import GpgKeys
from tests.support.pythons import pip_for, pipless_venv, python39
from tests.support.wheels import build_wheel
from wheelferry.errors import InstallError, UsageError, VerificationError
from wheelferry.lockfile import TrimmedEdge
from wheelferry.offline.cli import main
from wheelferry.offline.install import install_bundle
from wheelferry.offline.state import load_accepted
from wheelferry.offline.wheelcheck import check_wheel_zip, plan_groups

SRC = Path(__file__).resolve().parents[1] / "src"
BAD_WHEEL_VERSION = b"Wheel-Version: 9.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _network_cut_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False).returncode == 0
    except OSError:
        return False


def _imports(python: Path, code: str) -> str:
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


class Site:
    """A signed test bundle factory plus one venv installed from sequence 1."""

    def __init__(self, root: Path, keys: GpgKeys) -> None:
        self.root, self.keys = root, keys
        self.keyring = keys.export("good", path=root / "KEYS.asc")
        self.state = root / "state"
        self.venv = root / "env"

    def bundle(self, wheels: list[Path], sequence: int, **kw: Any) -> Path:
        d = self.root / f"b{sequence}"
        d.mkdir()
        tar = make_bundle(d, wheels, name="demo", sequence=sequence, **kw)
        self.keys.sign("good", tar)
        return tar

    def trust(self) -> dict[str, Any]:
        return {"keyring": self.keyring, "trusted": [self.keys.fpr["good"]], "state_dir": self.state}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, gpg_keys: GpgKeys) -> Site:
    """Sequence 1 (alpha 1.0, beta 1.0) installed into a new venv by the CLI, network cut if possible."""
    s = Site(tmp_path_factory.mktemp("install"), gpg_keys)
    w = s.root / "w1"
    wheels = [build_wheel(w, "alpha", "1.0", requires=["gamma"]), build_wheel(w, "beta", "1.0")]
    lock = make_lock(wheels, name="demo", targets={"host": host_markers()},
                     smoke=["python -c 'import alpha, beta; print(beta.__version__)'"],
                     trimmed=[TrimmedEdge("alpha", "gamma", "excluded")])
    tar = s.bundle(wheels, 1, lock=lock)
    script = "import sys; from wheelferry.offline.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-s", "-c", script, "install", str(tar), "--keyring", str(s.keyring),
            "--trusted-key", gpg_keys.fpr["good"], "--state-dir", str(s.state),
            "--venv", str(s.venv), "--json"]
    s.network_cut = _network_cut_works()  # type: ignore[attr-defined]
    if s.network_cut:  # type: ignore[attr-defined]
        argv = ["unshare", "-rn", *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PYTHONPATH"] = str(SRC)
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    s.report = json.loads(proc.stdout)  # type: ignore[attr-defined]
    return s


def test_install_into_new_venv_offline(site: Site) -> None:
    report = site.report  # type: ignore[attr-defined]
    assert report["ok"] and report["target"] == "host"
    assert report["packages"] == ["alpha==1.0", "beta==1.0"]
    assert report["trimmed"] and "gamma" in report["trimmed"][0]
    assert report["smoke"] == ["python -c 'import alpha, beta; print(beta.__version__)' -> 1.0"]
    assert _imports(site.venv / "bin" / "python", "import alpha, beta; print(alpha.__version__)") == "1.0"
    accepted = load_accepted(site.state, "demo")
    assert accepted is not None and accepted.sequence == 1
    if not site.network_cut:  # type: ignore[attr-defined]
        pytest.skip("installed fine, but `unshare -rn` is unavailable so the network was not cut")


def test_failed_upgrade_leaves_old_venv_intact(site: Site) -> None:
    w = site.root / "w2"
    wheels = [build_wheel(w, "alpha", "2.0"),
              build_wheel(w, "zeta", "1.0", files={"zeta-1.0.dist-info/WHEEL": BAD_WHEEL_VERSION})]
    tar = site.bundle(wheels, 2)
    with pytest.raises(InstallError) as e:
        install_bundle(tar, **site.trust(), venv=site.venv)
    assert str(e.value).startswith("zeta-1.0-py3-none-any.whl: ") and "Wheel-Version 9.0" in str(e.value)
    assert _imports(site.venv / "bin" / "python", "import alpha, beta; print(alpha.__version__)") == "1.0"
    assert sorted(p.name for p in site.root.iterdir() if p.name.startswith("env")) == ["env"]
    assert load_accepted(site.state, "demo").sequence == 1  # type: ignore[union-attr]


def test_zip_with_traversal_refused_before_pip(site: Site) -> None:
    evil = build_wheel(site.root / "w3", "alpha", "3.0", extra_members={"../../evil": b"pwned\n"})
    tar = site.bundle([evil], 3)
    fresh = site.root / "never"
    with pytest.raises(InstallError, match="refused before anything was written"):
        install_bundle(tar, **site.trust(), venv=fresh)
    assert not fresh.exists()
    assert not (site.root.parent / "evil").exists()


def test_host_matching_no_target(site: Site) -> None:
    wheels = [build_wheel(site.root / "w4", "alpha", "4.0", tag="cp39-cp39-win_amd64")]
    markers = {**host_markers(), "sys_platform": "win32", "platform_machine": "AMD64"}
    tar = site.bundle(wheels, 4, targets={"windows-amd64-cp39": markers})
    with pytest.raises(InstallError, match="no target of this bundle fits Python .* windows-amd64-cp39"):
        install_bundle(tar, **site.trust(), venv=site.root / "never")
    with pytest.raises(UsageError, match="no target 'nope'"):
        install_bundle(tar, **site.trust(), venv=site.root / "never", target_id="nope")


def test_upgrade_swaps_venv(site: Site) -> None:
    wheels = [build_wheel(site.root / "w5", "alpha", "5.0"), build_wheel(site.root / "w5", "beta", "1.0")]
    report = install_bundle(site.bundle(wheels, 5), **site.trust(), venv=site.venv)
    assert report.packages == ("alpha==5.0", "beta==1.0") and report.sequence == 5
    assert _imports(site.venv / "bin" / "python", "import alpha; print(alpha.__version__)") == "5.0"
    assert sorted(p.name for p in site.root.iterdir() if p.name.startswith("env")) == ["env"]
    assert load_accepted(site.state, "demo").sequence == 5  # type: ignore[union-attr]


def test_python_mode_restores_on_failure(site: Site) -> None:
    py = str(pipless_venv(site.root / "plain"))
    w = site.root / "w6"
    ok = site.bundle([build_wheel(w, "alpha", "6.0")], 6)
    report = install_bundle(ok, **site.trust(), python=py)
    assert report.python == py and _imports(Path(py), "import alpha; print(alpha.__version__)") == "6.0"
    bad = site.bundle([build_wheel(w, "beta", "7.0"),
                       build_wheel(w, "zeta", "1.0", files={"zeta-1.0.dist-info/WHEEL": BAD_WHEEL_VERSION})], 7)
    with pytest.raises(InstallError):
        install_bundle(bad, **site.trust(), python=py)
    listed = subprocess.run([*pip_for(py), "list", "--format=json"], capture_output=True, text=True,
                            check=True).stdout
    names = {d["name"].lower(): d["version"] for d in json.loads(listed)}
    assert names.get("alpha") == "6.0" and "beta" not in names and "zeta" not in names


def test_cli_install_usage_errors(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    tar = site.root / "b1" / "demo.tar"
    keys = ["--keyring", str(site.keyring), "--trusted-key", site.keys.fpr["good"],
            "--state-dir", str(site.state)]
    assert main(["install", str(tar), *keys]) == 2
    assert main(["install", str(tar), *keys, "--venv", "a", "--python", "b"]) == 2
    assert main(["install", str(tar), "--venv", str(site.root / "x")]) == 2
    assert main(["install", str(site.root / "missing.tar"), *keys, "--venv", str(site.root / "x")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["install", str(tar), *keys, "--python", str(site.root / "no-python")]) == 2
    assert "no such interpreter" in capsys.readouterr().err


def _zip(path: Path, name: str, data: bytes, attr: int = 0o644 << 16) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(name)
        info.external_attr = attr
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, data)
    return path


@pytest.mark.parametrize("name", ["/etc/passwd", "a/../../x", "..\\..\\x", "C:/x", "pkg\\..\\x"])
def test_zip_hostile_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(InstallError, match="outside the install"):
        check_wheel_zip(_zip(tmp_path / "x-1.0-py3-none-any.whl", name, b"x"))


def test_zip_symlink_and_bomb(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="symbolic link"):
        check_wheel_zip(_zip(tmp_path / "l-1.0-py3-none-any.whl", "pkg/link", b"/etc", 0o120777 << 16))
    with pytest.raises(InstallError, match="zip bomb"):
        check_wheel_zip(_zip(tmp_path / "b-1.0-py3-none-any.whl", "pkg/zeros", b"\0" * 101_000_000))
    check_wheel_zip(build_wheel(tmp_path, "fine", "1.0"))


def test_wheels_sharing_a_file_or_script_are_grouped(tmp_path: Path) -> None:
    ep = b"[console_scripts]\ntool = a.cli:main\n"
    a = build_wheel(tmp_path, "a", "1.0", files={"a-1.0.dist-info/entry_points.txt": ep})
    b = build_wheel(tmp_path, "b", "1.0", files={"b-1.0.dist-info/entry_points.txt": ep.replace(b"a.", b"b.")})
    c = build_wheel(tmp_path, "c", "1.0", extra_members={"c-1.0.data/purelib/shared/x.py": b""})
    d = build_wheel(tmp_path, "d", "1.0", extra_members={"shared/x.py": b""})
    e = build_wheel(tmp_path, "e", "1.0", padding=5000)
    claims = {w.name: check_wheel_zip(w) for w in (a, b, c, d, e)}
    assert "scripts:tool" in claims[a.name] and "shared/x.py" in claims[c.name]
    sizes = {w.name: w.stat().st_size for w in (a, b, c, d, e)}
    groups = plan_groups([(n, sizes[n], claims[n]) for n in sorted(claims)], jobs=8)
    assert sorted(map(sorted, groups)) == sorted([sorted([a.name, b.name]), sorted([c.name, d.name]), [e.name]])
    assert plan_groups([(n, sizes[n], claims[n]) for n in sorted(claims)], jobs=1) == [sorted(claims)]
    two = plan_groups([("big", 100, frozenset({"x"})), ("m1", 60, frozenset({"y"})),
                       ("m2", 50, frozenset({"z"})), ("s", 5, frozenset({"w"}))], jobs=2)
    assert sorted(two) == [["big", "s"], ["m1", "m2"]]


def test_new_venv_dir_is_gone_when_verification_fails(site: Site) -> None:
    tar = site.bundle([build_wheel(site.root / "w8", "alpha", "8.0")], 8)
    raw = bytearray(tar.read_bytes())
    raw[len(raw) // 2] ^= 1
    tar.write_bytes(bytes(raw))
    fresh = site.root / "fresh" / "env"
    with pytest.raises(VerificationError, match="does not match the data"):
        install_bundle(tar, **site.trust(), venv=fresh)
    assert not fresh.exists() and not fresh.parent.exists()


def test_existing_non_venv_dir_refused_before_verifying(site: Site) -> None:
    occupied = site.root / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="is not a virtual environment"):
        install_bundle(site.root / "b1" / "demo.tar", **site.trust(), venv=occupied)
    assert (occupied / "keep.txt").read_text() == "mine"


def test_several_wheels_installed_side_by_side(site: Site) -> None:
    w = site.root / "w9"
    wheels = [build_wheel(w, n, "9.0", padding=20_000 * (i + 1)) for i, n in enumerate(["p", "q", "r", "s"])]
    fresh = site.root / "side"
    report = install_bundle(site.bundle(wheels, 9), **site.trust(), venv=fresh)
    assert report.packages == ("p==9.0", "q==9.0", "r==9.0", "s==9.0")
    assert _imports(fresh / "bin" / "python", "import p, q, r, s; print(s.__version__)") == "9.0"


# Runs the kit from its .pyz as ``python -I -S`` would (no site, no user site, no PYTHON* variables),
# then proves every module it used came from the standard library or the archive itself.
KIT_RUN = """
import sys, sysconfig
pyz = sys.argv[1]
sys.path.insert(0, pyz)
from wheelferry.offline.cli import main
rc = main(sys.argv[2:])
stdlib = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
foreign = sorted(n for n, m in list(sys.modules.items())
                 if getattr(m, "__file__", None) and not m.__file__.startswith((pyz, *stdlib)))
assert not foreign, foreign
assert sys.modules["installer"].__file__.startswith(pyz) and sys.modules["packaging"].__file__.startswith(pyz)
sys.exit(rc)
"""


@pytest.mark.skipif(python39() is None, reason="no pyenv Python 3.9 ($PYENV_ROOT/versions or ~/.pyenv/versions)")
def test_pipless_python39_installs_manylinux_bundle_from_the_pyz_offline(gpg_keys: GpgKeys,
                                                                        tmp_path: Path) -> None:
    """A pip-less Python 3.9 runs the .pyz with -I -S, under unshare -rn, and installs a manylinux_2_28 wheel."""
    from wheelferry.offline.probe import describe_interpreter
    from wheelferry.pyz import write_offline_pyz

    if not _network_cut_works():
        pytest.skip("`unshare -rn` is unavailable here, so the network cannot be cut")
    py39 = python39()
    assert py39 is not None
    host39 = tmp_path / "host39"
    subprocess.run([py39, "-m", "venv", "--without-pip", str(host39)], check=True)
    python = str(host39 / "bin" / "python")
    assert subprocess.run([python, "-c", "import pip"], capture_output=True, check=False).returncode != 0
    described = describe_interpreter(python)
    tag = "cp39-cp39-manylinux_2_28_x86_64"
    if tag not in described["compatible_tags"]:
        pytest.skip(f"this host does not accept {tag} (needs x86_64 and glibc 2.28 or newer)")
    entry = b"[console_scripts]\nalpha-tool = alpha:main\n"
    wheels = [build_wheel(tmp_path / "w", "alpha", "2.0", tag=tag, requires=["beta>=1"],
                          files={"alpha-2.0.dist-info/entry_points.txt": entry,
                                 "alpha/__init__.py": b"__version__ = '2.0'\ndef main():\n    print('tool ok')\n"}),
              build_wheel(tmp_path / "w", "beta", "1.0")]
    markers39 = described["marker_environment"]
    # The other target is this machine with another Python, so it never fits 3.9 (the runner may be 3.9).
    other = {**markers39, "python_version": "3.12", "python_full_version": "3.12.1",
             "implementation_version": "3.12.1"}
    tar = make_bundle(tmp_path, wheels, targets={"other": other, "py39": markers39})
    gpg_keys.sign("good", tar)
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    kit = write_offline_pyz(tmp_path / "wheelferry-offline.pyz")
    env39 = tmp_path / "env39"
    argv = ["unshare", "-rn", python, "-I", "-S", "-c", KIT_RUN, str(kit), "install", str(tar),
            "--keyring", str(ring), "--trusted-key", gpg_keys.fpr["good"], "--state-dir", str(tmp_path / "state"),
            "--venv", str(env39), "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert json.loads(proc.stdout)["target"] == "py39"
    version = _imports(env39 / "bin" / "python",
                       "import sys, alpha, beta; print(sys.version_info[:2], alpha.__version__)")
    assert version == "(3, 9) 2.0"
    tool = subprocess.run([str(env39 / "bin" / "alpha-tool")], capture_output=True, text=True, check=True)
    assert tool.stdout.strip() == "tool ok"
    assert not list(env39.glob("lib/python3.9/site-packages/pip*"))  # the venv has no pip either


def _lying_wheel(directory: Path) -> Path:
    """alpha 10.0 whose RECORD gives another hash for its module than the module has."""
    good = build_wheel(directory / "good", "alpha", "10.0")
    bad = directory / good.name
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            out.writestr(info, b"__version__ = 'evil'\n" if info.filename == "alpha/__init__.py" else data)
    return bad


def test_cli_refuses_a_wheel_whose_record_lies(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    tar = site.bundle([_lying_wheel(site.root / "w10"), build_wheel(site.root / "w10", "beta", "10.0")], 10)
    keys = ["--keyring", str(site.keyring), "--trusted-key", site.keys.fpr["good"], "--state-dir", str(site.state)]
    before = _imports(site.venv / "bin" / "python", "import alpha, beta; print(alpha.__version__, beta.__version__)")
    assert main(["install", str(tar), *keys, "--venv", str(site.venv)]) == 1
    err = capsys.readouterr().err
    first = err.strip().splitlines()[0]
    assert first.startswith("error: alpha-10.0-py3-none-any.whl: its RECORD lies about alpha/__init__.py"), err
    assert "Traceback" not in err
    after = _imports(site.venv / "bin" / "python", "import alpha, beta; print(alpha.__version__, beta.__version__)")
    assert after == before
    assert sorted(p.name for p in site.root.iterdir() if p.name.startswith("env")) == ["env"]


def test_no_compile_installs_without_bytecode(site: Site) -> None:
    w = site.root / "w11"
    fresh = site.root / "nocompile"
    report = install_bundle(site.bundle([build_wheel(w, "alpha", "11.0")], 11), **site.trust(), venv=fresh,
                            compile=False)
    assert report.packages == ("alpha==11.0",)
    assert _imports(fresh / "bin" / "python", "import alpha; print(alpha.__version__)") == "11.0"
    site_dir = next(fresh.glob("lib/python*/site-packages"))
    assert not list(site_dir.rglob("*.pyc"))
    record = next(site_dir.glob("alpha-11.0.dist-info/RECORD")).read_text()
    assert ".pyc" not in record and "alpha-11.0.dist-info/INSTALLER" in record
    with_pyc = site.root / "compiled"
    install_bundle(site.bundle([build_wheel(site.root / "w12", "alpha", "12.0")], 12), **site.trust(), venv=with_pyc)
    assert ".pyc" in next(with_pyc.glob("lib/python*/site-packages/alpha-12.0.dist-info/RECORD")).read_text()
