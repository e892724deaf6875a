"""The corpus: 100+ popular projects' recorded METADATA and pages, replayed offline on loopback.

For each target one lock of every root uv could lock there must give uv's set,
and that lock must build, verify and audit; each root uv could not lock must
fail with a message naming it and the target.  The wheels served are small
ones built here, each carrying the METADATA recorded from the real wheel
(``scripts/record-corpus`` records; tests/data/README.md describes the data).
The live variant (``scripts/test --live``) locks the same roots against the
configured index.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

from tests.support.indexserver import serve_index_process
from wheelferry.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
if not (CORPUS / "corpus.toml").is_file():
    pytest.skip("tests/data/corpus is not recorded: run scripts/record-corpus", allow_module_level=True)
DOC = tomllib.loads((CORPUS / "corpus.toml").read_text(encoding="utf-8"))
TARGETS = {t["target"]: t for t in DOC["target"]}
FAILURES = [(t["target"], f["root"], f["blamed"]) for t in DOC["target"] for f in t["failures"]
            if f["blamed"] == canonicalize_name(f["root"].split("[")[0])]


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def corpus_wheel(directory: Path, filename: str, metadata: bytes) -> None:
    """A small real wheel named *filename* whose METADATA is *metadata*, byte for byte."""
    name, version, _build, tags = parse_wheel_filename(filename)
    dist_info = f"{filename.split('-')[0]}-{filename.split('-')[1]}.dist-info"
    module = str(name).replace("-", "_")
    members = {
        f"{module}/__init__.py": f"__version__ = {str(version)!r}\n".encode(),
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": ("Wheel-Version: 1.0\nGenerator: wheelferry-tests\nRoot-Is-Purelib: false\n"
                               + "".join(f"Tag: {t}\n" for t in sorted(map(str, tags)))).encode(),
    }
    record = "".join(f"{p},{_digest(d)},{len(d)}\n" for p, d in members.items()) + f"{dist_info}/RECORD,,\n"
    members[f"{dist_info}/RECORD"] = record.encode()
    with zipfile.ZipFile(directory / filename, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, data in members.items():
            zf.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), data)


def _pages() -> dict[str, dict[str, Any]]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((CORPUS / "index").glob("*/index.json"))}


@pytest.fixture(scope="module")
def corpus_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The recording served on loopback (by a process of its own), with a small wheel for every
    recorded wheel file; the index URL."""
    files = tmp_path_factory.mktemp("corpus-files")
    requires_python, yanked = {}, {}
    for page in _pages().values():
        for f in page["files"]:
            name = f["filename"]
            if name.endswith(".whl"):
                sha = f["core-metadata"]["sha256"]
                corpus_wheel(files, name, (CORPUS / "metadata" / f"{sha}.metadata").read_bytes())
            else:
                (files / name).write_bytes(b"an sdist, never built\n")
            if f.get("requires-python"):
                requires_python[name] = f["requires-python"]
            if f.get("yanked"):
                yanked[name] = f["yanked"] if isinstance(f["yanked"], str) else ""
    with serve_index_process(files, requires_python=requires_python, yanked=yanked) as url:
        yield url


def _run(*argv: str, capsys: Any) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def _pins(lines: list[str]) -> dict[str, str]:
    return {str(canonicalize_name(n)): v for n, _, v in (ln.partition("==") for ln in lines)}


def test_the_corpus_is_large_and_spans_every_field() -> None:
    roots = [r for group in DOC["roots"].values() for r in group]
    assert len(roots) >= 100 and set(DOC["roots"]) == {"web", "data", "ml", "tooling"}
    assert set(TARGETS) == {"linux-x86_64:3.11", "windows-amd64:3.11", "macos-arm64:3.11"}
    for t in TARGETS.values():
        assert len(t["roots"]) + len(t["failures"]) == len(roots)
    size = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    assert size < 4_000_000, f"tests/data/corpus holds {size} bytes"


# sys_platform of each target: a root uv locks on some targets only is asked for with a marker,
# so that one lock of all three targets asks, for each, exactly the roots uv locked there.
_PLATFORM = {"linux": "linux", "windows": "win32", "macos": "darwin"}


def _joint_requirements() -> list[str]:
    roots = sorted({r for t in TARGETS.values() for r in t["roots"]})
    out = []
    for root in roots:
        where = [t for t, case in sorted(TARGETS.items()) if root in case["roots"]]
        if len(where) == len(TARGETS):
            out.append(root)
        else:
            out.append(root + "; " + " or ".join(
                f"sys_platform == '{_PLATFORM[t.split('-')[0]]}'" for t in where))
    return out


@dataclass(frozen=True)
class CorpusLock:
    directory: Path
    cache: Path
    targets: dict[str, dict[str, str]]  # target -> name -> version, as lock reported them


@pytest.fixture(scope="module")
def corpus_lock(corpus_index: str, tmp_path_factory: pytest.TempPathFactory) -> CorpusLock:
    """One lock of every root for all three targets (pages and shared metadata read once)."""
    tmp = tmp_path_factory.mktemp("corpus-lock")
    reqs = [a for r in _joint_requirements() for a in ("-r", r)]
    targets = [a for t in sorted(TARGETS) for a in ("--target", t)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["lock", *reqs, *targets, "--index-url", corpus_index, "--cache", str(tmp / "c"),
                     "-o", str(tmp / "lock"), "--json"])
    res = json.loads(out.getvalue())
    assert code == 0, res
    got = {t: {str(canonicalize_name(k)): v for k, v in r["packages"].items()}
           for t, r in zip(sorted(TARGETS), res["targets"])}
    return CorpusLock(tmp / "lock", tmp / "c", got)


def test_the_joint_requirements_ask_each_target_for_the_roots_uv_locked_there() -> None:
    from packaging.requirements import Requirement

    from wheelferry.target import marker_environment, parse_target

    for target, case in TARGETS.items():
        env = marker_environment(parse_target(target))
        asked = [r for r in map(Requirement, _joint_requirements())
                 if r.marker is None or r.marker.evaluate(env)]
        assert all(r.marker is None for r in map(Requirement, case["roots"]))
        assert sorted(str(Requirement(r)) for r in case["roots"]) == sorted(
            str(r).split(";")[0] for r in asked), target


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_one_lock_of_every_root_equals_uv(target: str, corpus_lock: CorpusLock) -> None:
    assert corpus_lock.targets[target] == _pins(TARGETS[target]["expect"])


def test_the_corpus_lock_builds_verifies_audits(corpus_lock: CorpusLock, tmp_path: Path, gpg_keys: Any,
                                                capsys: Any) -> None:
    lock = json.loads((corpus_lock.directory / "wheelferry.lock.json").read_text())
    fpr = gpg_keys.fpr["good"]
    code, built = _run("build", "--lock", str(corpus_lock.directory), "--sign-key", fpr, "--gnupghome",
                       str(gpg_keys.home), "--cache", str(corpus_lock.cache), "-o", str(tmp_path / "out"),
                       capsys=capsys)
    assert code == 0, built
    assert built["wheels"] == len(lock["wheels"])
    per_target = {t["id"]: len(t["packages"]) for t in lock["targets"]}
    assert sorted(per_target.values()) == sorted(len(t) for t in corpus_lock.targets.values())
    keys = ("--keyring", str(gpg_keys.export("good", path=tmp_path / "k.asc")), "--trusted-key", fpr)
    code, verified = _run("verify", built["bundle"], *keys, capsys=capsys)
    assert code == 0, verified
    code, audit = _run("audit", built["bundle"], *keys, "--format", "json", capsys=capsys)
    assert code == 0, audit
    text = json.dumps(audit)
    assert all(f'"{name}"' in text for got in corpus_lock.targets.values() for name in got)


@pytest.mark.parametrize("target,root,blamed", FAILURES, ids=[f"{r}@{t}" for t, r, _ in FAILURES])
def test_a_root_without_wheels_fails_naming_it_and_the_target(
        target: str, root: str, blamed: str, corpus_index: str, tmp_path: Path, capsys: Any) -> None:
    code, res = _run("lock", "-r", root, "--target", target, "--index-url", corpus_index, "--cache",
                     str(tmp_path / "c"), "-o", str(tmp_path / "lock"), capsys=capsys)
    assert code == 1, res
    message = json.dumps(res).lower()
    assert blamed in message.replace("_", "-") and target.split(":")[0] in message
    assert "no wheel" in message
    assert not (tmp_path / "lock").exists()


@pytest.mark.live
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_live_corpus_locks_on_the_configured_index(target: str, tmp_path: Path, capsys: Any) -> None:
    case = TARGETS[target]
    reqs = [a for r in case["roots"] for a in ("-r", r)]
    code, res = _run("lock", *reqs, "--target", target, "--cache", str(tmp_path / "c"), "-o",
                     str(tmp_path / "lock"), capsys=capsys)
    assert code == 0, res
    got = {str(canonicalize_name(k)) for k in res["targets"][0]["packages"]}
    assert {str(canonicalize_name(r.split("[")[0])) for r in case["roots"]} <= got
    for failed in case["failures"]:
        code, res = _run("lock", "-r", failed["root"], "--target", target, "--cache", str(tmp_path / "c"),
                         "-o", str(tmp_path / "f"), capsys=capsys)
        assert code == 1, res


@pytest.mark.live
def test_live_build_of_pandas_and_matplotlib(tmp_path: Path, capsys: Any) -> None:
    code, res = _run("build", "-r", "pandas==2.2.3", "-r", "matplotlib==3.9.2", "--target",
                     "linux-x86_64:3.11", "--no-sign", "--cache", str(tmp_path / "c"), "-o",
                     str(tmp_path / "out"), capsys=capsys)
    assert code == 0, res
    code, audit = _run("audit", res["bundle"], "--allow-unsigned", "--format", "json", capsys=capsys)
    assert code == 0, audit
