"""Core metadata arrives by the cheapest route the index offers, and is cached by wheel hash."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.support.wheels import build_wheel
from wheelferry.config import IndexConfig
from wheelferry.errors import MetadataError
from wheelferry.http import make_session
from wheelferry.index import IndexClient
from wheelferry.metadata import MetadataSource, read_wheel_metadata
from wheelferry.pages import DistFile

TWO_MB = 2 * 1024 * 1024


def _session():
    return make_session(retries=1, backoff=0)


def _dist(server, name: str = "big") -> DistFile:
    (dist,) = IndexClient(IndexConfig(server.url), _session()).files(name)
    return dist


@pytest.fixture
def big_wheel(tmp_path: Path) -> Path:
    return build_wheel(tmp_path / "w", "big", "1.0", requires=["numpy>=1.26"], padding=TWO_MB)


def test_pep658_file_is_used_and_no_wheel_is_downloaded(index_server, big_wheel: Path,
                                                         tmp_path: Path) -> None:
    server = index_server(big_wheel.parent, mode="html")
    dist = _dist(server)
    source = MetadataSource(_session(), tmp_path / "cache")
    data = source.get(dist)
    assert b"Requires-Dist: numpy>=1.26" in data
    assert source.stats["GET"] == 1 and source.stats["bytes"] == len(data)
    wheel_path = f"/files/{big_wheel.name}"
    assert [r for r in server.requests if r[1] == wheel_path] == []


def test_pep658_hash_mismatch_is_an_error(index_server, big_wheel: Path) -> None:
    server = index_server(big_wheel.parent, corrupt={big_wheel.name + ".metadata"})
    with pytest.raises(MetadataError, match="does not match the sha256"):
        MetadataSource(_session(), None).get(_dist(server))
    assert server.count("GET", big_wheel.name) == 0


def test_range_reads_fetch_a_small_part_of_a_large_wheel(index_server, big_wheel: Path) -> None:
    server = index_server(big_wheel.parent, pep658=False)
    source = MetadataSource(_session(), None)
    data = source.get(_dist(server))
    assert data.startswith(b"Metadata-Version:") and b"Name: big" in data
    wheel_reqs = [r for r in server.requests if r[1] == f"/files/{big_wheel.name}"]
    assert 1 <= len(wheel_reqs) <= 2 and all(r[2] for r in wheel_reqs)
    assert source.stats["bytes"] < 100_000 < big_wheel.stat().st_size // 20


@pytest.mark.parametrize("hide_size", [False, True])
def test_server_without_range_support_falls_back_to_download(index_server, big_wheel: Path,
                                                              hide_size: bool) -> None:
    server = index_server(big_wheel.parent, pep658=False, range=False, hide_size=hide_size)
    source = MetadataSource(_session(), None)
    assert b"Name: big" in source.get(_dist(server))
    assert source.stats["GET"] == 1 and source.stats["bytes"] == big_wheel.stat().st_size


def test_error_page_instead_of_wheel_is_caught(index_server, big_wheel: Path) -> None:
    server = index_server(big_wheel.parent, pep658=False, html_200={big_wheel.name})
    with pytest.raises(MetadataError, match="got an HTML page instead of big-1.0"):
        MetadataSource(_session(), None).get(_dist(server))


def test_second_run_is_served_from_cache(index_server, tmp_path: Path) -> None:
    for i in range(6):
        build_wheel(tmp_path / "w", f"pkg{i}", "1.0", requires=[f"dep{i}"])
    server = index_server(tmp_path / "w", pep658=False)
    client = IndexClient(IndexConfig(server.url), _session())
    dists = [client.files(f"pkg{i}")[0] for i in range(6)]
    first = MetadataSource(_session(), tmp_path / "cache", jobs=4).prefetch(dists)
    assert all(f"Requires-Dist: dep{i}".encode() in first[d] for i, d in enumerate(dists))
    before = len(server.requests)
    second = MetadataSource(_session(), tmp_path / "cache")
    assert second.prefetch(dists) == first
    assert len(server.requests) == before and second.stats["GET"] == 0
    # Without a known hash the cache is keyed by URL.
    bare = DistFile(dists[0].filename, dists[0].url)
    MetadataSource(_session(), tmp_path / "cache").get(bare)
    third = MetadataSource(_session(), tmp_path / "cache")
    assert third.get(bare) == first[dists[0]] and third.stats["GET"] == 0


def test_local_files_and_sibling_metadata(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "links", "pkg", "1.0", requires=["attrs"])
    source = MetadataSource(_session(), None)
    plain = DistFile(wheel.name, wheel.as_uri())
    assert b"Requires-Dist: attrs" in source.get(plain)
    (tmp_path / "links" / (wheel.name + ".metadata")).write_bytes(b"Name: pkg\nVersion: 1.0\n")
    (dist,) = IndexClient(IndexConfig(None, (), ((tmp_path / "links").as_uri(),)),
                          _session()).files("pkg")
    assert source.get(dist) == b"Name: pkg\nVersion: 1.0\n"
    assert source.stats["GET"] == 0


def test_sdists_and_broken_metadata_are_refused(tmp_path: Path) -> None:
    source = MetadataSource(_session(), None)
    with pytest.raises(MetadataError, match="not a wheel"):
        source.get(DistFile("pkg-1.0.tar.gz", "https://mirror.example/pkg-1.0.tar.gz"))
    wheel = build_wheel(tmp_path, "pkg", "1.0")
    wheel.with_name(wheel.name + ".metadata").write_bytes(b"garbage\n")
    with pytest.raises(MetadataError, match="Name/Version"):
        source.get(DistFile(wheel.name, wheel.as_uri(), core_metadata=True))


def _rezip(src: Path, dest: Path, *, extra_members: int = 0, method: int = zipfile.ZIP_DEFLATED,
           vendored: bool = False) -> Path:
    """Copy a wheel with more members, another compression, or a vendored dist-info first."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", method) as zout:
        if vendored:
            zout.writestr("other-9.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: other\nVersion: 9.0\n")
        for i in range(extra_members):
            zout.writestr(f"big/pkg/m{i:05d}.py", b"x = 1\n")
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    return dest


@pytest.mark.parametrize("shape", ["many-members", "vendored-dist-info", "bzip2-fallback"])
def test_range_reads_match_the_wheel_for_every_zip_shape(index_server, tmp_path: Path,
                                                         shape: str) -> None:
    plain = build_wheel(tmp_path / "src", "big", "1.0", requires=["numpy>=1.26"])
    wheel = _rezip(plain, tmp_path / "w" / plain.name,
                   extra_members=4000 if shape == "many-members" else 0,
                   method=zipfile.ZIP_BZIP2 if shape == "bzip2-fallback" else zipfile.ZIP_DEFLATED,
                   vendored=shape == "vendored-dist-info")
    server = index_server(wheel.parent, pep658=False)
    source = MetadataSource(_session(), None, tail_bytes=4096)
    data = source.get(_dist(server))
    with zipfile.ZipFile(wheel) as zf:
        assert data == zf.read("big-1.0.dist-info/METADATA")
    if shape == "many-members":
        assert source.stats["bytes"] < wheel.stat().st_size


def test_local_wheel_metadata_read_from_the_central_directory(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = build_wheel(tmp_path, "Local.Pkg", "1.2", requires=["dep>=1"],
                        files={f"local_pkg/m{i}.py": b"x = 1\n" for i in range(300)})
    with zipfile.ZipFile(wheel) as zf:
        expected = zf.read("local_pkg-1.2.dist-info/METADATA")
    with monkeypatch.context() as m:  # the records are read directly: zipfile is never needed
        m.setattr("wheelferry.metadata.zipfile.ZipFile", None)
        assert read_wheel_metadata(wheel, "local-pkg") == expected
    with zipfile.ZipFile(wheel, "a") as zf:  # a zip comment: the end record is no longer last
        zf.comment = b"signed by nobody"
    assert read_wheel_metadata(wheel, "local-pkg") == expected
    wheel.write_bytes(b"not a zip")
    with pytest.raises(MetadataError, match="could not read"):
        read_wheel_metadata(wheel, "local-pkg")
