"""Index pages (PEP 503/691/592/658/714) parse; the client merges indexes and find-links."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urljoin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.tags import Tag
from packaging.version import Version

from tests.support.wheels import build_wheel, sha256_file
from wheelferry import pages as pages_module
from wheelferry.config import IndexConfig
from wheelferry.errors import IndexUnreachableError
from wheelferry.finder import wheels_for
from wheelferry.http import CACHE_WRITER, make_session
from wheelferry.index import IndexClient
from wheelferry.pages import (
    DistFile,
    _generic_page,
    _Joiner,
    name_and_version,
    parse_html_page,
    parse_json_page,
    read_json_page,
)
from wheelferry.target import parse_target
from wheelferry.urls import strip_credentials

PAGES = Path(__file__).parent / "data" / "pages"
LINUX = "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
YANKED = "numpy-1.22.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"


def _session():
    return make_session(retries=2, backoff=0.01)


def test_recorded_json_page() -> None:
    files = parse_json_page((PAGES / "numpy.json").read_bytes(), "https://mirror.example/simple/numpy/")
    assert [f.filename for f in files] == [
        LINUX, "numpy-1.26.4-cp311-cp311-win_amd64.whl", "numpy-1.26.4.tar.gz", YANKED]
    linux = files[0]
    assert linux.url.startswith("https://files.mirror.example/packages/") and "#" not in linux.url
    assert linux.requires_python == ">=3.9" and linux.yanked is None
    assert linux.size == 18297376 and linux.upload_time == "2024-02-05T23:51:21.312480Z"
    assert isinstance(linux.core_metadata, dict) and len(linux.core_metadata["sha256"]) == 64
    assert linux.sha256 is not None and linux.name == "numpy" and linux.version == Version("1.26.4")
    assert Tag("cp311", "cp311", "manylinux2014_x86_64") in linux.tags
    sdist = files[2]
    assert not sdist.is_wheel and sdist.tags == frozenset() and sdist.core_metadata is False
    assert files[3].yanked == "The wheels lack a dependency on the C runtime"


def test_recorded_html_page_matches_json() -> None:
    url = "https://mirror.example/simple/numpy/"
    from_html = parse_html_page((PAGES / "numpy.html").read_bytes(), url)
    from_json = parse_json_page((PAGES / "numpy.json").read_bytes(), url)
    # HTML carries no size or upload time; everything else agrees.
    assert [(f.filename, f.url, dict(f.hashes), f.requires_python, f.yanked, f.core_metadata)
            for f in from_html] == \
        [(f.filename, f.url, dict(f.hashes), f.requires_python, f.yanked, f.core_metadata)
         for f in from_json]


def test_base_href_relative_links_and_unescaping() -> None:
    files = parse_html_page((PAGES / "tiny-base-href.html").read_bytes(),
                            "https://mirror.example/simple/tiny/")
    assert [f.url for f in files] == [
        "https://mirror.example/artifactory/api/packages/tiny-1.0-py3-none-any.whl",
        "https://mirror.example/artifactory/api/packages/tiny-0.9-py2.py3-none-any.whl"]
    assert files[0].requires_python == ">=3.8,<4" and files[0].core_metadata is True
    assert files[0].yanked is None and files[1].yanked == ""
    assert files[1].hashes == {"md5": "0123456789abcdef0123456789abcdef"} and files[1].sha256 is None


def test_json_relative_urls_and_bad_pages() -> None:
    page = {"meta": {"api-version": "1.0"}, "name": "x", "files": [
        {"filename": "x-1-py3-none-any.whl", "url": "../../f/x-1-py3-none-any.whl#sha256=AB",
         "hashes": {}, "yanked": True, "core-metadata": {}, "size": True}]}
    (f,) = parse_json_page(json.dumps(page).encode(), "http://u:p@127.0.0.1:9/simple/x/")
    assert f.url == "http://127.0.0.1:9/f/x-1-py3-none-any.whl"
    assert f.hashes == {"sha256": "ab"} and f.yanked == "" and f.core_metadata is True
    assert f.size is None
    with pytest.raises(IndexUnreachableError, match="not a valid JSON"):
        parse_json_page(b"<html>", "https://mirror.example/simple/x/")
    # What the json module reads (a byte-order mark, NaN) is read, as pip would.
    odd = b"\xef\xbb\xbf" + json.dumps(page).encode().replace(b'"size": true', b'"size": NaN')
    assert [d.filename for d in parse_json_page(odd, "https://mirror.example/simple/x/")] == \
        ["x-1-py3-none-any.whl"]
    page["meta"] = {"api-version": "2.0"}
    with pytest.raises(IndexUnreachableError, match="2.0"):
        parse_json_page(json.dumps(page).encode(), "https://mirror.example/simple/x/")


def test_distfile_is_hashable() -> None:
    a = DistFile("a-1-py3-none-any.whl", "https://mirror.example/a", {"sha256": "00"})
    assert len({a, DistFile("a-1-py3-none-any.whl", "https://mirror.example/a", {"sha256": "00"})}) == 1


@pytest.mark.parametrize("mode", ["json", "html", "both"])
def test_client_reads_loopback_index(index_server, tmp_path: Path, mode: str) -> None:
    wheel = build_wheel(tmp_path / "w", "Demo.Pkg", "1.0", requires_python=">=3.9")
    build_wheel(tmp_path / "w", "demo-pkg", "2.0")
    server = index_server(tmp_path / "w", mode=mode,
                          yanked={wheel.name: "bad build"}, requires_python={wheel.name: ">=3.9"})
    client = IndexClient(IndexConfig(server.url), _session())
    files = client.files("DEMO_pkg")
    assert [f.filename for f in files] == [wheel.name, "demo_pkg-2.0-py3-none-any.whl"]
    first = files[0]
    assert first.url == server.file_url(wheel.name) and first.source == server.url
    assert first.sha256 == sha256_file(wheel) and first.requires_python == ">=3.9"
    assert first.yanked == "bad build" and first.core_metadata
    assert client.files("nothing-here") == []
    before = len(server.requests)
    assert client.files("demo-pkg") == files
    assert len(server.requests) == before


def test_static_file_index_and_find_links_dir(tmp_path: Path) -> None:
    root = tmp_path / "export"
    wheel = build_wheel(tmp_path / "files", "pkg", "1.0")
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "index.html").write_text(
        f'<a href="../../files/{wheel.name}#sha256={sha256_file(wheel)}">{wheel.name}</a>')
    links = tmp_path / "links"
    local = build_wheel(links, "pkg", "2.0")
    (links / (local.name + ".metadata")).write_bytes(b"Name: pkg\nVersion: 2.0\n")
    build_wheel(links, "other", "1.0")
    (links / "README.txt").write_text("not a distribution")
    client = IndexClient(IndexConfig(root.as_uri(), (), (links.as_uri(),)), _session())
    from_index, from_links = client.files("pkg")
    assert from_index.url == wheel.resolve().as_uri() and from_index.source == root.as_uri()
    assert from_links.url == local.resolve().as_uri() and from_links.sha256 == sha256_file(local)
    assert from_links.core_metadata is True and from_links.size == local.stat().st_size
    (root / "pkg" / "index.json").write_text(json.dumps({"meta": {"api-version": "1.1"}, "files": []}))
    assert [f.filename for f in IndexClient(client.config, _session()).files("pkg")] == [local.name]


def test_find_links_page_and_missing_dir(index_server, tmp_path: Path) -> None:
    build_wheel(tmp_path / "w", "pkg", "1.0")
    server = index_server(tmp_path / "w", mode="html")
    page = tmp_path / "links.html"
    page.write_text(f'<a href="{server.file_url("pkg-1.0-py3-none-any.whl")}">pkg</a>')
    client = IndexClient(IndexConfig(None, (), (page.as_uri(), server.url + "/pkg/")), _session())
    assert len(client.files("pkg")) == 2
    missing = IndexClient(IndexConfig(None, (), ((tmp_path / "nope").as_uri(),)), _session())
    with pytest.raises(IndexUnreachableError, match="does not exist"):
        missing.files("pkg")


def test_same_name_on_two_indexes_warns(index_server, tmp_path: Path) -> None:
    build_wheel(tmp_path / "a", "internal-tool", "1.0")
    build_wheel(tmp_path / "b", "internal-tool", "99.0")
    build_wheel(tmp_path / "b", "public", "1.0")
    a, b = index_server(tmp_path / "a"), index_server(tmp_path / "b", mode="html")
    warnings: list[str] = []
    client = IndexClient(IndexConfig(a.url, (b.url,)), _session(), warn=warnings.append)
    client.prefetch(["internal_tool", "public", "internal-tool"])
    assert [f.version for f in client.files("internal-tool")] == [Version("1.0"), Version("99.0")]
    assert [f.source for f in client.files("internal-tool")] == [a.url, b.url]
    assert len(warnings) == 1 and "internal-tool" in warnings[0]
    assert a.url in warnings[0] and b.url in warnings[0] and "dependency confusion" in warnings[0]


def test_server_errors_are_retried(index_server, tmp_path: Path) -> None:
    build_wheel(tmp_path / "w", "pkg", "1.0")
    server = index_server(tmp_path / "w", fail={"/simple/pkg/": 2})
    assert len(IndexClient(IndexConfig(server.url), _session()).files("pkg")) == 1
    assert server.count("GET", "/simple/pkg/") == 3


def _wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "the page was not read ahead"
        time.sleep(0.01)


def test_pages_read_ahead_are_read_before_anyone_asks(index_server, tmp_path: Path) -> None:
    build_wheel(tmp_path / "w", "pkg", "1.0")
    build_wheel(tmp_path / "w", "other", "1.0")
    server = index_server(tmp_path / "w")
    client = IndexClient(IndexConfig(server.url), _session())
    client.read_ahead(["Pkg", "other", "pkg"])
    _wait_for(lambda: server.count("GET", "/simple/pkg/") == 1 and server.count("GET", "/simple/other/") == 1)
    assert [f.filename for f in client.files("pkg")] == ["pkg-1.0-py3-none-any.whl"]
    assert [f.filename for f in client.files("other")] == ["other-1.0-py3-none-any.whl"]
    # One read each, by the threads that read ahead.
    assert server.count("GET", "/simple/pkg/") == 1 and server.count("GET", "/simple/other/") == 1


def test_a_failed_read_ahead_is_raised_to_the_askers_not_tried_again(index_server, tmp_path: Path) -> None:
    build_wheel(tmp_path / "w", "pkg", "1.0")
    server = index_server(tmp_path / "w", fail={"/simple/pkg/": 100})
    client = IndexClient(IndexConfig(server.url), make_session(retries=1, backoff=0.01))
    client.read_ahead(["pkg"])
    _wait_for(lambda: server.count("GET", "/simple/pkg/") >= 1)  # under way: the asker waits for it
    with pytest.raises(IndexUnreachableError, match="500"):
        client.files("pkg")
    with pytest.raises(IndexUnreachableError, match="500"):
        client.files("pkg")
    assert server.count("GET", "/simple/pkg/") == 2  # the read ahead and its one retry, no more


def test_unreachable_index_names_url_without_credentials(index_server, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://alice:hunter2@127.0.0.1:{port}/simple"
    client = IndexClient(IndexConfig(url), make_session([url], retries=1, backoff=0))
    with pytest.raises(IndexUnreachableError) as info:
        client.files("pkg")
    text = str(info.value) + (info.value.hint or "")
    assert f"127.0.0.1:{port}" in text and "refused" in text
    assert "hunter2" not in text and "alice" not in text
    build_wheel(tmp_path / "w", "pkg", "1.0")
    broken = index_server(tmp_path / "w", fail={"/simple/pkg/": 99})
    with pytest.raises(IndexUnreachableError, match="HTTP 500"):
        IndexClient(IndexConfig(broken.url), _session()).files("pkg")


def test_credentials_come_from_the_session(index_server, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", "pkg", "1.0")
    server = index_server(tmp_path / "w", auth=("bob", "s3cr@t"))
    with_creds = server.url.replace("http://", "http://bob:s3cr%40t@")
    config = IndexConfig(with_creds)
    (f,) = IndexClient(config, make_session(config.all_urls())).files("pkg")
    assert "bob" not in f.url and "bob" not in f.source
    # The file URL is outside /simple but on the same host: the session still authenticates.
    data = make_session(config.all_urls()).get(f.url).content
    assert hashlib.sha256(data).hexdigest() == sha256_file(wheel)
    with pytest.raises(IndexUnreachableError, match="401") as info:
        IndexClient(IndexConfig(server.url), _session()).files("pkg")
    assert "s3cr" not in str(info.value)


_SEGMENTS = st.sampled_from(["a", "b.whl", ".", "..", "", "x y", "%41", "c:d", "@", "?q=1", "#sha256=ab"])


@settings(max_examples=300, deadline=None)
@given(base=st.sampled_from(["https://mirror.example/simple/x/", "http://127.0.0.1:8/s/x",
                            "https://h.example/", "https://h.example", "file:///srv/idx/x/"]),
       lead=st.sampled_from(["", "/", "//other.example/", "https://files.example/", "./", "../"]),
       segments=st.lists(_SEGMENTS, max_size=4))
def test_cheap_url_join_agrees_with_urljoin(base: str, lead: str, segments: list[str]) -> None:
    ref = lead + "/".join(segments)
    assert _Joiner(base)(ref) == strip_credentials(urljoin(base, ref))


_ABSENT = object()
_HEX = "ab" * 32
_ENTRY_VALUES = {
    "filename": st.sampled_from(["x-1.0-py3-none-any.whl", "x-2.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                                 "x-1.0.tar.gz", "", "odd name", None, 7]),
    "url": st.sampled_from(["x-1.0-py3-none-any.whl", "../../f/x-2.0-py3-none-any.whl#sha256=AB",
                            "https://files.example/p/x-1.0.tar.gz#md5=zz", "http://[::1", "", None, 3]),
    "hashes": st.sampled_from([{"sha256": _HEX}, {"SHA256": "AB", "md5": "zz"}, {}, None, {"sha256": 1},
                               "ab"]),
    "requires-python": st.sampled_from([">=3.8", " >=3.9 ", " ", "", None, 3]),
    "yanked": st.sampled_from([True, False, "reason", "", None, 1]),
    "core-metadata": st.sampled_from([True, False, None, {"sha256": _HEX}, {}, "yes", {"sha256": 5}]),
    "dist-info-metadata": st.sampled_from([True, False, None, {"sha256": _HEX}]),
    "data-dist-info-metadata": st.sampled_from([True, {"sha256": _HEX}]),
    "size": st.sampled_from([10, 0, None, True, 1.5, "10"]),
    "upload-time": st.sampled_from(["2024-01-02T03:04:05Z", None, 5]),
}
_ENTRY = st.fixed_dictionaries({}, optional={k: st.one_of(st.just(_ABSENT), v) for k, v in _ENTRY_VALUES.items()})


@settings(max_examples=400, deadline=None)
@given(entries=st.lists(st.one_of(_ENTRY, st.sampled_from(["x", 3, None])), max_size=6),
       meta=st.sampled_from([{"api-version": "1.1"}, {}, None, _ABSENT]),
       keep=st.sampled_from([None, "-any.whl"]))
def test_json_pages_of_every_shape_read_as_the_generic_reading(entries: list[object], meta: object,
                                                               keep: str | None) -> None:
    files = [{k: v for k, v in e.items() if v is not _ABSENT} if isinstance(e, dict) else e
             for e in entries]
    doc: dict[str, object] = {"files": files}
    if meta is not _ABSENT:
        doc["meta"] = meta
    body, url = json.dumps(doc).encode(), "https://u:p@mirror.example/simple/x/"
    retain = None if keep is None else (lambda name: name.endswith(keep))  # type: ignore[operator]
    page, generic = read_json_page(body, url, source="s", retain=retain), _generic_page(body, url, "s", retain)
    assert page.names == generic.names
    got, want = page.dists(retain), generic.dists(retain)
    assert [d.__dict__ for d in got] == [d.__dict__ for d in want]
    for name in dict.fromkeys(n for n in page.names if n):
        assert _named(page, name) == _named(generic, name)


def _named(page: pages_module.PageFiles, name: str) -> object:
    try:
        return [d.__dict__ for d in page.named(name, "x")]
    except pages_module.DroppedFiles:
        return "dropped"


class _Asked:
    """A name filter that counts the names it is asked about."""

    def __init__(self) -> None:
        self.asked = 0

    def fits(self, name: str) -> bool:
        self.asked += 1
        return "manylinux" in name


@pytest.mark.parametrize("reader", ["json", "generic", "html"])
def test_a_page_asked_with_the_filter_it_was_read_with_answers_from_what_it_kept(reader: str) -> None:
    url = "https://mirror.example/simple/numpy/"
    body = (PAGES / f"numpy.{'html' if reader == 'html' else 'json'}").read_bytes()
    read = {"json": lambda r: read_json_page(body, url, retain=r),
            "generic": lambda r: _generic_page(body, url, "", r),
            "html": lambda r: pages_module.read_html_page(body, url, retain=r)}[reader]
    kept = _Asked()
    page = read(kept.fits)
    asked = kept.asked
    assert asked == len([n for n in page.names if n is not None])  # every name once, when read
    wanted = [d.__dict__ for d in read(None).dists(lambda n: "manylinux" in n, "numpy")]
    assert len(wanted) == 2
    assert [d.__dict__ for d in page.dists(kept.fits, "numpy")] == wanted
    assert kept.asked == asked  # not asked again
    other = _Asked()  # another filter is asked about every name, and finds the same
    assert [d.__dict__ for d in page.dists(other.fits, "numpy")] == wanted and other.asked == asked


def test_recorded_json_page_reads_as_the_generic_reading() -> None:
    doc = json.loads((PAGES / "numpy.json").read_bytes())
    url = "https://mirror.example/simple/numpy/"
    for files in (doc["files"], [e for e in doc["files"] if isinstance(e, dict)]):
        body = json.dumps({**doc, "files": files}).encode()
        page, generic = read_json_page(body, url), _generic_page(body, url, "", None)
        assert page.names == generic.names and len(page.dists()) == 4
        assert [d.__dict__ for d in page.dists()] == [d.__dict__ for d in generic.dists()]
    pages_module._TYPED_PAGE.decode(body)  # without the garbage entry the typed reading took it


def test_parse_keeps_only_well_formed_names() -> None:
    names = ["ok-1.0-py3-none-any.whl", "ok-1.0-1-py3-none-any.whl", "ok-1.0-x-py3-none-any.whl",
             "ok-bad_version-py3-none-any.whl", "o k-1.0-py3-none-any.whl", "ok-1.0-any.whl",
             "ok-1.0.tar.gz", "ok-1.0.zip", "ok.tar.gz", "ok-nope.tar.gz", "ok-1.0.exe"]
    page = {"meta": {"api-version": "1.0"},
            "files": [{"filename": n, "url": n, "hashes": {}} for n in names]}
    files = parse_json_page(json.dumps(page).encode(), "https://mirror.example/simple/ok/")
    assert [f.filename for f in files] == [names[0], names[1], "ok-1.0.tar.gz", "ok-1.0.zip"]
    assert {f.version for f in files} == {Version("1.0")} and {f.name for f in files} == {"ok"}
    assert files[1].tags == frozenset({Tag("py3", "none", "any")})


def test_a_page_read_for_some_names_gives_those_files_as_the_whole_reading_does() -> None:
    # That the files not asked for are never made is a speed and memory property:
    # benchmarks/lazy_pages.py measures it.
    url = "https://mirror.example/simple/numpy/"
    body = (PAGES / "numpy.json").read_bytes()
    eager = parse_json_page(body, url, source="s")
    page = read_json_page(body, url, source="s")
    assert set(page.names) >= {f.filename for f in eager}
    asked: list[str] = []

    def linux(name: str) -> bool:
        asked.append(name)
        return "manylinux" in name

    assert page.dists(linux) == [f for f in eager if "manylinux" in f.filename]
    assert [f.filename for f in page.dists(linux)] == [LINUX, YANKED]
    assert set(asked) == {n for n in page.names if n is not None}  # every listed name is judged
    assert page.dists() == eager and page.dists(lambda name: False) == []
    assert page.dists(linux) == [f for f in eager if "manylinux" in f.filename]  # asking again: the same
    # count() judges names only: the linux_x86_64 entry has a plausible name but no URL.
    assert page.count("numpy") == 5 and page.count("scipy") == 0
    assert [f.source for f in page.dists(linux)] == ["s", "s"]


def test_client_filters_by_name_and_keeps_decoded_pages(index_server, tmp_path: Path) -> None:
    for version in ("1.0", "2.0"):
        build_wheel(tmp_path / "w", "pkg", version)
    server = index_server(tmp_path / "w")
    client = IndexClient(IndexConfig(server.url), _session(), cache_dir=tmp_path / "pages")
    wanted = client.files("pkg", lambda name: "-2.0-" in name)
    assert [f.filename for f in wanted] == ["pkg-2.0-py3-none-any.whl"]
    assert [f.filename for f in client.files("pkg")] == ["pkg-1.0-py3-none-any.whl",
                                                          "pkg-2.0-py3-none-any.whl"]
    assert server.count("GET", "/simple/pkg/") == 1  # one read per run, whatever is asked of it


@pytest.mark.parametrize("mode", ["json", "html"])
def test_retained_pages_keep_the_usable_files_and_read_again_for_the_rest(
        index_server, tmp_path: Path, mode: str) -> None:
    for version in ("1.0", "2.0"):
        build_wheel(tmp_path / "w", "pkg", version)
    build_wheel(tmp_path / "w", "pkg", "2.0", tag="cp311-cp311-win_amd64")
    server = index_server(tmp_path / "w", mode=mode)
    client = IndexClient(IndexConfig(server.url), _session())
    client.retain(wheels_for([parse_target("linux-x86_64:3.11")]))
    fits = client.files("pkg", lambda name: name.endswith("-any.whl"))
    assert [f.filename for f in fits] == ["pkg-1.0-py3-none-any.whl", "pkg-2.0-py3-none-any.whl"]
    seen: list[str] = []
    assert client.files("pkg", lambda name: seen.append(name) or False) == []
    assert len(seen) == 3  # every name stays listed (what the rules read)
    assert server.count("GET", "/simple/pkg/") == 1
    # A file no target can use was not kept: asking for it reads the page again, whole.
    (win,) = client.files("pkg", lambda name: "win_amd64" in name)
    assert win.filename == "pkg-2.0-cp311-cp311-win_amd64.whl" and win.url == server.file_url(win.filename)
    assert len(client.files("pkg")) == 3 and server.count("GET", "/simple/pkg/") == 3
    assert client.files("pkg", lambda name: name.endswith("-any.whl")) == fits
    assert server.count("GET", "/simple/pkg/") == 3  # the kept entries still answer the rest


@pytest.mark.parametrize("mode", ["json", "html"])
def test_files_named_is_the_scan_by_name(index_server, tmp_path: Path, mode: str) -> None:
    for version in ("1.0", "2.0"):
        build_wheel(tmp_path / "w", "pkg", version)
    build_wheel(tmp_path / "w", "pkg", "2.0", tag="cp311-cp311-win_amd64")
    build_wheel(tmp_path / "w", "other", "1.0")
    server = index_server(tmp_path / "w", mode=mode)
    client = IndexClient(IndexConfig(server.url), _session())
    client.retain(wheels_for([parse_target("linux-x86_64:3.11")]))
    for project, filename in (("pkg", "pkg-2.0-py3-none-any.whl"), ("pkg", "pkg-3.0-py3-none-any.whl"),
                              ("pkg", "other-1.0-py3-none-any.whl"), ("pkg", "pkg-2.0.tar.gz.asc"),
                              ("pkg", "pkg-2.0-cp311-cp311-win_amd64.whl")):
        named = client.files_named(project, filename)
        assert named == client.files(project, lambda name, want=filename: name == want), filename
    assert [f.filename for f in client.files_named("pkg", "pkg-2.0-py3-none-any.whl")] == [
        "pkg-2.0-py3-none-any.whl"]
    # The windows wheel fits no target, so its entry was not kept: asked for by name,
    # it comes from the page read again whole, as with a scan.
    (win,) = client.files_named("pkg", "pkg-2.0-cp311-cp311-win_amd64.whl")
    assert win.url == server.file_url(win.filename)


def test_pages_without_validators_are_read_again_and_not_stored(index_server, tmp_path: Path) -> None:
    build_wheel(tmp_path / "w", "pkg", "1.0")
    server = index_server(tmp_path / "w")
    cache = tmp_path / "pages"
    for _run in range(2):
        files = IndexClient(IndexConfig(server.url), _session(), cache_dir=cache).files("pkg")
        assert [f.filename for f in files] == ["pkg-1.0-py3-none-any.whl"]
    # The loopback index sends neither a lifetime nor validators: a stored copy could never
    # be used without reading the page again, so none is written.
    assert server.count("GET", "/simple/pkg/") == 2
    CACHE_WRITER.flush()  # cache files are written on a thread of their own: wait before looking
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_errors_are_not_cached(index_server, tmp_path: Path) -> None:
    build_wheel(tmp_path / "w", "pkg", "1.0")
    server = index_server(tmp_path / "w", fail={"/simple/pkg/": 99})
    with pytest.raises(IndexUnreachableError, match="HTTP 500"):
        IndexClient(IndexConfig(server.url), make_session(retries=0), cache_dir=tmp_path / "c").files("pkg")
    CACHE_WRITER.flush()
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file()]
    server.fail = {}
    assert len(IndexClient(IndexConfig(server.url), _session(), cache_dir=tmp_path / "c").files("pkg")) == 1


def test_unwritable_cache_only_costs_speed(index_server, tmp_path: Path) -> None:
    build_wheel(tmp_path / "w", "pkg", "1.0")
    server = index_server(tmp_path / "w")
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    files = IndexClient(IndexConfig(server.url), _session(), cache_dir=blocked / "pages").files("pkg")
    assert [f.filename for f in files] == ["pkg-1.0-py3-none-any.whl"]


def test_name_and_version_from_file_names_alone() -> None:
    assert name_and_version("Demo.Pkg-1.0-1-py3-none-any.whl") == ("demo-pkg", Version("1.0"))
    assert name_and_version("demo_pkg-2.0rc1.tar.gz") == ("demo-pkg", Version("2.0rc1"))
    assert name_and_version("demo-pkg-0.9.zip") == ("demo-pkg", Version("0.9"))
    assert name_and_version("not a wheel.whl") is None and name_and_version("garbage") is None
    for f in parse_json_page((PAGES / "numpy.json").read_bytes(), "https://mirror.example/simple/numpy/"):
        assert name_and_version(f.filename) == (f.name, f.version)
