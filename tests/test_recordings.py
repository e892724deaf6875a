"""The recorded TensorFlow index metadata: integrity, self-containment, and replay through uv."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from wheelferry.target import evaluation_environment, parse_target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
INDEX = DATA / "index"


def _recorder() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("record_metadata", str(ROOT / "scripts" / "record-metadata"))
    spec = importlib.util.spec_from_loader("record_metadata", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["record_metadata"] = module
    loader.exec_module(module)
    return module


RECORDER = _recorder()
SCENARIOS = tomllib.loads((DATA / "scenarios.toml").read_text())["scenario"]


def _pages() -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(INDEX.glob("*/index.json"))}


def test_every_page_is_pep691_with_relative_urls_and_matching_metadata() -> None:
    pages = _pages()
    assert pages and len(pages) == len(json.loads((INDEX / "index.json").read_text())["projects"])
    for name, page in pages.items():
        assert page["meta"]["api-version"] == "1.1" and page["name"] == name == canonicalize_name(name)
        for f in page["files"]:
            assert f["url"] == "./" + f["url"][2:] and unquote(f["url"][2:]) == f["filename"]
            assert set(f) >= {"filename", "hashes", "yanked", "size"}
            if f["filename"].endswith(".whl"):
                data = (INDEX / name / (f["filename"] + ".metadata")).read_bytes()
                assert hashlib.sha256(data).hexdigest() == f["core-metadata"]["sha256"], f["filename"]
        stored = {p.name[: -len(".metadata")] for p in (INDEX / name).glob("*.metadata")}
        assert stored == {f["filename"] for f in page["files"] if f["filename"].endswith(".whl")}


def test_every_dependency_of_every_pinned_package_is_recorded() -> None:
    pages = _pages()
    for sc in SCENARIOS:
        target = parse_target(sc["target"])
        assert sc["target"] == target.spec
        extras = {"", *(e for r in sc["requirements"] for e in Requirement(r).extras)}
        envs = [evaluation_environment(target, e) for e in sorted(extras)]
        for line in sc.get("expect", []):
            name, _, version = line.partition("==")
            assert version in pages[canonicalize_name(name)]["versions"], line
            for f in pages[canonicalize_name(name)]["files"]:
                if f["filename"].endswith(".whl") and RECORDER.file_version(f["filename"]) == RECORDER.Version(version):
                    meta = (INDEX / canonicalize_name(name) / (f["filename"] + ".metadata")).read_bytes()
                    for req in RECORDER.requirements_of(meta):
                        if req.marker is not None and not any(req.marker.evaluate(e) for e in envs):
                            continue
                        assert canonicalize_name(Requirement(str(req)).name) in pages, (sc["id"], line, str(req))


def test_recordings_never_name_the_registry_host() -> None:
    from pip._internal.models.index import PyPI  # the host is learnt at run time, never written

    host = RECORDER.registry_host_pattern(PyPI.simple_url, [{"files": [{"url": PyPI.file_storage_domain}]}])
    for path in [DATA / "scenarios.toml", DATA / "README.md", *INDEX.rglob("*")]:
        if path.is_file():
            assert not host.search(path.read_text(errors="replace")), path


def test_tensorrt_failure_keeps_the_sdists_a_no_wheel_error_lists() -> None:
    failing = [sc for sc in SCENARIOS if "uv_error" in sc]
    assert [sc["id"] for sc in failing] == ["tf215-linux-x86_64-py311-gpu-tensorrt"]
    files = [f["filename"] for f in _pages()["tensorrt"]["files"]]
    assert "tensorrt-8.6.1.post1.tar.gz" in files
    assert not any(f.startswith("tensorrt-8.6.1.post1") and f.endswith(".whl") for f in files)


@pytest.mark.skipif(shutil.which("uv", path=str(Path(sys.executable).parent)) is None, reason="needs uv")
def test_uv_replays_every_scenario_from_the_recording_on_loopback(tmp_path: Path) -> None:
    assert RECORDER.replay(INDEX, SCENARIOS, tmp_path) == []
