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

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.bundles import Member, bundle_members, write_tar
from tests.support.wheels import build_wheel
from wheelferry.errors import VerificationError
from wheelferry.manifest import FileEntry, Manifest
from wheelferry.offline.verify import verify_bundle

SRC = Path(__file__).resolve().parents[1] / "src"
resource = pytest.importorskip("resource")
if not Path("/proc/self/status").exists():
    pytest.skip("peak RSS is read from /proc/self/status", allow_module_level=True)

_CHILD = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1500 << 20, 1500 << 20))
from wheelferry.offline.cli import main
rc = main(["verify", sys.argv[1], "--allow-unsigned", "--state-dir", sys.argv[2]])
with open(sys.argv[3], "w") as f:
    # VmHWM is this process's own peak; ru_maxrss would include the parent's from before exec.
    f.write(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
sys.exit(rc)
"""


def _verify_child(tmp_path: Path, tar: Path) -> tuple[int, str, int]:
    """Exit code, stderr and peak RSS in KiB of a verify run in a limited child process."""
    rss = tmp_path / "rss"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(tar), str(tmp_path / "state"), str(rss)],
                          capture_output=True, text=True, env=env, timeout=60)
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


def test_many_members_checked_in_linear_time(tmp_path: Path) -> None:
    count = 100_000  # the 16 MiB manifest cap holds about this many entries
    empty = hashlib.sha256(b"").hexdigest()
    entries = tuple(FileEntry(f"wheels/e{i}.whl", empty, 0) for i in range(count))
    manifest = Manifest("demo", 1, "2026-01-01T00:00:00Z", ({"id": "host", "spec": "host"},),
                        entries, tool="wheelferry-tests")
    members = [Member("demo/MANIFEST.json", manifest.dumps().encode())]
    members += [Member(f"demo/{e.path}") for e in entries]
    tar = write_tar(tmp_path / "demo.tar", members)
    import time
    started = time.monotonic()
    with pytest.raises(VerificationError, match="SHA256SUMS"):
        verify_bundle(tar, keyring=None, trusted=[], allow_unsigned=True, state_dir=tmp_path / "state")
    # Quadratic work would take tens of minutes here; linear work takes seconds.
    assert time.monotonic() - started < 120


@settings(max_examples=150,
          suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=2000),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                              max_leaves=20).map(lambda v: json.dumps(v).encode())))
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
