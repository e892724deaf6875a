"""A wheel's core metadata: PEP 658/714 file, else HTTP range reads of the zip, else a download."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import struct
import tempfile
import threading
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

import requests
from packaging.utils import canonicalize_name

from wheelferry.coremetadata import CoreMetadata, read_core_metadata
from wheelferry.digests import Digests, contradiction_error
from wheelferry.errors import MetadataError
from wheelferry.http import CACHE_WRITER, NET_CHUNK, describe_failure, http_status_text
from wheelferry.pages import DistFile, looks_like_html
from wheelferry.urls import redact_url

if TYPE_CHECKING:
    from wheelferry.cache import WheelCache


# One suffix read this large usually holds the whole central directory of a wheel.
TAIL_BYTES = 64 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class _RangeFile(io.RawIOBase):
    """A read-only file over a remote wheel: bytes come from cached ranges or new range reads."""

    def __init__(self, fetch: _Fetcher, url: str, size: int, tail_start: int, tail: bytes) -> None:
        self._fetch, self._url, self._size, self._pos = fetch, url, size, 0
        self._chunks: list[tuple[int, bytes]] = [(tail_start, tail)]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def ensure(self, start: int, end: int) -> None:
        """Make bytes [start, end) available with at most one range request."""
        end = min(end, self._size)
        if start >= end or any(s <= start and end <= s + len(d) for s, d in self._chunks):
            return
        self._chunks.append((start, self._fetch.range(self._url, start, end - 1)))

    def read(self, n: int = -1) -> bytes:
        end = self._size if n is None or n < 0 else min(self._size, self._pos + n)
        if end <= self._pos:
            return b""
        self.ensure(self._pos, end)
        for s, d in self._chunks:
            if s <= self._pos and end <= s + len(d):
                out = d[self._pos - s:end - s]
                self._pos = end
                return out
        raise MetadataError(f"range read of {redact_url(self._url)} came back short")

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


class _Fetcher:
    """Counted HTTP reads (tests assert how few were made)."""

    def __init__(self, session: requests.Session) -> None:
        self.session = session
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, method: str, nbytes: int = 0) -> None:
        with self._lock:
            self.stats[method] += 1
            self.stats["bytes"] += nbytes

    def add_bytes(self, nbytes: int) -> None:
        with self._lock:
            self.stats["bytes"] += nbytes

    def get(self, url: str, headers: dict[str, str] | None = None,
            stream: bool = False) -> requests.Response:
        try:
            response = self.session.get(url, headers=headers or {}, stream=stream)
        except requests.RequestException as exc:
            raise MetadataError(f"could not read {redact_url(url)}: {describe_failure(exc)}",
                                hint="check your network, or retry later") from None
        self.count("GET", 0 if stream else len(response.content))
        return response

    def range(self, url: str, first: int, last: int) -> bytes:
        response = self.get(url, {"Range": f"bytes={first}-{last}"})
        if response.status_code != 206 or len(response.content) != last - first + 1:
            raise MetadataError(f"range read of {redact_url(url)} failed: "
                                f"{http_status_text(response)}")
        return response.content


def _find_metadata_member(names: list[str], project: str) -> str:
    """The top-level ``*.dist-info/METADATA`` (PEP 427), preferring the one named for the project."""
    found = [n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
    for n in found:
        if canonicalize_name(n.split("/")[0][: -len(".dist-info")].rsplit("-", 1)[0]) == project:
            return n
    if found:
        return found[0]
    raise MetadataError(f"the wheel has no .dist-info/METADATA (members: {len(names)})")


_EOCD = struct.Struct("<4s4H2LH")  # APPNOTE 4.3.16 end of central directory record
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # 4.3.12 central directory file header
_LOCAL = struct.Struct("<4s5H3L2H")  # 4.3.7 local file header
_ZIP64 = 0xFFFFFFFF


class _Zip(Protocol):
    """What the central-directory reader needs of a zip: a remote one or a local file."""

    def seek(self, offset: int, whence: int = 0) -> int: ...
    def read(self, n: int = -1) -> bytes: ...
    def ensure(self, start: int, end: int) -> None: ...


class _LocalZip:
    """A wheel on disk, read like a remote one: every byte is already at hand."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)

    def ensure(self, start: int, end: int) -> None:
        pass


def read_wheel_metadata(path: Path, project: str) -> bytes:
    """The METADATA of the wheel at *path*: one read of the zip's tail, then the one member."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read()
            try:
                fast = _metadata_from_central_directory(_LocalZip(f), tail, project)
            except (struct.error, zlib.error, ValueError):
                fast = None
            if fast is not None:
                return fast
            f.seek(0)
            with zipfile.ZipFile(f) as zf:
                return zf.read(_find_metadata_member(zf.namelist(), project))
    except (OSError, zipfile.BadZipFile) as exc:
        raise MetadataError(f"could not read {path}: {exc}") from None


def _metadata_from_central_directory(f: _Zip, tail: bytes, project: str) -> bytes | None:
    """METADATA read straight from the zip's records; None when the plain path must decide.

    Wheels such as TensorFlow hold tens of thousands of members: scanning the
    central directory for one name costs far less than zipfile building every
    ZipInfo.  Zip64, encryption or unusual compression fall back to zipfile.
    """
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        return None
    _sig, _disk, _cd_disk, _n, total, cd_size, cd_offset, comment = _EOCD.unpack_from(tail, at)
    if at + _EOCD.size + comment != len(tail) or _ZIP64 in (cd_size, cd_offset) or total == 0xFFFF:
        return None
    f.seek(cd_offset)
    cd = f.read(cd_size)
    pos, found = 0, []
    while pos + _CENTRAL.size <= len(cd) and cd[pos:pos + 4] == b"PK\x01\x02":
        (_s, _made, _need, flags, method, _t, _d, crc, csize, _usize, name_len, extra_len,
         comment_len, _disk_start, _ia, _ea, offset) = _CENTRAL.unpack_from(cd, pos)
        raw = cd[pos + _CENTRAL.size:pos + _CENTRAL.size + name_len]
        if raw.endswith(b".dist-info/METADATA") and raw.count(b"/") == 1:
            name = raw.decode("utf-8" if flags & 0x800 else "cp437")
            found.append((name, flags, method, crc, csize, offset))
        pos += _CENTRAL.size + name_len + extra_len + comment_len
    if not found:
        return None
    wanted = _find_metadata_member([entry[0] for entry in found], project)
    name, flags, method, crc, csize, offset = next(e for e in found if e[0] == wanted)
    if flags & 1 or method not in (0, 8) or _ZIP64 in (csize, offset):
        return None
    # Local header, name, a typical extra field and the data in one range read.
    f.ensure(offset, offset + _LOCAL.size + len(name.encode()) + 1024 + csize)
    f.seek(offset)
    local = f.read(_LOCAL.size)
    if len(local) != _LOCAL.size or local[:4] != b"PK\x03\x04":
        return None
    *_head, local_name, local_extra = _LOCAL.unpack(local)
    f.seek(offset + _LOCAL.size + local_name + local_extra)
    packed = f.read(csize)
    data = zlib.decompress(packed, -15) if method == 8 else packed
    return data if zlib.crc32(data) == crc else None


@functools.lru_cache(maxsize=64)
def parsed_metadata(data: bytes) -> CoreMetadata:
    """read_core_metadata of *data*, remembered for a while: a file fetched is checked here,
    then read by the resolver."""
    return read_core_metadata(data)


def _check(data: bytes, dist: DistFile) -> bytes:
    """Core metadata must be an RFC 822-style header block naming the project."""
    meta = parsed_metadata(data)
    if not meta.name or not meta.version:
        raise MetadataError(f"metadata of {dist.filename} has no Name/Version header",
                            hint="the wheel or its .metadata file is damaged")
    return data


class MetadataSource:
    """Core metadata for wheels, with as little network traffic as the index allows.

    With *wheels* (the content-addressed wheel cache), a wheel that has to be downloaded
    whole (no PEP 658 file, no Range) is kept there, so ``build`` never fetches it again;
    ``file_facts`` gives the sha256 and size a lock records, downloading at most once.
    """

    def __init__(self, session: requests.Session, cache_dir: Path | None, *, jobs: int = 8,
                 tail_bytes: int = TAIL_BYTES, wheels: WheelCache | None = None) -> None:
        self._fetcher = _Fetcher(session)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.jobs = jobs
        self.tail_bytes = tail_bytes
        self.wheels = wheels
        self._lock = threading.Lock()
        self._facts: dict[str, tuple[str, int]] = {}  # url -> (sha256, size) of a whole download
        self._sizes: dict[str, int] = {}  # url -> size learned from Content-Range or a download
        self._url_locks: dict[str, threading.Lock] = {}

    @property
    def stats(self) -> Counter[str]:
        """Network requests made so far per method, plus ``bytes`` of body received."""
        return self._fetcher.stats

    def get(self, dist: DistFile) -> bytes:
        """The METADATA bytes of *dist* (a wheel), from cache, PEP 658 file, range reads or download."""
        if not dist.is_wheel:
            raise MetadataError(f"{dist.filename} is not a wheel; sdists are never built",
                                hint="wheelferry only uses binary wheels")
        cached = self._cache_path(dist)
        if cached is not None:
            data = CACHE_WRITER.read(cached)
            if data is not None and self._advertised_ok(dist, data):
                return data
        whole = self._cached_wheel(dist)
        if whole is not None:
            data = read_wheel_metadata(whole, dist.name)
        elif urlsplit(dist.url).scheme == "file":
            data = self._local(dist)
        else:
            with self._url_lock(dist.url):
                whole = self._cached_wheel(dist)
                data = read_wheel_metadata(whole, dist.name) if whole is not None else self._remote(dist)
        data = _check(data, dist)
        if cached is not None:
            self._store(cached, data)
        return data

    def prefetch(self, dists: Iterable[DistFile], *, progress: bool = False) -> dict[DistFile, bytes]:
        """Metadata of many wheels, fetched concurrently; the first failure is raised after all ran."""
        from tqdm import tqdm  # only a bulk prefetch draws progress; a lock need not load it

        todo = list(dict.fromkeys(dists))
        out: dict[DistFile, bytes] = {}
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool, \
                tqdm(total=len(todo), desc="metadata", unit="file", disable=not progress) as bar:
            futures = {pool.submit(self.get, d): d for d in todo}
            for fut, dist in futures.items():
                try:
                    out[dist] = fut.result()
                except MetadataError as exc:
                    errors.append(exc)
                bar.update(1)
        if errors:
            raise errors[0]
        return out

    def size_of(self, dist: DistFile) -> int | None:
        """The file's size: from the index, or learned from a Content-Range or a download."""
        if dist.size is not None:
            return dist.size
        with self._lock:
            return self._sizes.get(dist.url)

    def file_facts(self, dist: DistFile) -> tuple[str, int | None]:
        """sha256 and size of *dist* for the lock: as advertised, else from one download.

        A download checks every hash the index advertises and lands in the wheel cache.
        """
        if dist.sha256:
            return dist.sha256, self.size_of(dist)
        if urlsplit(dist.url).scheme == "file":
            path = Path(unquote(urlsplit(dist.url).path))
            digests = Digests(dist.hashes)
            try:
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(NET_CHUNK), b""):
                        digests.update(chunk)
            except OSError as exc:
                raise MetadataError(f"could not read {path}: {exc.strerror or exc}") from None
            wrong = digests.contradictions()
            if wrong:
                raise contradiction_error(dist.filename, dist.url, wrong, dist.source or None)
            return digests.hexdigest(), digests.size
        with self._url_lock(dist.url):
            known = self._known(dist)
            if known is None:
                response = self._fetcher.get(dist.url, stream=True)
                try:
                    self._download(dist, response)
                finally:
                    response.close()
                with self._lock:
                    known = self._facts[dist.url]
        return known

    def prefetch_facts(self, dists: Iterable[DistFile]) -> dict[DistFile, tuple[str, int | None]]:
        """``file_facts`` of many files, the downloads run concurrently."""
        todo = list(dict.fromkeys(dists))
        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            return dict(zip(todo, pool.map(self.file_facts, todo)))

    # -- sources ------------------------------------------------------------

    def _url_lock(self, url: str) -> threading.Lock:
        with self._lock:
            return self._url_locks.setdefault(url, threading.Lock())

    def _known(self, dist: DistFile) -> tuple[str, int] | None:
        """sha256 and size of a file with no advertised sha256 that was downloaded whole, in
        this run or (kept in the wheel cache) an earlier one.  An earlier run's answer holds
        only while the file is cached and agrees with the size and hashes the index gives now."""
        with self._lock:
            known = self._facts.get(dist.url)
        if known is not None or self.wheels is None:
            return known
        found = self.wheels.known_url(dist.url, dist.filename)
        if found is None:
            return None
        sha, size, path = found
        if dist.size is not None and dist.size != size:
            return None
        if dist.hashes:
            digests = Digests(dist.hashes)
            try:
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(NET_CHUNK), b""):
                        digests.update(chunk)
            except OSError:
                return None
            if digests.contradictions():
                return None  # the index now describes another file: fetch it again
        with self._lock:
            self._facts[dist.url] = (sha, size)
            self._sizes.setdefault(dist.url, size)
        return sha, size

    def _cached_wheel(self, dist: DistFile) -> Path | None:
        """The whole wheel, when an earlier download put it in the wheel cache."""
        known = None if dist.sha256 else self._known(dist)
        sha = dist.sha256 or (known[0] if known else None)
        if self.wheels is None or sha is None:
            return None
        return self.wheels.path(sha, self.size_of(dist))

    @staticmethod
    def _advertised_ok(dist: DistFile, data: bytes) -> bool:
        if isinstance(dist.core_metadata, Mapping):
            digests = Digests(dist.core_metadata)
            digests.update(data)
            return not digests.contradictions()
        return True

    def _verified_pep658(self, dist: DistFile, data: bytes, where: str) -> bytes:
        if not self._advertised_ok(dist, data):
            raise MetadataError(
                f"{where} does not match the sha256 the index advertised for {dist.filename}",
                hint="the index or a proxy serves stale or altered metadata; retry or use another mirror")
        return data

    def _local(self, dist: DistFile) -> bytes:
        path = Path(unquote(urlsplit(dist.url).path))
        sibling = path.with_name(path.name + ".metadata")
        if dist.core_metadata and sibling.is_file():
            return self._verified_pep658(dist, sibling.read_bytes(), str(sibling))
        return read_wheel_metadata(path, dist.name)

    def _remote(self, dist: DistFile) -> bytes:
        if dist.core_metadata:
            # PEP 658: the metadata file sits at the wheel's URL plus ".metadata".
            response = self._fetcher.get(dist.url + ".metadata")
            if response.ok:
                return self._verified_pep658(dist, response.content, redact_url(dist.url) + ".metadata")
            if response.status_code != 404:
                raise MetadataError(f"could not read {redact_url(dist.url)}.metadata: "
                                    f"{http_status_text(response)}")
        response = self._fetcher.get(dist.url, {"Range": f"bytes=-{self.tail_bytes}"}, stream=True)
        if response.status_code == 206:
            tail = response.content
            self._fetcher.add_bytes(len(tail))
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match and len(tail) == int(match[2]) - int(match[1]) + 1:
                with self._lock:
                    self._sizes[dist.url] = int(match[3])
                return self._from_ranges(dist, int(match[3]), int(match[1]), tail)
            response = self._fetcher.get(dist.url, stream=True)
        try:
            return self._from_download(dist, response)
        finally:
            response.close()

    def _from_ranges(self, dist: DistFile, size: int, start: int, tail: bytes) -> bytes:
        f = _RangeFile(self._fetcher, dist.url, size, start, tail)
        try:
            fast = _metadata_from_central_directory(f, tail, dist.name)
        except (struct.error, zlib.error, ValueError):
            fast = None
        if fast is not None:
            return fast
        try:
            zf = zipfile.ZipFile(f)
            member = zf.getinfo(_find_metadata_member(zf.namelist(), dist.name))
            # Local header (30 bytes + name + extra) and data in one read; extra is rarely large.
            later = [i.header_offset for i in zf.infolist() if i.header_offset > member.header_offset]
            end = min(later + [zf.start_dir, member.header_offset + 30 + len(member.filename)
                               + 1024 + member.compress_size])
            f.ensure(member.header_offset, end)
            return zf.read(member)
        except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as exc:
            raise MetadataError(f"{dist.filename} at {redact_url(dist.url)} is not a readable wheel: "
                                f"{exc}") from None

    def _from_download(self, dist: DistFile, response: requests.Response) -> bytes:
        """The whole wheel came (no PEP 658 file, no Range): keep it, then read its METADATA."""
        if self.wheels is not None:
            path = self._download(dist, response)
            assert path is not None
            return read_wheel_metadata(path, dist.name)
        with tempfile.TemporaryFile() as tmp:
            self._download(dist, response, tmp)
            tmp.seek(0)
            try:
                with zipfile.ZipFile(tmp) as zf:
                    return zf.read(_find_metadata_member(zf.namelist(), dist.name))
            except zipfile.BadZipFile as exc:
                raise MetadataError(f"{dist.filename} from {redact_url(dist.url)} is not a zip: "
                                    f"{exc}") from None

    def _download(self, dist: DistFile, response: requests.Response,
                  out: IO[bytes] | None = None) -> Path | None:
        """Stream the whole file into the wheel cache (or *out*), checking every advertised hash."""
        if not response.ok:
            raise MetadataError(f"could not download {redact_url(dist.url)}: "
                                f"{http_status_text(response)}")

        def chunks() -> Iterable[bytes]:
            first = True
            try:
                for chunk in response.iter_content(NET_CHUNK):
                    if first and looks_like_html(chunk):
                        raise MetadataError(f"{redact_url(dist.url)}: got an HTML page instead of "
                                            f"{dist.filename}",
                                            hint="a proxy or the mirror sent an error page; retry later")
                    first = False
                    self._fetcher.add_bytes(len(chunk))
                    yield chunk
            except requests.RequestException as exc:
                raise MetadataError(f"download of {redact_url(dist.url)} broke off: "
                                    f"{describe_failure(exc)}") from None

        if self.wheels is not None and out is None:
            stored = self.wheels.store(chunks(), dist.filename, dist.url, dist.hashes,
                                       dist.source or None)
            sha, size, path = stored.sha256, stored.size, stored.path
            if not dist.sha256:  # what the index does not say, a later run need not fetch again
                self.wheels.remember_url(dist.url, sha, size, dist.filename)
        else:
            digests = Digests(dist.hashes)
            for chunk in chunks():
                if out is not None:
                    out.write(chunk)
                digests.update(chunk)
            wrong = digests.contradictions()
            if wrong:
                raise contradiction_error(dist.filename, dist.url, wrong, dist.source or None)
            sha, size, path = digests.hexdigest(), digests.size, None
        with self._lock:
            self._facts[dist.url] = (sha, size)
            self._sizes[dist.url] = size
        return path

    # -- cache --------------------------------------------------------------

    def _cache_path(self, dist: DistFile) -> Path | None:
        if self.cache_dir is None:
            return None
        key = f"sha256-{dist.sha256}" if dist.sha256 else \
            "url-" + hashlib.sha256(dist.url.encode()).hexdigest()
        return self.cache_dir / key[7:9] / f"{key}.metadata"

    @staticmethod
    def _store(path: Path, data: bytes) -> None:
        CACHE_WRITER.write(path, data)  # on disk shortly; this process reads it from memory until then

