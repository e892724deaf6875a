"""Hostile unsigned input costs no more than its size: bombs, deep JSON, wrong types, many members.

Each case runs the real verifier in a child process under a 1.5 GB address-space
limit (``resource.setrlimit``); the child reports its own peak RSS.
"""

from __future__ import annotations

import bz2
import hashlib
import json
import lzma
import os
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.bundles import (
    Member,
    bundle_members,
    make_bundle,
    many_members_bundle,
    write_tar,
)
from tests.support.gpgkeys import GpgKeys
from tests.support.wheels import build_wheel
from wheelferry.errors import VerificationError
from wheelferry.manifest import FileEntry, Manifest
from wheelferry.offline.verify import verify_bundle
from wheelferry.offline.volumes import parse_volume_list, split_bundle

SRC = Path(__file__).resolve().parents[1] / "src"
resource = pytest.importorskip("resource")
if not Path("/proc/self/status").exists():
    pytest.skip("peak RSS is read from /proc/self/status", allow_module_level=True)

_CHILD = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1500 << 20, 1500 << 20))
from wheelferry.offline.cli import main
rc = main(["verify", sys.argv[1], *sys.argv[4:], "--state-dir", sys.argv[2]])
with open(sys.argv[3], "w") as f:
    # VmHWM is this process's own peak; ru_maxrss would include the parent's from before exec.
    f.write(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
with open(sys.argv[3] + ".io", "w") as f:  # bytes this process wrote (files, pipes, terminal)
    f.write(next(l.split()[1] for l in open("/proc/self/io") if l.startswith("wchar:")))
sys.exit(rc)
"""


def _verify_child(tmp_path: Path, tar: Path, *args: str,
                  env: dict[str, str] | None = None) -> tuple[int, str, int]:
    """Exit code, stderr and peak RSS in KiB of a verify run in a limited child process."""
    rss = tmp_path / "rss"
    env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(tar), str(tmp_path / "state"), str(rss),
                           *(args or ["--allow-unsigned"])],
                          capture_output=True, text=True, env=env, timeout=300)
    return proc.returncode, proc.stderr, int(rss.read_text()) if rss.exists() else -1


def _assert_refused(rc: int, err: str, rss_kib: int, *, match: str) -> None:
    assert rc == 1, err
    assert "Traceback" not in err and "MemoryError" not in err
    lines = [line for line in err.splitlines() if not line.startswith(("warning: ", "hint: "))]
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], err
    assert 0 < rss_kib < 100 * 1024, f"peak RSS {rss_kib} KiB"


def _bomb_members(size: int) -> tuple[list[Member], bytes]:
    """A manifest declaring one wheel of *size* zero bytes (and its header), for streaming out."""
    wheel = "wheels/bomb-1.0-py3-none-any.whl"
    digest = hashlib.sha256()
    zero = bytes(1 << 20)
    for _ in range(size >> 20):
        digest.update(zero)
    entries = (FileEntry(wheel, digest.hexdigest(), size),)
    manifest = Manifest("demo", 1, "2026-01-01T00:00:00Z", ({"id": "host", "spec": "host"},),
                        entries, tool="wheelferry-tests")
    info = tarfile.TarInfo(f"demo/{wheel}")
    info.size = size
    return [Member("demo/MANIFEST.json", manifest.dumps().encode())], info.tobuf(tarfile.PAX_FORMAT)


def _write_bomb(path: Path, size: int, compress: str) -> Path:
    members, header = _bomb_members(size)
    m = members[0]
    info = tarfile.TarInfo(m.name)
    info.size = len(m.data)
    head = info.tobuf(tarfile.PAX_FORMAT) + m.data + bytes(-len(m.data) % 512)
    start = head + header
    zero = bytes(1 << 20)
    if compress == "gzip":
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        with open(path, "wb") as f:
            f.write(c.compress(start))
            for _ in range(size >> 20):
                f.write(c.compress(zero))
            f.write(c.flush())
    else:
        opener = bz2.BZ2Compressor() if compress == "bzip2" else lzma.LZMACompressor()
        with open(path, "wb") as f:
            f.write(opener.compress(start))
            for _ in range(size >> 20):
                f.write(opener.compress(zero))
            f.write(opener.flush())
    return path


def test_gzip_bomb_refused_in_bounded_memory(tmp_path: Path) -> None:
    tar = _write_bomb(tmp_path / "demo.tar", 256 << 20, "gzip")
    assert tar.stat().st_size < 1 << 20
    rc, err, rss = _verify_child(tmp_path, tar)
    _assert_refused(rc, err, rss, match="decompression bomb")


@pytest.mark.parametrize("compress", ["bzip2", "xz"])
def test_bzip2_and_xz_refused_by_magic(tmp_path: Path, compress: str) -> None:
    tar = _write_bomb(tmp_path / "demo.tar", 64 << 20, compress)
    rc, err, rss = _verify_child(tmp_path, tar)
    _assert_refused(rc, err, rss, match=f"{compress}-compressed")


def test_deeply_nested_manifest(tmp_path: Path) -> None:
    tar = write_tar(tmp_path / "demo.tar", [Member("demo/MANIFEST.json", b"[" * 100_000)])
    rc, err, rss = _verify_child(tmp_path, tar)
    _assert_refused(rc, err, rss, match="MANIFEST.json")


def test_lock_field_of_the_wrong_type(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "built", "alpha", "1.0")
    members = bundle_members([wheel])
    lock_m = next(m for m in members if m.name.endswith("wheelferry.lock.json"))
    data = json.loads(lock_m.data)
    data["targets"][0]["removed"] = 5  # a list of packages in the format
    members = _rehash(members, lock_m.name, json.dumps(data).encode())
    tar = write_tar(tmp_path / "demo.tar", members)
    rc, err, rss = _verify_child(tmp_path, tar)
    _assert_refused(rc, err, rss, match="lock")


def _rehash(members: list[Member], name: str, data: bytes) -> list[Member]:
    """Replace one member's data and keep MANIFEST.json and SHA256SUMS consistent with it."""
    from wheelferry.manifest import render_sums
    rel = name.split("/", 1)[1]
    manifest = json.loads(members[0].data)
    for f in manifest["files"]:
        if f["path"] == rel:
            f["sha256"], f["size"] = hashlib.sha256(data).hexdigest(), len(data)
    entries = [FileEntry(f["path"], f["sha256"], f["size"]) for f in manifest["files"]
               if f["path"] != "SHA256SUMS"]
    sums = render_sums(entries).encode()
    for f in manifest["files"]:
        if f["path"] == "SHA256SUMS":
            f["sha256"], f["size"] = hashlib.sha256(sums).hexdigest(), len(sums)
    out = [members[0].with_data(json.dumps(manifest).encode())]
    for m in members[1:]:
        out.append(m.with_data(data) if m.name == name else
                   m.with_data(sums) if m.name.endswith("/SHA256SUMS") else m)
    return out


def test_a_manifest_at_its_cap_is_checked_to_the_last_member(tmp_path: Path) -> None:
    """How the time grows with the count is measured by benchmarks/members_scale.py."""
    count = 100_000  # the 16 MiB manifest cap holds about this many entries
    tar = many_members_bundle(tmp_path / "demo.tar", count)
    with pytest.raises(VerificationError, match="SHA256SUMS"):
        verify_bundle(tar, keyring=None, trusted=[], allow_unsigned=True, state_dir=tmp_path / "state")


_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                            max_leaves=20)


@settings(max_examples=150,
          suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=2000), _json_values.map(lambda v: json.dumps(v).encode())))
def test_fuzz_manifest_bytes(tmp_path: Path, data: bytes) -> None:
    tar = write_tar(tmp_path / "fuzz.tar", [Member("demo/MANIFEST.json", data)])
    with pytest.raises(VerificationError):
        verify_bundle(tar, keyring=None, trusted=[], allow_unsigned=True, state_dir=tmp_path / "state")


def test_allow_unsigned_never_moves_the_replay_mark(tmp_path: Path) -> None:
    from wheelferry.offline.cli import main
    from wheelferry.offline.state import load_accepted
    wheel = build_wheel(tmp_path / "built", "alpha", "1.0")
    tar = write_tar(tmp_path / "demo.tar", bundle_members([wheel], sequence=9_999_999_999))
    state = tmp_path / "state"
    assert main(["verify", str(tar), "--allow-unsigned", "--state-dir", str(state)]) == 0
    assert load_accepted(state, "demo") is None


@pytest.mark.parametrize("signed", [True, False])
def test_padded_volume_refused_before_a_byte_is_copied(tmp_path: Path, gpg_keys: GpgKeys, signed: bool) -> None:
    wheels = [build_wheel(tmp_path / "built", "alpha", "1.0", padding=12000)]
    media = tmp_path / "media"
    media.mkdir()
    tar = make_bundle(tmp_path, wheels, out=media / "demo.tar")
    gpg_keys.sign("good", tar)
    list_path, vset = split_bundle(tar, -(-tar.stat().st_size // 3))
    gpg_keys.sign("good", list_path)
    tar.unlink()
    last = media / vset.volumes[-1].name
    os.truncate(last, last.stat().st_size + (300 << 20))  # sparse: 300 MB more, no disk used
    keys = ["--keyring", str(gpg_keys.export("good", path=tmp_path / "KEYS.asc")),
            "--trusted-key", gpg_keys.fpr["good"]] if signed else ["--allow-unsigned"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    rc, err, rss = _verify_child(tmp_path, media / "demo.tar.000", *keys, env={"TMPDIR": str(scratch)})
    _assert_refused(rc, err, rss, match=f"volume demo.tar.002 (3 of 3) is {last.stat().st_size} bytes, "
                                        f"the list says {vset.volumes[-1].size}")
    # Not one volume was copied: the process wrote less than the smallest volume.
    assert int((tmp_path / "rss.io").read_text()) < vset.volumes[-1].size
    assert [p.name for p in scratch.rglob("*") if p.is_file()] == []


@settings(max_examples=200)
@given(st.one_of(st.binary(max_size=2000),
                 _json_values.map(lambda v: json.dumps(v).encode()),
                 st.fixed_dictionaries({
                     "format": st.just("wheelferry-volumes"), "format-version": st.just(1) | _json_values,
                     "bundle": st.just("demo.tar") | st.text(max_size=12),
                     "size": st.integers() | _json_values, "sha256": st.just("0" * 64) | st.text(max_size=3),
                     "volume-size": st.integers(min_value=-1, max_value=10) | _json_values,
                     "volumes": st.lists(st.fixed_dictionaries({
                         "name": st.sampled_from(["demo.tar.000", "demo.tar.001", "demo.tar." + "9" * 5000])
                         | _json_values,
                         "size": st.integers() | st.booleans(), "sha256": st.just("a" * 64) | _json_values}),
                         max_size=4) | _json_values,
                 }).map(lambda v: json.dumps(v).encode())))
@example(b'{"format": "wheelferry-volumes", "bundle": "\\n", "volumes": [null]}')  # a line break in the name
def test_fuzz_volume_list(data: bytes) -> None:
    try:
        vset = parse_volume_list(data, "demo.volumes.json")
    except VerificationError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 2000
    else:
        assert sum(v.size for v in vset.volumes) == vset.size


def _lock_mutations() -> st.SearchStrategy[Any]:
    """A path into a real lock document and the value put there (any JSON, or the key removed)."""
    return st.tuples(st.lists(st.integers(0, 12), min_size=1, max_size=5),
                     st.none() | _json_values | st.just("__remove__"))


def _mutate(doc: Any, path: list[int], value: Any) -> Any:
    node = doc
    for step in path[:-1]:
        keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        if not keys or not isinstance(node[keys[step % len(keys)]], (dict, list)):
            break
        node = node[keys[step % len(keys)]]
    keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
    if keys:
        key = keys[path[-1] % len(keys)]
        if value == "__remove__":
            del node[key]
        else:
            node[key] = value
    return doc


def _one_line_refusal(exc: BaseException) -> None:
    text = str(exc)
    assert isinstance(exc, VerificationError) and exc.exit_code == 1, repr(exc)
    assert text and "\n" not in text and len(text) < 4000, text


@settings(max_examples=120,
          suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=300).map(lambda b: ("raw", b)), _lock_mutations().map(lambda m: ("edit", m))))
def test_fuzz_lock_in_a_hash_consistent_bundle(tmp_path_factory: pytest.TempPathFactory,
                                               case: tuple[str, Any]) -> None:
    tmp = tmp_path_factory.mktemp("fuzzlock")
    members = bundle_members([build_wheel(tmp / "built", "alpha", "1.0")])
    lock_m = next(m for m in members if m.name.endswith("wheelferry.lock.json"))
    kind, value = case
    data = value if kind == "raw" else json.dumps(_mutate(json.loads(lock_m.data), *value)).encode()
    tar = write_tar(tmp / "demo.tar", _rehash(members, lock_m.name, data))
    try:
        verify_bundle(tar, keyring=None, trusted=[], allow_unsigned=True, state_dir=tmp / "state")
    except Exception as exc:  # noqa: BLE001  (anything but one plain refusal fails the test)
        _one_line_refusal(exc)


@settings(max_examples=150)
@given(st.one_of(st.binary(max_size=400),
                 st.lists(st.tuples(st.sampled_from(["0" * 64, "f" * 63, "A" * 64, "0" * 64 + " "]),
                                    st.sampled_from(["  ", " *", " ", "\t"]),
                                    st.sampled_from(["wheels/a.whl", "../x", "/etc/passwd", "a//b", "", "x\x00"])
                                    | st.text(max_size=12)),
                          max_size=6).map(lambda rows: "".join(f"{h}{s}{p}\n" for h, s, p in rows).encode())))
def test_fuzz_sha256sums(data: bytes) -> None:
    from wheelferry.manifest import parse_sums
    try:
        sums = parse_sums(data.decode("utf-8", errors="replace"))
    except Exception as exc:  # noqa: BLE001
        _one_line_refusal(exc)
    else:
        assert all(len(h) == 64 and not p.startswith("/") and ".." not in p.split("/") for p, h in sums.items())


_DIST_INFO_FILES = st.fixed_dictionaries({}, optional={
    "RECORD": st.binary(max_size=200) | st.just(b"alpha/__init__.py,sha256=,\n") | st.just(b'"\n'),
    "METADATA": st.binary(max_size=200) | st.just(b"Metadata-Version: 2.1\nName: \xff\n"),
    "WHEEL": st.binary(max_size=120) | st.just(b"Wheel-Version: 9.0\nRoot-Is-Purelib: maybe\n"),
    "entry_points.txt": st.binary(max_size=120) | st.just(b"[console_scripts]\n=x:\nb = :y\n"),
})


@pytest.mark.filterwarnings("ignore:Duplicate name")
@settings(max_examples=100,
          suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(_DIST_INFO_FILES, st.lists(st.sampled_from(["../up.txt", "/abs", "C:/x", "a\\b", "alpha/x.py"]),
                                  max_size=2), st.integers(0, 400), st.binary(min_size=1, max_size=8))
def test_fuzz_wheel_zip(tmp_path_factory: pytest.TempPathFactory, dist_info: dict[str, bytes],
                        extra: list[str], cut: int, junk: bytes) -> None:
    """Hostile RECORD, METADATA, WHEEL, entry points, member names and a damaged zip directory."""
    import zipfile

    from wheelferry.errors import InstallError
    from wheelferry.offline.engine import SCHEMES, install_wheels
    from wheelferry.offline.wheelcheck import check_wheel_zip
    tmp = tmp_path_factory.mktemp("fuzzwheel")
    good = build_wheel(tmp / "built", "alpha", "1.0")
    wheel = tmp / good.name
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(wheel, "w") as dst:
        for info in src.infolist():
            leaf = info.filename.rsplit("/", 1)[-1]
            dst.writestr(info, dist_info.get(leaf, src.read(info)) if ".dist-info/" in info.filename
                         else src.read(info))
        for name in extra:
            dst.writestr(name, b"x")
    if cut:  # overwrite bytes inside the central directory at the end
        raw = bytearray(wheel.read_bytes())
        at = max(0, len(raw) - cut)
        raw[at:at + len(junk)] = junk
        wheel.write_bytes(bytes(raw))
    scheme = {k: str(tmp / "env" / k) for k in SCHEMES}
    for step in (lambda: check_wheel_zip(wheel),
                 lambda: install_wheels([wheel], scheme, sys.executable, compile=False, workers=1)):
        try:
            step()
        except Exception as exc:  # noqa: BLE001  (anything but one plain refusal fails the test)
            assert isinstance(exc, InstallError) and exc.exit_code == 1, repr(exc)
            assert "\n" not in str(exc) and str(exc), str(exc)
            break
