"""Bundle writer: deterministic tar layout, manifests, hash-while-copying, atomic output."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import subprocess
import tarfile
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support.bundles import host_markers, make_lock
from wheelferry import bundle as bundle_mod
from wheelferry.bundle import BundleResult, write_bundle
from wheelferry.errors import BundleError, UsageError
from wheelferry.manifest import parse_manifest, parse_sums

CREATED = 1767225600  # 2026-01-01T00:00:00Z
TID = "linux-x86_64-cp311"


@pytest.fixture
def wheels(make_wheel: Callable[..., Path]) -> list[Path]:
    return [make_wheel("alpha", "1.0", requires=["beta"]), make_wheel("beta", "2.0", padding=3000),
            make_wheel("gamma", "0.1")]


def _lock_files(lock: Any) -> dict[str, bytes]:
    return {"wheelferry.lock.json": lock.dumps().encode(),
            f"pylock.{TID}.toml": b'lock-version = "1.0"\n',
            f"requirements.{TID}.txt": b"alpha==1.0 --hash=sha256:00\n"}


def _build(out: Path, wheels: list[Path], **kw: Any) -> BundleResult:
    lock = make_lock(wheels, name="demo", targets={TID: host_markers()})
    out.mkdir(parents=True, exist_ok=True)
    args: dict[str, Any] = {"name": "demo", "lock": lock, "lock_files": _lock_files(lock),
                                "wheel_paths": {w.name: w for w in wheels}, "sequence": 7, "created": CREATED,
                                "expires": CREATED + 86400, "tool": "wheelferry test"}
    args.update(kw)
    return write_bundle(out, **args)


def test_same_inputs_give_identical_bytes(tmp_path: Path, wheels: list[Path]) -> None:
    a = _build(tmp_path / "a", wheels)
    b = _build(tmp_path / "b", wheels)
    assert a.path.name == "demo.tar"
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.size == a.path.stat().st_size
    c = _build(tmp_path / "c", wheels, created=CREATED + 1)
    assert c.path.read_bytes() != a.path.read_bytes()


def test_gzip_is_deterministic_and_has_no_time(tmp_path: Path, wheels: list[Path]) -> None:
    a = _build(tmp_path / "a", wheels, compress="gzip")
    b = _build(tmp_path / "b", wheels, compress="gzip")
    assert a.path.name == "demo.tar.gz"
    data = a.path.read_bytes()
    assert data == b.path.read_bytes()
    assert data[4:8] == b"\0\0\0\0"  # gzip header MTIME
    plain = _build(tmp_path / "p", wheels)
    assert gzip.decompress(data) == plain.path.read_bytes()


def test_zstd_needs_the_package_or_round_trips(tmp_path: Path, wheels: list[Path]) -> None:
    try:
        import zstandard
    except ImportError:
        with pytest.raises(UsageError, match="zstandard"):
            _build(tmp_path / "z", wheels, compress="zstd")
        assert list((tmp_path / "z").iterdir()) == []
        return
    z = _build(tmp_path / "z", wheels, compress="zstd")
    plain = _build(tmp_path / "p", wheels)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(z.path.read_bytes()) \
        == plain.path.read_bytes()


def test_layout_order_and_normalised_headers(tmp_path: Path, wheels: list[Path]) -> None:
    result = _build(tmp_path, wheels)
    with tarfile.open(result.path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[0] == "demo/MANIFEST.json"
    assert names[1:] == sorted(names[1:])
    assert names == [
        "demo/MANIFEST.json", "demo/SHA256SUMS", "demo/lock",
        f"demo/lock/pylock.{TID}.toml", f"demo/lock/requirements.{TID}.txt",
        "demo/lock/wheelferry.lock.json", "demo/sbom.cdx.json", "demo/wheels",
        *(f"demo/wheels/{w.name}" for w in sorted(wheels))]
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", CREATED)
        assert m.mode == (0o755 if m.isdir() else 0o644)
        assert m.isdir() or m.isreg()


def test_source_date_epoch_fixes_mtime(tmp_path: Path, wheels: list[Path],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1600000000")
    result = _build(tmp_path, wheels)
    with tarfile.open(result.path) as tar:
        assert {m.mtime for m in tar.getmembers()} == {1600000000}
    assert result.manifest.created == "2026-01-01T00:00:00Z"


def test_manifest_and_sums_match_the_extracted_tree(tmp_path: Path, wheels: list[Path]) -> None:
    result = _build(tmp_path / "out", wheels)
    with tarfile.open(result.path) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    top = tmp_path / "x" / "demo"
    manifest = parse_manifest(json.loads((top / "MANIFEST.json").read_text()))
    assert manifest == result.manifest
    assert (manifest.name, manifest.sequence, manifest.expires) == ("demo", 7, "2026-01-02T00:00:00Z")
    assert manifest.targets == ({"id": TID, "spec": TID},)
    on_disk = {p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()}
    assert set(manifest.by_path()) == on_disk - {"MANIFEST.json"}
    for entry in manifest.files:
        data = (top / entry.path).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (entry.sha256, entry.size)
    sums = parse_sums((top / "SHA256SUMS").read_text())
    assert set(sums) == on_disk - {"MANIFEST.json", "SHA256SUMS"}
    for w in wheels:
        assert (top / "wheels" / w.name).read_bytes() == w.read_bytes()
    subprocess.run(["sha256sum", "--quiet", "--strict", "-c", "SHA256SUMS"], cwd=top, check=True)


def test_passes_the_offline_verifier(tmp_path: Path, wheels: list[Path]) -> None:
    from wheelferry.offline.verify import verify_bundle

    result = _build(tmp_path / "out", wheels)
    verified = verify_bundle(result.path, keyring=None, trusted=[], allow_unsigned=True,
                             state_dir=tmp_path / "state",
                             now=datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.timezone.utc))
    assert verified.manifest == result.manifest
    assert len(verified.files) == len(result.manifest.files)


def test_sbom_defaults_to_the_lock_sbom(tmp_path: Path, wheels: list[Path]) -> None:
    result = _build(tmp_path, wheels)
    with tarfile.open(result.path) as tar:
        f = tar.extractfile("demo/sbom.cdx.json")
        assert f is not None
        sbom = json.loads(f.read())
    assert sbom["specVersion"] == "1.6"
    assert len(sbom["components"]) == 3
    given = _build(tmp_path / "given", wheels, sbom=b"{}\n")
    assert given.manifest.by_path()["sbom.cdx.json"].sha256 == hashlib.sha256(b"{}\n").hexdigest()


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir())


def test_cached_wheel_changed_in_place_is_refused(tmp_path: Path, wheels: list[Path]) -> None:
    lock = make_lock(wheels, name="demo", targets={TID: host_markers()})
    tampered = bytearray(wheels[1].read_bytes())
    tampered[-100] ^= 0xFF  # same size, different bytes: only hashing while copying sees it
    wheels[1].write_bytes(bytes(tampered))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BundleError, match=f"cached wheel {wheels[1].name} changed") as exc:
        write_bundle(out, name="demo", lock=lock, lock_files=_lock_files(lock),
                     wheel_paths={w.name: w for w in wheels}, sequence=1, created=CREATED,
                     expires=None, tool="t")
    assert "sha256 is" in str(exc.value) and exc.value.hint
    assert _leftovers(out) == []


def test_cached_wheel_of_the_wrong_size_is_refused(tmp_path: Path, wheels: list[Path]) -> None:
    lock = make_lock(wheels, name="demo", targets={TID: host_markers()})
    with open(wheels[0], "ab") as f:
        f.write(b"x")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BundleError, match="bytes, the lock says"):
        write_bundle(out, name="demo", lock=lock, lock_files={},
                     wheel_paths={w.name: w for w in wheels}, sequence=1, created=CREATED,
                     expires=None, tool="t")
    assert _leftovers(out) == []


def test_missing_wheel_and_bad_name(tmp_path: Path, wheels: list[Path]) -> None:
    with pytest.raises(BundleError, match="no downloaded file"):
        _build(tmp_path / "a", wheels, wheel_paths={wheels[0].name: wheels[0]})
    with pytest.raises(UsageError, match="not a plain file name"):
        _build(tmp_path / "b", wheels, name="../evil")
    with pytest.raises(UsageError, match="compression"):
        _build(tmp_path / "c", wheels, compress="xz")


def test_interruption_leaves_no_temp_file(tmp_path: Path, wheels: list[Path],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real_read = bundle_mod._HashingReader.read

    def interrupted(self: Any, n: int = -1) -> bytes:
        if self.count:
            raise KeyboardInterrupt
        return real_read(self, min(n, 100) if n > 0 else 100)

    monkeypatch.setattr(bundle_mod, "TAR_CHUNK", 100)
    monkeypatch.setattr(bundle_mod._HashingReader, "read", interrupted)
    out = tmp_path / "out"
    out.mkdir()
    (out / "demo.tar").write_bytes(b"previous bundle")
    with pytest.raises(KeyboardInterrupt):
        _build(out, wheels)
    assert _leftovers(out) == ["demo.tar"]
    assert (out / "demo.tar").read_bytes() == b"previous bundle"


def test_wheels_are_streamed_not_read_whole(tmp_path: Path, make_wheel: Callable[..., Path]) -> None:
    # The writer reads TAR_CHUNK at a time and the background hash holds at most 16 chunks
    # (4 MiB) when it lags on a loaded machine: far below the wheel, which is never whole.
    big = make_wheel("big", "1.0", padding=32 << 20)
    lock = make_lock([big], name="demo", targets={TID: host_markers()})
    sbom = b"{}\n"
    tracemalloc.start()
    try:
        write_bundle(tmp_path, name="demo", lock=lock, lock_files={}, wheel_paths={big.name: big},
                     sequence=1, created=CREATED, expires=None, tool="t", sbom=sbom)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert big.stat().st_size > 32 << 20
    assert peak < 8 << 20, f"peak Python allocation {peak} bytes while packing a 32 MiB wheel"


def test_unwritable_output_dir_is_a_bundle_error(tmp_path: Path, wheels: list[Path]) -> None:
    lock = make_lock(wheels, name="demo", targets={TID: host_markers()})
    with pytest.raises(BundleError, match="cannot write into"):
        write_bundle(tmp_path / "nowhere", name="demo", lock=lock, lock_files={},
                     wheel_paths={w.name: w for w in wheels}, sequence=1, created=CREATED,
                     expires=None, tool="t")
