"""export-index: a static PEP 503/691/658 index that stock pip and uv install from, over HTTP and file://."""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.bundles import make_bundle
from tests.support.gpgkeys import GpgKeys
from tests.support.mirrors import serve_http
from tests.support.pythons import pyenv_versions
from tests.support.wheels import build_wheel, sha256_file
from wheelferry.offline.cli import main

UV = Path(sys.executable).with_name("uv")


def _export(capsys: Any, tar: Path, out: Path, keys: list[str], *extra: str) -> tuple[int, str]:
    code = main(["export-index", str(tar), str(out), *keys, *extra])
    return code, capsys.readouterr().err


@pytest.fixture
def keys(gpg_keys: GpgKeys, tmp_path: Path) -> list[str]:
    ring = gpg_keys.export("good", path=tmp_path / "KEYS.asc")
    return ["--keyring", str(ring), "--trusted-key", gpg_keys.fpr["good"], "--state-dir", str(tmp_path / "state")]


def _signed(gpg_keys: GpgKeys, tmp_path: Path, name: str, wheels: list[Path], sequence: int) -> Path:
    out = tmp_path / name
    out.mkdir()
    tar = make_bundle(tmp_path, wheels, name="demo", sequence=sequence, out=out / "demo.tar")
    gpg_keys.sign("good", tar)
    return tar


@pytest.fixture
def first(gpg_keys: GpgKeys, tmp_path: Path) -> Path:
    d = tmp_path / "w1"
    return _signed(gpg_keys, tmp_path, "b1", [
        build_wheel(d, "Alpha_Pkg", "1.0", requires=["beta>=2"]),
        build_wheel(d, "beta", "2.0", requires_python=">=3.8,<4")], 1)


@pytest.fixture
def second(gpg_keys: GpgKeys, tmp_path: Path) -> Path:
    d = tmp_path / "w2"
    return _signed(gpg_keys, tmp_path, "b2", [
        build_wheel(d, "Alpha_Pkg", "1.1", requires=["beta>=2"]),
        build_wheel(d, "beta", "2.0", requires_python=">=3.8,<4")], 2)


def _tree(root: Path) -> dict[str, str]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): sha256_file(p) if p.is_file() else "dir" for p in sorted(root.rglob("*"))}


def test_layout_and_pages(first: Path, tmp_path: Path, keys: list[str], capsys: Any) -> None:
    out = tmp_path / "index"
    code, err = _export(capsys, first, out, keys)
    assert code == 0, err
    wheel = out / "files" / "beta-2.0-py3-none-any.whl"
    meta = Path(f"{wheel}.metadata")
    assert meta.read_bytes().startswith(b"Metadata-Version") and b"Requires-Python: >=3.8,<4" in meta.read_bytes()
    meta_sha = hashlib.sha256(meta.read_bytes()).hexdigest()
    page = (out / "simple" / "beta" / "index.html").read_text()
    assert f'href="../../files/{wheel.name}#sha256={sha256_file(wheel)}"' in page
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in page
    assert f'data-core-metadata="sha256={meta_sha}"' in page
    assert "dist-info-metadata" not in page, "the pre-PEP 714 name is what pip 22.3-23.1 misread"
    doc = json.loads((out / "simple" / "beta" / "index.json").read_text())
    assert doc["meta"]["api-version"] == "1.1" and doc["name"] == "beta" and doc["versions"] == ["2.0"]
    f = doc["files"][0]
    assert f["hashes"]["sha256"] == sha256_file(wheel) and f["size"] == wheel.stat().st_size
    assert f["requires-python"] == ">=3.8,<4" and f["core-metadata"] == {"sha256": meta_sha}
    assert "dist-info-metadata" not in f
    root = json.loads((out / "simple" / "index.json").read_text())
    assert [p["name"] for p in root["projects"]] == ["alpha-pkg", "beta"]
    assert '<a href="alpha-pkg/">alpha-pkg</a>' in (out / "simple" / "index.html").read_text()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".wheelferry-work-")]


def test_reexport_merges_and_keeps_files(first: Path, second: Path, tmp_path: Path, keys: list[str],
                                         capsys: Any) -> None:
    out = tmp_path / "index"
    assert _export(capsys, first, out, keys)[0] == 0
    beta = out / "files" / "beta-2.0-py3-none-any.whl"
    inode = beta.stat().st_ino
    assert _export(capsys, second, out, keys)[0] == 0
    doc = json.loads((out / "simple" / "alpha-pkg" / "index.json").read_text())
    assert doc["versions"] == ["1.0", "1.1"] and len(doc["files"]) == 2
    assert beta.stat().st_ino == inode
    assert _export(capsys, second, out, keys)[0] == 0


def test_failed_verification_leaves_dir_as_it_was(first: Path, second: Path, tmp_path: Path,
                                                  keys: list[str], capsys: Any) -> None:
    out = tmp_path / "index"
    assert _export(capsys, first, out, keys)[0] == 0
    before = _tree(out)
    data = bytearray(second.read_bytes())
    data[-2000] ^= 1
    second.write_bytes(bytes(data))
    code, err = _export(capsys, second, out, keys)
    assert code == 1 and err.startswith("error: ") and _tree(out) == before
    code, err = _export(capsys, second, tmp_path / "fresh", keys)
    assert code == 1 and not (tmp_path / "fresh").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".wheelferry-work-")]


def test_a_file_name_reused_with_other_bytes_is_refused(first: Path, gpg_keys: GpgKeys, tmp_path: Path,
                                                        keys: list[str], capsys: Any) -> None:
    out = tmp_path / "index"
    assert _export(capsys, first, out, keys)[0] == 0
    before = _tree(out)
    other = _signed(gpg_keys, tmp_path, "b3", [build_wheel(tmp_path / "w3", "beta", "2.0", padding=64)], 3)
    code, err = _export(capsys, other, out, keys)
    assert code == 1 and "already exists with different contents" in err and _tree(out) == before


@pytest.fixture
def served(first: Path, second: Path, tmp_path: Path, keys: list[str], capsys: Any) -> Iterator[dict[str, Any]]:
    out = tmp_path / "index"
    assert _export(capsys, first, out, keys)[0] == 0
    assert _export(capsys, second, out, keys)[0] == 0
    server = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                               "--directory", str(out)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    try:
        assert server.stdout is not None
        port = server.stdout.readline().split(" port ")[1].split()[0]
        yield {"dir": out, "http": f"http://127.0.0.1:{port}/simple/", "file": (out / "simple").as_uri()}
    finally:
        server.terminate()
        server.wait(10)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", UV_NO_CONFIG="1",
               UV_CACHE_DIR=str(tmp_path / "uvcache"), UV_PYTHON_DOWNLOADS="never")
    return env


def _offline(cmd: list[str], url: str) -> list[str]:
    """Around a file:// install, cut the network entirely when this kernel lets us."""
    if url.startswith("file:") and shutil.which("unshare") and subprocess.run(
            ["unshare", "-rn", "true"], capture_output=True, check=False).returncode == 0:
        return ["unshare", "-rn", *cmd]
    return cmd


def _installed(target: Path) -> set[str]:
    return {p.name for p in target.glob("*.dist-info")}


@pytest.mark.parametrize("via", ["http", "file"])
def test_stock_pip_installs_from_the_export(served: dict[str, Any], tmp_path: Path, via: str) -> None:
    url, target = served[via], tmp_path / f"pip-{via}"
    cmd = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--index-url", url, "--only-binary",
           ":all:", "--target", str(target), "alpha-pkg"]
    proc = subprocess.run(_offline(cmd, url), capture_output=True, text=True, env=_env(tmp_path), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _installed(target) == {"alpha_pkg-1.1.dist-info", "beta-2.0.dist-info"}


@pytest.mark.skipif(not UV.exists(), reason="uv is not installed beside this Python")
@pytest.mark.parametrize("via", ["http", "file"])
def test_uv_installs_from_the_export(served: dict[str, Any], tmp_path: Path, via: str) -> None:
    url, target = served[via], tmp_path / f"uv-{via}"
    cmd = [str(UV), "pip", "install", "--python", sys.executable, "--index-url", url, "--target",
           str(target), "alpha-pkg==1.0"]
    proc = subprocess.run(_offline(cmd, url), capture_output=True, text=True, env=_env(tmp_path), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _installed(target) == {"alpha_pkg-1.0.dist-info", "beta-2.0.dist-info"}


def test_html_escapes_are_parsed_back(served: dict[str, Any]) -> None:
    page = (served["dir"] / "simple" / "beta" / "index.html").read_text()
    value = page.split('data-requires-python="')[1].split('"')[0]
    assert html.unescape(value) == ">=3.8,<4"


# --- every pip from 20.3 on ------------------------------------------------------------------
# pip runs from its own wheel, unpacked once per run (``python pip-X/pip``: run from the zip, every
# run would compile pip afresh), on Python 3.9, the oldest Python the isolated host may have.
# The wheels come from the pyenv interpreters' ensurepip bundles and a cache (WHEELFERRY_TEST_PIPS,
# default ~/.cache/wheelferry/test-pips) that `scripts/test --live` fills from the configured
# index; a version found in neither is skipped, saying how to get it.
PIPS = ["20.3.4", "21.3.1", "22.3.1", "23.0.1", "23.1.2", "23.2.1", "24.2", "24.3.1"]
PIP_CACHE = Path(os.environ.get("WHEELFERRY_TEST_PIPS") or Path.home() / ".cache" / "wheelferry" / "test-pips")


def _pip_wheel(version: str) -> Path | None:
    pattern = f"pip-{version}-*.whl"
    found = sorted(PIP_CACHE.glob(pattern)) + sorted(
        p for root in pyenv_versions() for p in root.glob(f"*/lib/python*/ensurepip/_bundled/{pattern}"))
    if not found and os.environ.get("WHEELFERRY_LIVE") == "1":
        PIP_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                        "-d", str(PIP_CACHE), f"pip=={version}"], check=True)
        found = sorted(PIP_CACHE.glob(pattern))
    return found[0] if found else None


@pytest.fixture(scope="module")
def unpacked_pips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each pip wheel found, unpacked into a folder of its own (its bytecode cached there)."""
    out = {}
    for version in PIPS:
        wheel = _pip_wheel(version)
        if wheel is not None:
            out[version] = tmp_path_factory.mktemp(f"pip-{version}")
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(out[version])
    return out


@pytest.fixture(params=["html", "json"])
def spelt(request: Any, gpg_keys: GpgKeys, tmp_path: Path, keys: list[str], capsys: Any) -> Iterator[str]:
    """An export whose names are spelt as real projects spell them, served over loopback HTTP.

    ``Name: Alpha_Pkg`` is not the normalised name users type; ``google-pasta`` is, but its
    dependents ask for ``google_pasta`` (as tensorflow does).  pip 22.3-23.1 compare the two
    spellings without normalising when they read PEP 658 metadata (pypa/pip#12038).  Served
    twice: HTML only (as ``http.server`` does), and with PEP 691 JSON to clients that ask for it.
    """
    d = tmp_path / "ws"
    tar = _signed(gpg_keys, tmp_path, "bs", [
        build_wheel(d, "Alpha_Pkg", "1.0", requires=["beta>=2", "google_pasta>=0.1"]),
        build_wheel(d, "google-pasta", "0.2.0"),
        build_wheel(d, "beta", "2.0", requires_python=">=3.8,<4")], 1)
    out = tmp_path / "spelt"
    assert _export(capsys, tar, out, keys)[0] == 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Negotiating, directory=str(out),
                                                                   json_pages=request.param == "json"))
    with serve_http(server) as url:
        yield url


class _Negotiating(SimpleHTTPRequestHandler):
    """A static server that answers PEP 691 clients with index.json, as a configured nginx does."""

    def __init__(self, *args: Any, json_pages: bool, **kwargs: Any) -> None:
        self.json_pages = json_pages
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        wants_json = JSON_TYPE in self.headers.get("Accept", "")
        if self.json_pages and wants_json and (path / "index.json").is_file():
            body = (path / "index.json").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", JSON_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return io.BytesIO(body)
        return super().send_head()


JSON_TYPE = "application/vnd.pypi.simple.v1+json"


def _pip_install(cmd: list[str], url: str, tmp_path: Path, version: str) -> None:
    target = tmp_path / f"t-{version}"
    proc = subprocess.run([*cmd, "install", "--no-cache-dir", "--index-url", url, "--only-binary", ":all:",
                           "--target", str(target), "alpha-pkg"],
                          capture_output=True, text=True, env=_env(tmp_path), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _installed(target) == {"alpha_pkg-1.0.dist-info", "google_pasta-0.2.0.dist-info",
                                  "beta-2.0.dist-info"}


@pytest.mark.parametrize("version", PIPS)
def test_every_pip_from_20_3_installs_from_the_export(spelt: str, tmp_path: Path, version: str,
                                                      unpacked_pips: dict[str, Path]) -> None:
    from tests.support.pythons import python39

    py = python39()
    if py is None:
        pytest.skip("no pyenv Python 3.9 on this machine")
    if version not in unpacked_pips:
        pytest.skip(f"pip {version}'s wheel is not in {PIP_CACHE} nor a pyenv ensurepip bundle: "
                    "run scripts/test --live once to fetch it from the configured index")
    _pip_install([py, str(unpacked_pips[version] / "pip")], spelt, tmp_path, version)


def test_the_newest_pip_installs_the_same_export(spelt: str, tmp_path: Path) -> None:
    _pip_install([sys.executable, "-m", "pip"], spelt, tmp_path, "newest")


@pytest.mark.skipif(not UV.exists(), reason="uv is not installed beside this Python")
def test_uv_installs_the_same_export(spelt: str, tmp_path: Path) -> None:
    target = tmp_path / "uv"
    proc = subprocess.run([str(UV), "pip", "install", "--python", sys.executable, "--index-url", spelt,
                           "--target", str(target), "alpha-pkg"],
                          capture_output=True, text=True, env=_env(tmp_path), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _installed(target) == {"alpha_pkg-1.0.dist-info", "google_pasta-0.2.0.dist-info",
                                  "beta-2.0.dist-info"}
