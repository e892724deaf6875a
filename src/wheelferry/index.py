"""Package indexes: PEP 503/691 page parsing (pure) and a client merging indexes and find-links."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import requests
from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from wheelferry.config import IndexConfig
from wheelferry.errors import IndexUnreachableError
from wheelferry.http import describe_failure, http_status_text
from wheelferry.urls import redact_url, strip_credentials

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
# PEP 691: prefer JSON, accept either HTML flavour from older servers.
ACCEPT = f"{JSON_V1}, {HTML_V1};q=0.2, text/html;q=0.01"
Warn = Callable[[str], None]
# PEP 714 renamed the key; servers still send the PEP 691 spelling (some with a "data-" prefix).
_JSON_METADATA_KEYS = ("core-metadata", "dist-info-metadata", "data-dist-info-metadata")


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

    @cached_property
    def _parsed(self) -> tuple[NormalizedName, Version, frozenset[Tag]]:
        if self.is_wheel:
            name, version, _build, tags = parse_wheel_filename(self.filename)
            return name, version, tags
        name, version = parse_sdist_filename(self.filename)
        return name, version, frozenset()

    @property
    def name(self) -> NormalizedName:
        """The canonical project name from the file name."""
        return self._parsed[0]

    @property
    def version(self) -> Version:
        """The version from the file name."""
        return self._parsed[1]

    @property
    def tags(self) -> frozenset[Tag]:
        """The wheel's compatibility tags (PEP 425); empty for an sdist."""
        return self._parsed[2]

    @property
    def sha256(self) -> str | None:
        """The advertised sha256 hex digest, if any."""
        return self.hashes.get("sha256")


def _parses(filename: str) -> bool:
    try:
        if filename.endswith(".whl"):
            parse_wheel_filename(filename)
        elif filename.endswith((".tar.gz", ".zip")):
            parse_sdist_filename(filename)
        else:
            return False
    except (InvalidWheelFilename, InvalidSdistFilename):
        return False
    return True


def _hashes(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        return {}
    out = {}
    for k, v in raw.items():
        if isinstance(k, str) and isinstance(v, str) and v and all(c in "0123456789abcdefABCDEF" for c in v):
            out[k.lower()] = v.lower()
    return out


def _fragment_hashes(url: str) -> tuple[str, dict[str, str]]:
    """Split ``url#sha256=...`` (PEP 503) into the bare URL and its hash."""
    bare, frag = urldefrag(url)
    name, sep, value = frag.partition("=")
    return bare, (_hashes({name: value}) if sep else {})


def _core_metadata(value: Any) -> Mapping[str, str] | bool:
    """PEP 691/714 JSON value: a bool or a mapping of hashes; an empty mapping means available."""
    if isinstance(value, Mapping):
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


def parse_json_page(content: bytes, page_url: str) -> list[DistFile]:
    """Parse a PEP 691 JSON project page (api-version 1.x); malformed entries are skipped."""
    try:
        doc = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexUnreachableError(f"{redact_url(page_url)} is not a valid JSON index page: {exc}",
                                    hint="check the index URL points at a PEP 691 simple index")
    if not isinstance(doc, dict):
        raise IndexUnreachableError(f"{redact_url(page_url)} is not a JSON index page")
    version = str((doc.get("meta") or {}).get("api-version", "1.0"))
    if version.split(".")[0] != "1":
        # PEP 691: a client must not guess at an unknown major version.
        raise IndexUnreachableError(f"{redact_url(page_url)} speaks simple API {version}; "
                                    "wheelferry understands 1.x",
                                    hint="point --index-url at a PEP 691 v1 index")
    base = strip_credentials(page_url)
    out = []
    for entry in doc.get("files") or ():
        try:
            bare, frag = _fragment_hashes(urljoin(base, entry["url"]))
            filename = entry.get("filename") or _file_name(bare)
            if not isinstance(filename, str) or not _parses(filename):
                continue
            yanked = entry.get("yanked", False)
            rp = entry.get("requires-python")
            size = entry.get("size")
            upload = entry.get("upload-time")
            meta = next((entry[k] for k in _JSON_METADATA_KEYS if k in entry), False)
            out.append(DistFile(
                filename=filename, url=strip_credentials(bare),
                hashes={**frag, **_hashes(entry.get("hashes"))},
                requires_python=rp.strip() or None if isinstance(rp, str) else None,
                yanked=(yanked if isinstance(yanked, str) else "") if yanked else None,
                core_metadata=_core_metadata(meta),
                size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                upload_time=upload if isinstance(upload, str) else None,
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


def parse_html_page(content: bytes, page_url: str) -> list[DistFile]:
    """Parse a PEP 503 HTML page with PEP 592 yanks and PEP 658/714 metadata attributes."""
    parser = _LinkParser()
    parser.feed(content.decode("utf-8", errors="replace"))
    parser.close()
    base = strip_credentials(page_url)
    if parser.base:
        base = urljoin(base, parser.base)
    out = []
    for attrs in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        bare, hashes = _fragment_hashes(urljoin(base, href.strip()))
        filename = _file_name(bare)
        if not _parses(filename):
            continue
        # HTMLParser has already unescaped attribute values (PEP 503: "&gt;=3.8" is ">=3.8").
        rp = attrs.get("data-requires-python")
        meta = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        out.append(DistFile(
            filename=filename, url=strip_credentials(bare), hashes=hashes,
            requires_python=rp.strip() or None if rp else None,
            yanked=attrs["data-yanked"] or "" if "data-yanked" in attrs else None,
            core_metadata=_attr_metadata(meta),
        ))
    return out


def _local_path(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


class IndexClient:
    """Every configured index and find-links location, asked per project, memoised."""

    def __init__(self, config: IndexConfig, session: requests.Session, *,
                 warn: Warn = lambda _msg: None, jobs: int = 8) -> None:
        self.config = config
        self.session = session
        self.warn = warn
        self.jobs = jobs
        self._lock = threading.Lock()
        self._project_locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, list[DistFile]] = {}
        self._link_pages: dict[str, list[DistFile]] = {}
        self._local_hashes: dict[tuple[str, float, int], str] = {}

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
                    return self._keep(parse(path.read_bytes(), (root / page).as_uri()), name, source)
            if not _local_path(base).is_dir():
                raise IndexUnreachableError(f"index {redact_url(base)} is not a directory",
                                            hint="check --index-url / PIP_INDEX_URL")
            return []
        page_url = f"{base}{name}/"
        response = self._get(page_url, f"index {redact_url(source)}")
        if response is None:
            return []
        return self._keep(self._parse_response(response), name, source)

    def _from_find_links(self, location: str, name: NormalizedName) -> list[DistFile]:
        source = strip_credentials(location)
        parts = urlsplit(source)
        if parts.scheme in ("http", "https"):
            with self._lock:
                cached = self._link_pages.get(source)
            if cached is None:
                response = self._get(source, f"find-links page {redact_url(source)}")
                cached = [] if response is None else self._parse_response(response)
                with self._lock:
                    self._link_pages[source] = cached
            return self._keep(cached, name, source)
        path = _local_path(source) if parts.scheme == "file" else Path(source)
        if path.is_file():
            return self._keep(parse_html_page(path.read_bytes(), path.as_uri()), name, source)
        if not path.is_dir():
            raise IndexUnreachableError(f"find-links location {redact_url(source)} does not exist",
                                        hint="check --find-links / PIP_FIND_LINKS")
        out = []
        for entry in sorted(path.iterdir()):
            if not entry.is_file() or not _parses(entry.name):
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
    def _keep(found: list[DistFile], name: NormalizedName, source: str) -> list[DistFile]:
        """Only this project's files, each labelled with the source it came from."""
        out = []
        for f in found:
            try:
                if f.name != name:
                    continue
            except (InvalidWheelFilename, InvalidSdistFilename):
                continue
            out.append(DistFile(f.filename, f.url, f.hashes, f.requires_python, f.yanked,
                                f.core_metadata, f.size, f.upload_time, source))
        return out

    def _get(self, url: str, what: str) -> requests.Response | None:
        """GET a page; None for 404 (the project is not there); errors name the redacted URL."""
        try:
            response = self.session.get(url, headers={"Accept": ACCEPT})
        except requests.RequestException as exc:
            raise IndexUnreachableError(f"could not read {what}: {describe_failure(exc)}",
                                        hint="check the URL, your network and proxy settings") from None
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise IndexUnreachableError(
                f"could not read {what} ({redact_url(url)}): {http_status_text(response)}",
                hint="check the URL and credentials, or retry later")
        return response

    @staticmethod
    def _parse_response(response: requests.Response) -> list[DistFile]:
        ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        page_url = strip_credentials(response.url)
        if ctype == JSON_V1 or (ctype.endswith("json") and response.content.lstrip()[:1] == b"{"):
            return parse_json_page(response.content, page_url)
        return parse_html_page(response.content, page_url)
