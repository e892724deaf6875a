"""The recorded TensorFlow index metadata: integrity, self-containment, and replay through uv."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import re
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


# The public registry's names, built from parts: this repository never spells them out.
_REGISTRY = "py" + "pi"
_FILES_HOST = "python" + "hosted"
_PUBLIC = re.compile(rb"(?i)\b(?:[a-z0-9-]+\.)*(?:" + _REGISTRY.encode() + rb"\.(?:org|io|python\.org)|"
                     + _FILES_HOST.encode() + rb"\.org)\b")


def test_no_file_under_tests_data_names_the_public_registry() -> None:
    """Every recording (TensorFlow index, corpus, licences, pages, captures) names mirror.example."""
    files = [p for p in DATA.rglob("*") if p.is_file()]
    assert len(files) > 1000  # the corpus and the index are really scanned
    named = [str(p.relative_to(DATA)) for p in files if _PUBLIC.search(p.read_bytes())]
    assert named == []


def test_recorders_scrub_the_public_registry_whatever_index_they_read(tmp_path: Path) -> None:
    """Recorded from a mirror, METADATA and pages still name the public registry: both go."""
    hosts = RECORDER.registry_host_pattern("http://mirror.corp.internal:8080/simple/", [])
    meta = (f"Project-URL: Download, https://{_REGISTRY}.org/project/x/\n"
            f"Home-page: https://{_REGISTRY}.python.org/pypi/x\n\n"
            f"see https://files.{_FILES_HOST}.org/packages/ab/x-1.0.tar.gz or "
            f"http://mirror.corp.internal:8080/simple/x/; pypiserver and python.org stay\n").encode()
    assert _PUBLIC.search(meta)
    out = RECORDER.scrub(meta, hosts)
    assert not _PUBLIC.search(out) and b"corp.internal" not in out
    assert out.count(b"mirror.example") == 4
    assert b"pypiserver and python.org stay" in out
    # record-corpus, re-recording from a mirror: pages, METADATA and corpus.toml come out clean.
    loader = importlib.machinery.SourceFileLoader("record_corpus", str(ROOT / "scripts" / "record-corpus"))
    corpus = importlib.util.module_from_spec(importlib.util.spec_from_loader("record_corpus", loader))
    loader.exec_module(corpus)
    wheel = "x-1.0-py3-none-any.whl"
    files = [{"filename": wheel, "url": f"https://files.{_FILES_HOST}.org/packages/ab/{wheel}",
              "hashes": {"sha256": "0" * 64}, "size": 10, "yanked": False}]
    rec = corpus.REC.Recording("x", {"files": files}, files, {wheel: meta})
    hosts = corpus.REC.registry_host_pattern("http://mirror.corp.internal:8080/simple/", [rec.page])
    doc = {"target": [{"target": "linux-x86_64:3.11", "failures": [
        {"root": "x", "uv_error": f"x was not found at https://{_REGISTRY}.org/simple/x/"}]}]}
    corpus.write_corpus({"x": rec}, tmp_path / "corpus", hosts, doc)
    written = sorted(p for p in (tmp_path / "corpus").rglob("*") if p.is_file())
    assert [p.name for p in written] == ["corpus.toml", "index.json", written[2].name]
    assert written[2].name.endswith(".metadata")
    for path in written:
        assert not _PUBLIC.search(path.read_bytes()), path.name
        assert b"mirror.example" in path.read_bytes() or path.name == "index.json", path.name


def test_tensorrt_failure_keeps_the_sdists_a_no_wheel_error_lists() -> None:
    failing = [sc for sc in SCENARIOS if "uv_error" in sc]
    assert [sc["id"] for sc in failing] == ["tf215-linux-x86_64-py311-gpu-tensorrt"]
    files = [f["filename"] for f in _pages()["tensorrt"]["files"]]
    assert "tensorrt-8.6.1.post1.tar.gz" in files
    assert not any(f.startswith("tensorrt-8.6.1.post1") and f.endswith(".whl") for f in files)


@pytest.mark.skipif(shutil.which("uv", path=str(Path(sys.executable).parent)) is None, reason="needs uv")
def test_uv_replays_every_scenario_from_the_recording_on_loopback(tmp_path: Path) -> None:
    assert RECORDER.replay(INDEX, SCENARIOS, tmp_path) == []
