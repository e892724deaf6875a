"""Package index pages, parsed without I/O: PEP 503 HTML and PEP 691 JSON, bytes in.

Each parser turns one project page into ``DistFile`` values with credential-free
URLs, PEP 592 yanks and PEP 658/714 metadata flags; anything that is not a
plausible wheel or sdist name is skipped rather than failing the whole page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from html.parser import HTMLParser
from itertools import compress
from typing import Any, Callable, Union
from urllib.parse import unquote, urljoin, urlsplit

import msgspec
from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from wheelferry.errors import IndexUnreachableError
from wheelferry.files import SHA256_HEX
from wheelferry.jsontypes import JSONObject, JSONValue
from wheelferry.urls import redact_url, strip_credentials


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
def version_or_none(text: str) -> Version | None:
    """*text* as a PEP 440 version, or None when it is not one (memoised: pages repeat them)."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _version(text: str) -> Version:
    version = version_or_none(text)
    if version is None:
        raise InvalidVersion(f"invalid version: {text!r}")
    return version


def name_and_version(filename: str) -> tuple[NormalizedName, Version] | None:
    """The canonical project name and version a wheel or sdist file name gives; None if implausible."""
    if not plausible_filename(filename):
        return None
    if filename.endswith(".whl"):
        version = version_or_none(filename.split("-", 2)[1])
    else:
        version = version_or_none(_sdist_stem(filename).rpartition("-")[2])
    return None if version is None else (_canonical(_name_part(filename)), version)


def make_dist(filename: str, url: str, hashes: Mapping[str, str], requires_python: str | None,
          yanked: str | None, core_metadata: Mapping[str, str] | bool, size: int | None,
          upload_time: str | None, source: str) -> DistFile:
    """A DistFile built without the frozen __init__ (pages hold tens of thousands of files)."""
    d = object.__new__(DistFile)
    object.__setattr__(d, "__dict__", {
        "filename": filename, "url": url, "hashes": hashes, "requires_python": requires_python,
        "yanked": yanked, "core_metadata": core_metadata, "size": size,
        "upload_time": upload_time, "source": source})
    return d


def plausible_filename(filename: str) -> bool:
    """A wheel or sdist name with a PEP 440 version; tags are judged later, per target.

    Split here rather than by packaging.utils.parse_wheel_filename: a page lists tens of
    thousands of files and that parser builds every file's tag set, which only the few
    files a target can use need (the finder ranks those).
    """
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
    return bool(sep and name) and version_or_none(version) is not None


@lru_cache(maxsize=8192)
def _wheel_head_ok(head: str) -> bool:
    """``name-version[-build]`` of a wheel, checked as packaging.utils.parse_wheel_filename does."""
    parts = head.split("-")
    if not 2 <= len(parts) <= 3 or not _WHEEL_NAME.fullmatch(parts[0]):
        return False
    if len(parts) == 3 and not parts[2][:1].isdigit():
        return False
    return version_or_none(parts[1]) is not None


_HEX = re.compile(r"[0-9a-fA-F]+")
_WHEEL_NAME = re.compile(r"[\w\d._]*", re.UNICODE)  # as packaging.utils.parse_wheel_filename


def _hashes(raw: JSONValue) -> dict[str, str]:
    if type(raw) is dict and len(raw) == 1:  # the usual {"sha256": "<lowercase hex>"}
        value = raw.get("sha256")
        if type(value) is str and SHA256_HEX.fullmatch(value):
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


def _core_metadata(value: JSONValue) -> Mapping[str, str] | bool:
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


class DroppedFiles(LookupError):
    """A caller asked for files whose entries the page did not keep (see ``retain``)."""


class PageFiles:
    """One page's files, named up front; DistFile objects are made only for the names asked for.

    Project pages list every file of every release (tens of thousands for some
    projects) while a resolution needs the few wheels that fit its target, so the
    costly part of parsing, one DistFile per file, waits until a caller says which
    names it wants.  Read with *retain*, a page keeps the entries of only the names
    *retain* admits (every name stays listed); asking for a dropped one raises
    DroppedFiles, and the caller reads the page again whole.
    """

    __slots__ = ("_entries", "_kept", "_make", "_retain", "names", "source")

    def __init__(self, names: list[str | None], entries: list[Any],  # Any: JSON entries or HTML anchors
                 make: Callable[[Any, str, str], DistFile | None], source: str = "",  # Any: an entry
                 retain: Callable[[str], bool] | None = None) -> None:
        self.names = names
        self.source = source
        self._make = make
        self._retain = retain
        self._kept: list[int] | None = None
        if retain is not None:
            # The decoded entries are most of a page's memory and most are never asked for.
            flags = [n is not None and retain(n) for n in names]
            entries = [e if f else None for f, e in zip(flags, entries)]
            self._kept = list(compress(range(len(flags)), flags))
        self._entries = entries

    @classmethod
    def of(cls, dists: list[DistFile], retain: Callable[[str], bool] | None = None) -> PageFiles:
        """Files that are already DistFile objects (HTML pages, local directories)."""
        return cls([d.filename for d in dists], dists, _as_is, retain=retain)

    def count(self, project: str) -> int:
        """How many plausible wheel or sdist files of *project* the page lists."""
        return sum(1 for n in self.names if n is not None and _canonical(_name_part(n)) == project
                   and plausible_filename(n))

    def dists(self, keep: Callable[[str], bool] | None = None,
              project: str | None = None) -> list[DistFile]:
        """The page's files whose name passes *keep* (all without it), in page order.

        With *project*, files named for another project are left out (a find-links
        page lists many projects).
        """
        out = []
        make, source, names, entries = self._make, self.source, self.names, self._entries
        if keep is not None and self._kept is not None and keep == self._retain:
            # The filter the page was read with (a lock's finder asks with the index's): its
            # answers are the entries kept, and the rest of the page need not be asked again.
            pairs: Iterable[tuple[str | None, Any]] = ((names[i], entries[i]) for i in self._kept)  # Any: an entry
            keep = None
        else:
            pairs = zip(names, entries)
        for name, entry in pairs:
            if name is None or (keep is not None and not keep(name)):
                continue
            if project is not None and _canonical(_name_part(name)) != project:
                continue
            if not plausible_filename(name):
                continue
            if entry is None:
                raise DroppedFiles(name)
            dist = make(entry, name, source)
            if dist is not None:
                out.append(dist)
        return out


    def named(self, filename: str, project: str) -> list[DistFile]:
        """What ``dists(lambda n: n == filename, project)`` gives, by a lookup instead of a scan.

        A lock asks for each of its wheels by name: ``list.index`` finds it at C speed
        (a scan in Python, or a dict of every name built per page, cost a TensorFlow
        lock a tenth of its main thread).
        """
        if _canonical(_name_part(filename)) != project or not plausible_filename(filename):
            return []
        names, at = self.names, 0
        out: list[DistFile] = []
        while True:
            try:
                at = names.index(filename, at)
            except ValueError:
                return out
            entry = self._entries[at]
            at += 1
            if entry is None:
                raise DroppedFiles(filename)
            dist = self._make(entry, filename, self.source)
            if dist is not None:
                out.append(dist)


def _as_is(dist: DistFile, _name: str, _source: str) -> DistFile:
    return dist


def read_json_page(content: bytes, page_url: str, *, source: str = "",
                   retain: Callable[[str], bool] | None = None) -> PageFiles:
    """Decode a PEP 691 JSON project page (api-version 1.x); its DistFiles are made on demand.

    With *retain*, only the entries of names it admits are kept (PageFiles).
    """
    try:
        # Pages run to megabytes (a TensorFlow tree reads 18 MB of them): decoded into typed
        # entries, a page costs less than half the time and memory of generic dicts.
        typed = _TYPED_PAGE.decode(content)
    except msgspec.DecodeError:
        pass  # an entry of unusual shape, or not JSON msgspec reads: read as before, key by key
    else:
        return _typed_page(typed, page_url, source, retain)
    return _generic_page(content, page_url, source, retain)


def _generic_page(content: bytes, page_url: str, source: str,
                  retain: Callable[[str], bool] | None) -> PageFiles:
    """read_json_page for any page: generic JSON values, each entry judged key by key."""
    try:
        # msgspec decodes a page about twice as fast as the json module; pages run to megabytes.
        doc = msgspec.json.decode(content)
    except msgspec.DecodeError:
        # What msgspec is stricter about than the json module (a BOM, NaN, a lone surrogate)
        # should not cost a whole page that pip would read.
        try:
            doc = json.loads(content.decode("utf-8-sig", errors="surrogatepass"))
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
    entries = doc.get("files") or []
    if not isinstance(entries, list):
        entries = []
    names: list[str | None] = [_json_filename(e, join) for e in entries]

    def make(entry: JSONObject, filename: str, source: str) -> DistFile | None:
        return _json_dist(entry, filename, join, source)

    return PageFiles(names, entries, make, source, retain)


_META_VALUE = Union[bool, dict[str, str], None, msgspec.UnsetType]


class _File(msgspec.Struct, gc=False, rename={
        "requires_python": "requires-python", "upload_time": "upload-time",
        "core_metadata": "core-metadata", "dist_info_metadata": "dist-info-metadata",
        "data_dist_info_metadata": "data-dist-info-metadata"}):
    """A PEP 691 file entry of the usual shape; any other shape fails the typed decode.

    Union, not ``X | None``: msgspec evaluates these annotations at run time, on Python 3.9 too.
    """

    filename: Union[str, None] = None  # noqa: UP007
    url: Union[str, None] = None  # noqa: UP007
    hashes: Union[dict[str, str], None] = None  # noqa: UP007
    requires_python: Union[str, None] = None  # noqa: UP007
    yanked: Union[bool, str, None] = False  # noqa: UP007
    core_metadata: _META_VALUE = msgspec.UNSET
    dist_info_metadata: _META_VALUE = msgspec.UNSET
    data_dist_info_metadata: _META_VALUE = msgspec.UNSET
    size: Union[int, None] = None  # noqa: UP007
    upload_time: Union[str, None] = None  # noqa: UP007


class _Page(msgspec.Struct, gc=False):
    meta: Union[dict[str, Any], None] = None  # noqa: UP007  # Any: api-version and whatever a server adds
    files: Union[list[_File], None] = None  # noqa: UP007


_TYPED_PAGE = msgspec.json.Decoder(_Page)


def _typed_page(doc: _Page, page_url: str, source: str,
                retain: Callable[[str], bool] | None) -> PageFiles:
    """read_json_page for a page whose entries all have the usual shape: the same DistFiles."""
    version = str((doc.meta or {}).get("api-version", "1.0"))
    if version.split(".")[0] != "1":
        raise IndexUnreachableError(f"{redact_url(page_url)} speaks simple API {version}; "
                                    "wheelferry understands 1.x",
                                    hint="point --index-url at a PEP 691 v1 index")
    join = _Joiner(strip_credentials(page_url))
    entries: list[_File | None] = list(doc.files or ())
    names: list[str | None] = [e.filename if e.filename else _typed_filename(e, join)
                               for e in doc.files or ()]

    def make(entry: _File, filename: str, source: str) -> DistFile | None:
        return _typed_dist(entry, filename, join, source)

    return PageFiles(names, entries, make, source, retain)


def _typed_filename(entry: _File, join: _Joiner) -> str | None:
    if entry.url is None:
        return None
    try:
        return _file_name(join(entry.url).partition("#")[0])
    except ValueError:
        return None


def _typed_dist(entry: _File, filename: str, join: _Joiner, source: str) -> DistFile | None:
    """What _json_dist makes of the same entry as a dict."""
    if entry.url is None:
        return None
    try:
        url = join(entry.url)
    except ValueError:
        return None
    bare, frag = _fragment_hashes(url) if "#" in url else (url, None)
    yanked, rp, size = entry.yanked, entry.requires_python, entry.size
    meta = entry.core_metadata
    if meta is msgspec.UNSET:
        meta = entry.dist_info_metadata
        if meta is msgspec.UNSET:
            meta = entry.data_dist_info_metadata
            if meta is msgspec.UNSET:
                meta = False
    hashes = _hashes(entry.hashes)
    return make_dist(
        filename, bare, {**frag, **hashes} if frag else hashes,
        rp.strip() or None if rp is not None else None,
        (yanked if isinstance(yanked, str) else "") if yanked else None,
        _core_metadata(meta),
        size, entry.upload_time, source,
    )


def _json_filename(entry: JSONValue, join: _Joiner) -> str | None:
    if type(entry) is not dict:
        return None
    name = entry.get("filename")
    if name:
        return name if type(name) is str else None
    try:
        return _file_name(join(entry["url"]).partition("#")[0])
    except (KeyError, TypeError, AttributeError, ValueError):
        return None


def _json_dist(entry: JSONObject, filename: str, join: _Joiner, source: str) -> DistFile | None:
    try:
        url = join(entry["url"])
        bare, frag = _fragment_hashes(url) if "#" in url else (url, None)
        yanked = entry.get("yanked", False)
        rp = entry.get("requires-python")
        size = entry.get("size")
        upload = entry.get("upload-time")
        # PEP 714 renamed the key; servers still send the PEP 691 spelling (or "data-").
        meta = entry["core-metadata"] if "core-metadata" in entry else \
            entry.get("dist-info-metadata", entry.get("data-dist-info-metadata", False))
        hashes = _hashes(entry.get("hashes"))
        return make_dist(
            filename, bare, {**frag, **hashes} if frag else hashes,
            rp.strip() or None if isinstance(rp, str) else None,
            (yanked if isinstance(yanked, str) else "") if yanked else None,
            _core_metadata(meta),
            size if isinstance(size, int) and not isinstance(size, bool) else None,
            upload if isinstance(upload, str) else None, source,
        )
    except (KeyError, TypeError, AttributeError, ValueError):
        return None


def parse_json_page(content: bytes, page_url: str, *, source: str = "") -> list[DistFile]:
    """Parse a PEP 691 JSON project page (api-version 1.x); malformed entries are skipped."""
    return read_json_page(content, page_url, source=source).dists()


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
        if not plausible_filename(filename):
            continue
        # HTMLParser has already unescaped attribute values (PEP 503: "&gt;=3.8" is ">=3.8").
        rp = attrs.get("data-requires-python")
        meta = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        out.append(make_dist(filename, bare, hashes, rp.strip() or None if rp else None,
                         attrs["data-yanked"] or "" if "data-yanked" in attrs else None,
                         _attr_metadata(meta), None, None, source))
    return out


def read_html_page(content: bytes, page_url: str, *, source: str = "",
                   retain: Callable[[str], bool] | None = None) -> PageFiles:
    """A PEP 503 HTML page as PageFiles (HTML is read whole: it carries no cheap file list)."""
    return PageFiles.of(parse_html_page(content, page_url, source=source), retain)


def looks_like_html(head: bytes) -> bool:
    """True when the first bytes of a "wheel" are an HTML page (a proxy's or mirror's error)."""
    # A wheel is a zip and starts with a local file header (PK\x03\x04).
    text = head[:512].lstrip().lower()
    return text.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<!--"))
