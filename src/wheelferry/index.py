"""Package indexes: PEP 503/691 page parsing (pure) and a client merging indexes and find-links."""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urljoin, urlsplit

import requests
from packaging.tags import Tag
from packaging.utils import (
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from wheelferry.config import IndexConfig
from wheelferry.errors import IndexUnreachableError
from wheelferry.http import Page, PageCache, describe_failure, write_atomic
from wheelferry.urls import redact_url, strip_credentials

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
# PEP 691: prefer JSON, accept either HTML flavour from older servers.
ACCEPT = f"{JSON_V1}, {HTML_V1};q=0.2, text/html;q=0.01"
Warn = Callable[[str], None]
# marshal's format belongs to one Python version: the parsed-page cache is keyed on it.
_PARSED_FORMAT = f"wheelferry-page-1/py{sys.version_info[0]}.{sys.version_info[1]}/m{marshal.version}"


@dataclass(frozen=True)
class DistFile:
    """One file an index offers for a project (PEP 503/691 fields, credential-free URL)."""

    filename: str
    url: str
    hashes: Mapping[str, str] = field(default_factory=dict, hash=False)
    requires_python: str | None = None
    yanked: str | None = None  # PEP 592: None = not yanked, "" = yanked with no reason
    core_metadata: Mapping[str, str] | bool = field(default=False, hash=False)  # PEP 658/714
    size: int | None = None
    upload_time: str | None = None
    source: str = ""

    @property
    def is_wheel(self) -> bool:
        """True for a binary wheel (the only kind wheelferry ever installs)."""
        return self.filename.endswith(".whl")

    @property
    def name(self) -> NormalizedName:
        """The canonical project name from the file name."""
        return _canonical(_name_part(self.filename))

    @property
    def version(self) -> Version:
        """The version from the file name (InvalidVersion when it is not PEP 440)."""
        if self.filename.endswith(".whl"):
            parts = self.filename.split("-", 2)
            return _version(parts[1] if len(parts) > 1 else "")
        return _version(_sdist_stem(self.filename).rpartition("-")[2])

    @cached_property
    def tags(self) -> frozenset[Tag]:
        """The wheel's compatibility tags (PEP 425); empty for an sdist."""
        return parse_wheel_filename(self.filename)[3] if self.is_wheel else frozenset()

    @property
    def sha256(self) -> str | None:
        """The advertised sha256 hex digest, if any."""
        return self.hashes.get("sha256")


def _sdist_stem(filename: str) -> str:
    return filename[:-7] if filename.endswith(".tar.gz") else filename.rsplit(".", 1)[0]


def _name_part(filename: str) -> str:
    # PEP 427: a wheel's name component has "-" escaped, so it ends at the first "-";
    # an sdist stem ends at the last "-" (as packaging.utils.parse_sdist_filename splits it).
    if filename.endswith(".whl"):
        return filename.partition("-")[0]
    return _sdist_stem(filename).rpartition("-")[0]


@lru_cache(maxsize=8192)
def _canonical(name: str) -> NormalizedName:
    return canonicalize_name(name)


@lru_cache(maxsize=8192)
def _version_or_none(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _version(text: str) -> Version:
    version = _version_or_none(text)
    if version is None:
        raise InvalidVersion(f"invalid version: {text!r}")
    return version


def _dist(filename: str, url: str, hashes: Mapping[str, str], requires_python: str | None,
          yanked: str | None, core_metadata: Mapping[str, str] | bool, size: int | None,
          upload_time: str | None, source: str) -> DistFile:
    """A DistFile built without the frozen __init__ (pages hold tens of thousands of files)."""
    d = object.__new__(DistFile)
    object.__setattr__(d, "__dict__", {
        "filename": filename, "url": url, "hashes": hashes, "requires_python": requires_python,
        "yanked": yanked, "core_metadata": core_metadata, "size": size,
        "upload_time": upload_time, "source": source})
    return d


def _plausible(filename: str) -> bool:
    """A wheel or sdist name with a PEP 440 version; tags are judged later, per target."""
    if filename.endswith(".whl"):
        head = filename.rsplit("-", 3)  # PEP 427: name-ver[-build]-py-abi-plat.whl
        return len(head) == 4 and _wheel_head_ok(head[0])
    if filename.endswith(".tar.gz"):
        stem = filename[:-7]
    elif filename.endswith(".zip"):
        stem = filename[:-4]
    else:
        return False
    name, sep, version = stem.rpartition("-")
    return bool(sep and name) and _version_or_none(version) is not None


@lru_cache(maxsize=8192)
def _wheel_head_ok(head: str) -> bool:
    """``name-version[-build]`` of a wheel, checked as packaging.utils.parse_wheel_filename does."""
    parts = head.split("-")
    if not 2 <= len(parts) <= 3 or not _WHEEL_NAME.fullmatch(parts[0]):
        return False
    if len(parts) == 3 and not parts[2][:1].isdigit():
        return False
    return _version_or_none(parts[1]) is not None


_HEX = re.compile(r"[0-9a-fA-F]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_WHEEL_NAME = re.compile(r"[\w\d._]*", re.UNICODE)  # as packaging.utils.parse_wheel_filename


def _hashes(raw: Any) -> dict[str, str]:
    if type(raw) is dict and len(raw) == 1:  # the usual {"sha256": "<lowercase hex>"}
        value = raw.get("sha256")
        if type(value) is str and _SHA256.fullmatch(value):
            return {"sha256": value}
    if not isinstance(raw, dict):
        return {}
    return {k.lower(): v.lower() for k, v in raw.items()
            if type(k) is str and type(v) is str and _HEX.fullmatch(v)}


def _fragment_hashes(url: str) -> tuple[str, dict[str, str]]:
    """Split ``url#sha256=...`` (PEP 503) into the bare URL and its hash."""
    bare, _hash, frag = url.partition("#")
    name, sep, value = frag.partition("=")
    return bare, (_hashes({name: value}) if sep else {})


def _core_metadata(value: Any) -> Mapping[str, str] | bool:
    """PEP 691/714 JSON value: a bool or a mapping of hashes; an empty mapping means available."""
    if isinstance(value, dict):
        return _hashes(value) or True
    return value is True


def _attr_metadata(value: str | None) -> Mapping[str, str] | bool:
    """PEP 658 HTML attribute: absent, ``true``, or ``<hashname>=<hexdigest>``."""
    if value is None:
        return False
    name, sep, digest = value.partition("=")
    return (_hashes({name: digest}) or True) if sep else True


def _file_name(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


class _Joiner:
    """urljoin against one page URL, with a cheap path for the plain references pages hold."""

    def __init__(self, base: str) -> None:
        self.base = base
        parts = urlsplit(base)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.folder = self.origin + parts.path[: parts.path.rfind("/") + 1] if parts.path else \
            self.origin + "/"
        self.plain = parts.scheme in ("http", "https", "file")

    def __call__(self, ref: str) -> str:
        if ref.startswith(("https://", "http://")):
            out = ref  # urljoin leaves an absolute http(s) URL as written
        elif not self.plain or not ref or ref.startswith((".", "?", "#", "//")) or \
                ":" in ref.split("/", 1)[0]:
            return strip_credentials(urljoin(self.base, ref))
        elif ref.startswith("/"):
            out = self.origin + ref
        else:
            out = self.folder + ref
        # Dot segments (RFC 3986 5.2.4), empty segments (which urljoin drops), credentials.
        if "/." in out or "@" in out or "//" in out[len(self.origin):]:
            return strip_credentials(urljoin(self.base, ref))
        return out


def parse_json_page(content: bytes, page_url: str, *, source: str = "") -> list[DistFile]:
    """Parse a PEP 691 JSON project page (api-version 1.x); malformed entries are skipped."""
    try:
        doc = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexUnreachableError(f"{redact_url(page_url)} is not a valid JSON index page: {exc}",
                                    hint="check the index URL points at a PEP 691 simple index") from None
    if not isinstance(doc, dict):
        raise IndexUnreachableError(f"{redact_url(page_url)} is not a JSON index page")
    version = str((doc.get("meta") or {}).get("api-version", "1.0"))
    if version.split(".")[0] != "1":
        # PEP 691: a client must not guess at an unknown major version.
        raise IndexUnreachableError(f"{redact_url(page_url)} speaks simple API {version}; "
                                    "wheelferry understands 1.x",
                                    hint="point --index-url at a PEP 691 v1 index")
    join = _Joiner(strip_credentials(page_url))
    out = []
    for entry in doc.get("files") or ():
        try:
            url = join(entry["url"])
            bare, frag = _fragment_hashes(url) if "#" in url else (url, None)
            filename = entry.get("filename") or _file_name(bare)
            if not isinstance(filename, str) or not _plausible(filename):
                continue
            yanked = entry.get("yanked", False)
            rp = entry.get("requires-python")
            size = entry.get("size")
            upload = entry.get("upload-time")
            # PEP 714 renamed the key; servers still send the PEP 691 spelling (or "data-").
            meta = entry["core-metadata"] if "core-metadata" in entry else \
                entry.get("dist-info-metadata", entry.get("data-dist-info-metadata", False))
            hashes = _hashes(entry.get("hashes"))
            out.append(_dist(
                filename, bare, {**frag, **hashes} if frag else hashes,
                rp.strip() or None if isinstance(rp, str) else None,
                (yanked if isinstance(yanked, str) else "") if yanked else None,
                _core_metadata(meta),
                size if isinstance(size, int) and not isinstance(size, bool) else None,
                upload if isinstance(upload, str) else None, source,
            ))
        except (KeyError, TypeError, AttributeError, ValueError):
            continue
    return out


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "a":
            self.anchors.append(dict(attrs))


def parse_html_page(content: bytes, page_url: str, *, source: str = "") -> list[DistFile]:
    """Parse a PEP 503 HTML page with PEP 592 yanks and PEP 658/714 metadata attributes."""
    parser = _LinkParser()
    parser.feed(content.decode("utf-8", errors="replace"))
    parser.close()
    base = strip_credentials(page_url)
    if parser.base:
        base = urljoin(base, parser.base)
    join = _Joiner(base)
    out = []
    for attrs in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        bare, hashes = _fragment_hashes(join(href.strip()))
        filename = _file_name(bare)
        if not _plausible(filename):
            continue
        # HTMLParser has already unescaped attribute values (PEP 503: "&gt;=3.8" is ">=3.8").
        rp = attrs.get("data-requires-python")
        meta = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        out.append(_dist(filename, bare, hashes, rp.strip() or None if rp else None,
                         attrs["data-yanked"] or "" if "data-yanked" in attrs else None,
                         _attr_metadata(meta), None, None, source))
    return out


def _local_path(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


class IndexClient:
    """Every configured index and find-links location, asked per project, memoised.

    With *cache_dir*, remote pages are kept under HTTP caching rules and each
    page body's parsed files beside it, so an unchanged page is not parsed again.
    """

    def __init__(self, config: IndexConfig, session: requests.Session, *,
                 warn: Warn = lambda _msg: None, jobs: int = 8, cache_dir: Path | None = None) -> None:
        self.config = config
        self.session = session
        self.warn = warn
        self.jobs = jobs
        self._lock = threading.Lock()
        self._project_locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, list[DistFile]] = {}
        self._link_pages: dict[str, list[DistFile]] = {}
        self._local_hashes: dict[tuple[str, float, int], str] = {}
        self.pages = PageCache(cache_dir)

    def files(self, project: str) -> list[DistFile]:
        """Every file any source offers for *project*, in source order (indexes, then find-links)."""
        name = canonicalize_name(project)
        with self._lock:
            if name in self._cache:
                return list(self._cache[name])
            plock = self._project_locks.setdefault(name, threading.Lock())
        with plock:
            with self._lock:
                if name in self._cache:
                    return list(self._cache[name])
            found = self._collect(name)
            with self._lock:
                self._cache[name] = found
        return list(found)

    def prefetch(self, projects: Iterable[str]) -> None:
        """Read the pages of many projects concurrently (the first failure is raised)."""
        names = list(dict.fromkeys(canonicalize_name(p) for p in projects))
        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            for _ in pool.map(self.files, names):
                pass

    def _collect(self, name: NormalizedName) -> list[DistFile]:
        per_source: list[tuple[str, list[DistFile]]] = []
        for url in self.config.index_urls():
            per_source.append((strip_credentials(url), self._from_index(url, name)))
        for loc in self.config.find_links:
            per_source.append((strip_credentials(loc), self._from_find_links(loc, name)))
        serving = [(src, found) for src, found in per_source if found]
        if len(serving) > 1:
            listed = "; ".join(f"{redact_url(src)} ({len(found)} files)" for src, found in serving)
            self.warn(f"{name} is offered by more than one source: {listed}. Files from all of "
                      "them are candidates, so a look-alike upload on one can shadow the other "
                      "(dependency confusion); keep only the index you trust for it")
        return [f for _src, found in serving for f in found]

    # -- one source ---------------------------------------------------------

    def _from_index(self, index_url: str, name: NormalizedName) -> list[DistFile]:
        source = strip_credentials(index_url)
        base = source.rstrip("/") + "/"
        if urlsplit(base).scheme == "file":
            root = _local_path(base) / name
            for page, parse in (("index.json", parse_json_page), ("index.html", parse_html_page)):
                path = root / page
                if path.is_file():
                    return self._keep(parse(path.read_bytes(), path.as_uri(), source=source), name)
            if not _local_path(base).is_dir():
                raise IndexUnreachableError(f"index {redact_url(base)} is not a directory",
                                            hint="check --index-url / PIP_INDEX_URL")
            return []
        return self._keep(self._page(f"{base}{name}/", f"index {redact_url(source)}", source), name)

    def _from_find_links(self, location: str, name: NormalizedName) -> list[DistFile]:
        source = strip_credentials(location)
        parts = urlsplit(source)
        if parts.scheme in ("http", "https"):
            with self._lock:
                cached = self._link_pages.get(source)
            if cached is None:
                cached = self._page(source, f"find-links page {redact_url(source)}", source)
                with self._lock:
                    self._link_pages[source] = cached
            return self._keep(cached, name)
        path = _local_path(source) if parts.scheme == "file" else Path(source)
        if path.is_file():
            return self._keep(parse_html_page(path.read_bytes(), path.as_uri(), source=source), name)
        if not path.is_dir():
            raise IndexUnreachableError(f"find-links location {redact_url(source)} does not exist",
                                        hint="check --find-links / PIP_FIND_LINKS")
        out = []
        for entry in sorted(path.iterdir()):
            if not entry.is_file() or not _plausible(entry.name):
                continue
            dist = DistFile(entry.name, entry.resolve().as_uri())
            if dist.name != name:
                continue
            sibling = entry.with_name(entry.name + ".metadata")
            st = entry.stat()
            out.append(DistFile(
                filename=entry.name, url=entry.resolve().as_uri(),
                hashes={"sha256": self._local_sha256(entry, st.st_mtime, st.st_size)},
                core_metadata=sibling.is_file(), size=st.st_size,
                source=source,
            ))
        return out

    def _local_sha256(self, path: Path, mtime: float, size: int) -> str:
        key = (str(path), mtime, size)
        with self._lock:
            if key in self._local_hashes:
                return self._local_hashes[key]
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        with self._lock:
            self._local_hashes[key] = h.hexdigest()
        return h.hexdigest()

    @staticmethod
    def _keep(found: list[DistFile], name: NormalizedName) -> list[DistFile]:
        """Only this project's files (a find-links page lists many projects)."""
        kept = [f for f in found if _canonical(_name_part(f.filename)) == name]
        return found if len(kept) == len(found) else kept

    def _page(self, url: str, what: str, source: str) -> list[DistFile]:
        """The files a remote page lists ([] for 404), parsed once per page body and cached."""
        try:
            page = self.pages.fetch(self.session, url, ACCEPT)
            parsed = self._load_parsed(page, source)
            if parsed is not None:
                return parsed
            body = page.body()
            if body is None:  # the stored body changed under us: read the page afresh
                page = self.pages.fetch(self.session, url, ACCEPT, use_cache=False)
                body = page.body()
        except requests.RequestException as exc:
            raise IndexUnreachableError(f"could not read {what}: {describe_failure(exc)}",
                                        hint="check the URL, your network and proxy settings") from None
        if page.status == 404:
            return []
        if page.status != 200 or body is None:
            raise IndexUnreachableError(f"could not read {what} ({redact_url(url)}): {page.reason}",
                                        hint="check the URL and credentials, or retry later")
        ctype = page.content_type.split(";")[0].strip().lower()
        if ctype == JSON_V1 or (ctype.endswith("json") and body.lstrip()[:1] == b"{"):
            found = parse_json_page(body, page.url, source=source)
        else:
            found = parse_html_page(body, page.url, source=source)
        self._store_parsed(page, found)
        return found

    def _parsed_path(self, page: Page) -> Path | None:
        # One file per page: its header names the body it was parsed from, a new body replaces it.
        return self.pages.sidecar(self.pages.key(page.url, ACCEPT), "parsed")

    def _load_parsed(self, page: Page, source: str) -> list[DistFile] | None:
        path = self._parsed_path(page) if page.status == 200 and page.digest else None
        if path is None:
            return None
        try:
            header, rows = marshal.loads(path.read_bytes())
            if header != (_PARSED_FORMAT, page.digest, page.url):
                return None
            make: Callable[..., DistFile] = _dist  # rows are the eight stored fields
            return [make(*row, source) for row in rows]
        except (OSError, EOFError, ValueError, TypeError):
            return None

    def _store_parsed(self, page: Page, found: list[DistFile]) -> None:
        path = self._parsed_path(page)
        if path is None:
            return
        rows = [(f.filename, f.url, dict(f.hashes), f.requires_python, f.yanked,
                 f.core_metadata if isinstance(f.core_metadata, bool) else dict(f.core_metadata),
                 f.size, f.upload_time) for f in found]
        with contextlib.suppress(OSError):
            write_atomic(path, marshal.dumps(((_PARSED_FORMAT, page.digest, page.url), rows)))
