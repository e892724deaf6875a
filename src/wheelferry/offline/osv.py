"""OSV advisory databases read offline: osv.dev's ``all.zip``, a directory of OSV JSON or YAML.

Standard library, the vendored packaging (PEP 440) and the vendored PyYAML (pure Python in
the offline kit; its C loader where the build side has one).  A database is data carried
across the gap like a bundle, so it has an identity (:class:`DBIdentity`: its sha256, the
number of records, the newest ``modified``) that every report prints.

Records are matched as the OSV schema's ``IsVulnerable`` evaluation says
(https://ossf.github.io/osv-schema/#evaluation): ``affected[].package`` of ecosystem
``PyPI`` with the PEP 503 normalised name; ``versions`` lists; ``ECOSYSTEM`` (and
``SEMVER``) ranges whose ``introduced`` / ``fixed`` / ``last_affected`` / ``limit`` events
are compared as PEP 440 versions by ``packaging``.  ``GIT`` ranges name commits, not
releases, and take no part.  A record that breaks the schema where matching depends on it
(a bad version in an event, an unknown range type, a missing field) is *malformed*: it is
skipped and counted, never guessed at.  A file that is not JSON or YAML at all means the
database does not parse: :class:`AdvisoryDBError` names it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from wheelferry.errors import WheelferryError
from wheelferry.jsontypes import JSONObject, JSONValue

try:  # libyaml's loader where PyYAML was built with it (the build side); pure Python otherwise
    _YAMLLoader: Any = yaml.CBaseLoader  # Any: the C loader or the pure-Python one, whichever PyYAML has
except AttributeError:  # pragma: no cover  (the offline kit carries the pure-Python PyYAML)
    _YAMLLoader = yaml.BaseLoader

RECORD_SUFFIXES = (".json", ".yaml", ".yml")
_NAME_RUN = re.compile(r"[-_.]+")
_WORD = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
# YAML double-quoted escapes that can spell a name's letters or join two lines (YAML 1.1 5.7).
_YAML_HIDING = re.compile(r"\\(?:[xuU]|\r?\n)")
_YAML_MODIFIED = re.compile(r"^modified:[ \t]*(['\"]?)([0-9][0-9A-Za-z:.+-]*)\1[ \t]*$", re.M)


class AdvisoryDBError(WheelferryError):
    """An advisory database that cannot be read: not there, not a zip, a record that does not parse."""


class Malformed(Exception):
    """A record that breaks the OSV schema where matching depends on it (skipped and counted)."""


# --- the database: where records come from ------------------------------------------------------

@dataclass(frozen=True)
class DBIdentity:
    """Which advisories a bundle was judged against."""

    path: str
    format: str  # "osv-zip" or "osv-dir"
    sha256: str  # of the zip file; of a directory: of its sorted "path sha256" lines
    records: int  # record files
    newest_modified: str | None

    def to_json(self) -> JSONObject:
        return {"path": self.path, "format": self.format, "sha256": self.sha256, "records": self.records,
                "newest-modified": self.newest_modified}

    def line(self) -> str:
        return (f"advisories: {self.path} ({self.format}, sha256 {self.sha256}), {self.records} records, "
                f"newest modified {self.newest_modified or 'unknown'}")


@dataclass(frozen=True)
class RawRecord:
    """One record file's bytes and where it came from (a zip member or a file under the directory)."""

    source: str
    data: bytes

    @property
    def is_yaml(self) -> bool:
        return not self.source.endswith(".json")


def read_database(path: Path) -> tuple[str, str, list[RawRecord]]:
    """(format, sha256, records) of an ``all.zip`` or a directory of OSV JSON/YAML files.

    A checkout of the PyPA advisory database is read from its ``vulns/`` directory; hidden
    directories (``.git``, ``.github``) are never read.
    """
    path = Path(path)
    if path.is_dir():
        return _read_directory(path)
    if not path.is_file():
        raise AdvisoryDBError(f"advisory database {path} does not exist",
                              hint="pass osv.dev's all.zip, a directory of OSV files or a "
                                   "PyPA advisory-database checkout")
    return _read_zip(path)


def _read_zip(path: Path) -> tuple[str, str, list[RawRecord]]:
    digest = hashlib.sha256()
    records = []
    member = ""
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                member = info.filename
                if not info.is_dir() and info.filename.endswith(RECORD_SUFFIXES):
                    records.append(RawRecord(info.filename, zf.read(info)))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError,
            NotImplementedError, LookupError, OverflowError) as exc:
        where = f"{path}: member {member}" if member else str(path)
        raise AdvisoryDBError(f"advisory database {where} cannot be read as a zip of OSV records ({exc})",
                              hint="osv.dev's PyPI all.zip, or a directory of OSV JSON/YAML files") from None
    return "osv-zip", digest.hexdigest(), records


def _read_directory(path: Path) -> tuple[str, str, list[RawRecord]]:
    root = path / "vulns" if (path / "vulns").is_dir() else path
    records = []
    lines = []
    for file in sorted(root.rglob("*")):
        rel = file.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not file.name.endswith(RECORD_SUFFIXES):
            continue
        if not file.is_file():
            continue
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise AdvisoryDBError(f"advisory record {file} cannot be read ({exc.strerror or exc})") from None
        records.append(RawRecord(rel.as_posix(), data))
        lines.append(f"{rel.as_posix()} {hashlib.sha256(data).hexdigest()}\n")
    return "osv-dir", hashlib.sha256("".join(lines).encode()).hexdigest(), records


def load_record(raw: RawRecord) -> JSONValue:
    """The parsed document of one record file; a file that is not JSON/YAML is an AdvisoryDBError."""
    try:
        if not raw.is_yaml:
            return json.loads(raw.data)
        return yaml.load(raw.data, Loader=_YAMLLoader)
    except (ValueError, yaml.YAMLError, RecursionError, MemoryError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AdvisoryDBError(f"advisory record {raw.source} does not parse as "
                              f"{'YAML' if raw.is_yaml else 'JSON'}: {first}",
                              hint="the database is damaged or is not OSV data; fetch it again") from None


def _text(raw: RawRecord) -> str | None:
    data = raw.data
    codec = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def may_concern(raw: RawRecord, names: frozenset[str]) -> bool:
    """False only if the record cannot name any of *names* (so it need not be parsed).

    A record naming package P holds P's characters in a row between two syntax characters
    (quotes, blanks, ``:,[]{}``), so PEP 503 normalisation of the whole text shows P as a
    word of ``[a-z0-9-]``; only escapes can hide it (JSON ``\\u``; YAML ``\\x``, ``\\u``,
    ``\\U`` and escaped line breaks), and a record with one is always parsed.
    """
    text = _text(raw)
    if text is None:
        return True
    if (_YAML_HIDING.search(text) if raw.is_yaml else "\\u" in text):
        return True
    flat = _NAME_RUN.sub("-", text).lower()  # the record flattened as names are (PEP 503)
    for n in names:
        at = flat.find(n)
        while at >= 0:
            end = at + len(n)
            if (at == 0 or flat[at - 1] not in _WORD) and (end == len(flat) or flat[end] not in _WORD):
                return True
            at = flat.find(n, at + 1)
    return False


def modified_of(raw: RawRecord) -> str | None:
    """A YAML record's top-level ``modified`` read without parsing it (None: parse it to know)."""
    text = _text(raw)
    found = _YAML_MODIFIED.findall(text) if text is not None else []
    return str(found[0][1]) if len(found) == 1 else None


# --- records --------------------------------------------------------------------------------------

_MIN = "0"  # introduced "0": before every version
_EVENTS = ("introduced", "fixed", "last_affected", "limit")
_VERSION_RANGES = ("ECOSYSTEM", "SEMVER")
_KNOWN_RANGES = (*_VERSION_RANGES, "GIT")


@dataclass(frozen=True)
class Range:
    """One ECOSYSTEM/SEMVER range: events in version order ("0" first) and its limits."""

    events: tuple[tuple[str, Version | None, str], ...]  # (kind, version, as written); None = "0"
    limits: tuple[Version | None, ...]  # None = "*" (no limit)

    def includes(self, v: Version) -> bool:
        """OSV ``IncludedInRanges`` for this range, ``BeforeLimits`` included."""
        if self.limits and not any(lim is None or v < lim for lim in self.limits):
            return False
        vulnerable = False
        for kind, at, _ in self.events:
            if kind == "introduced" and (at is None or v >= at):
                vulnerable = True
            elif at is not None and ((kind == "fixed" and v >= at) or (kind == "last_affected" and v > at)):
                vulnerable = False
        return vulnerable

    def fixed_after(self, v: Version) -> str | None:
        """The smallest ``fixed`` above *v*, as the record writes it."""
        above = [(at, text) for kind, at, text in self.events if kind == "fixed" and at is not None and at > v]
        return min(above)[1] if above else None


@dataclass(frozen=True)
class Affected:
    """One ``affected[]`` entry of ecosystem PyPI."""

    name: str  # normalised
    ranges: tuple[Range, ...]
    versions: frozenset[str]  # as written
    parsed_versions: frozenset[Version]  # those that are PEP 440 versions
    severity: tuple[tuple[str, str], ...]  # affected[].severity: (type, score)

    def includes(self, version: str, parsed: Version) -> bool:
        """OSV ``IncludedInVersions(v) || IncludedInRanges(v)``."""
        return (version in self.versions or parsed in self.parsed_versions
                or any(r.includes(parsed) for r in self.ranges))


@dataclass(frozen=True)
class Advisory:
    """One OSV record, checked where matching depends on it."""

    id: str
    aliases: tuple[str, ...]
    modified: str
    withdrawn: str | None
    summary: str
    details: str
    affected: tuple[Affected, ...]
    severity: tuple[tuple[str, str], ...]  # (type, score), e.g. ("CVSS_V3", "CVSS:3.1/AV:N/...")
    label: str | None  # database_specific.severity (GHSA: LOW, MODERATE, HIGH, CRITICAL)
    source: str

    def names(self) -> set[str]:
        return {a.name for a in self.affected}


def _str(value: JSONValue, where: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise Malformed(f"{where} is {'missing' if value is None else 'not a string'}")
    return value


def _list(value: JSONValue, where: str) -> list[JSONValue]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(f"{where} is not a list")
    return value


def _dict(value: JSONValue, where: str) -> Mapping[str, JSONValue]:
    if not isinstance(value, dict):
        raise Malformed(f"{where} is {'missing' if value is None else 'not a mapping'}")
    return value


@functools.lru_cache(maxsize=65536)
def _pep440(text: str) -> Version | None:
    """*text* as a PEP 440 version, or None; cached, as the same strings recur across records."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _version(text: str, where: str) -> Version:
    parsed = _pep440(text)
    if parsed is None:
        raise Malformed(f"{where} {text!r} is not a PEP 440 version")
    return parsed


def _severity(value: JSONValue, where: str) -> tuple[tuple[str, str], ...]:
    out = []
    for i, s in enumerate(_list(value, where)):
        s = _dict(s, f"{where}[{i}]")
        out.append((_str(s.get("type"), f"{where}[{i}].type"), _str(s.get("score"), f"{where}[{i}].score")))
    return tuple(out)


def _range(value: JSONValue, where: str) -> Range | None:
    r = _dict(value, where)
    kind = _str(r.get("type"), f"{where}.type")
    if kind not in _KNOWN_RANGES:
        raise Malformed(f"{where}.type {kind!r} is not an OSV range type ({', '.join(_KNOWN_RANGES)})")
    events = _list(r.get("events"), f"{where}.events")
    if not events:
        raise Malformed(f"{where}.events is missing or empty")
    if kind not in _VERSION_RANGES:
        return None
    parsed: list[tuple[str, Version | None, str]] = []
    limits: list[Version | None] = []
    for i, e in enumerate(events):
        e = _dict(e, f"{where}.events[{i}]")
        keys = [k for k in _EVENTS if k in e]
        if len(keys) != 1:
            raise Malformed(f"{where}.events[{i}] must hold exactly one of {', '.join(_EVENTS)}")
        text = _str(e[keys[0]], f"{where}.events[{i}].{keys[0]}")
        if keys[0] == "limit":
            limits.append(None if "*" in text else _version(text, f"{where}.events[{i}].limit"))
        elif keys[0] == "introduced" and text == _MIN:
            parsed.append(("introduced", None, text))
        else:
            parsed.append((keys[0], _version(text, f"{where}.events[{i}].{keys[0]}"), text))
    if not any(k == "introduced" for k, _, _ in parsed):
        raise Malformed(f"{where}.events has no introduced event")
    # OSV: sorted(range.events), "0" before every version; equal versions keep the record's order.
    parsed.sort(key=lambda e: (e[1] is not None, e[1] or Version("0")))
    return Range(tuple(parsed), tuple(limits))


def parse_advisory(doc: JSONValue, source: str) -> Advisory:
    """Check and model one parsed record; :class:`Malformed` says what is wrong and where."""
    d = _dict(doc, "the record")
    rid = _str(d.get("id"), "id")
    if not rid.strip():
        raise Malformed("id is empty")
    modified = _str(d.get("modified"), "modified")
    withdrawn = d.get("withdrawn")
    if withdrawn is not None:
        withdrawn = _str(withdrawn, "withdrawn")
    aliases = tuple(_str(a, f"aliases[{i}]") for i, a in enumerate(_list(d.get("aliases"), "aliases")))
    affected = []
    for i, a in enumerate(_list(d.get("affected"), "affected")):
        a = _dict(a, f"affected[{i}]")
        pkg = _dict(a.get("package"), f"affected[{i}].package")
        ecosystem = _str(pkg.get("ecosystem"), f"affected[{i}].package.ecosystem")
        name = _str(pkg.get("name"), f"affected[{i}].package.name")
        checked = [_range(r, f"affected[{i}].ranges[{j}]")
                   for j, r in enumerate(_list(a.get("ranges"), f"affected[{i}].ranges"))]
        ranges = tuple(r for r in checked if r is not None)
        versions = [_str(v, f"affected[{i}].versions[{j}]")
                    for j, v in enumerate(_list(a.get("versions"), f"affected[{i}].versions"))]
        severity = _severity(a.get("severity"), f"affected[{i}].severity")
        if ecosystem != "PyPI":
            continue
        # A release string that is no PEP 440 version matches only as written.
        parsed = frozenset(p for p in map(_pep440, versions) if p is not None)
        affected.append(Affected(canonicalize_name(name), ranges, frozenset(versions), parsed, severity))
    specific = d.get("database_specific")
    label = specific.get("severity") if isinstance(specific, dict) else None
    return Advisory(rid, aliases, modified, withdrawn, _str(d.get("summary"), "summary", required=False),
                    _str(d.get("details"), "details", required=False), tuple(affected),
                    _severity(d.get("severity"), "severity"), label if isinstance(label, str) else None,
                    source)


@dataclass(frozen=True)
class Scan:
    """What reading a database for some packages found."""

    identity: DBIdentity
    advisories: tuple[Advisory, ...]  # live records that name one of the packages
    examined: int  # records parsed and checked
    withdrawn: tuple[str, ...]  # ids of withdrawn records among them (ignored)
    malformed: tuple[tuple[str, str], ...]  # (record file, what is wrong): skipped

    def counts(self) -> dict[str, int]:
        return {"examined": self.examined, "matched-packages": len(self.advisories),
                "withdrawn": len(self.withdrawn), "malformed": len(self.malformed)}


def _modified(doc: JSONValue) -> str:
    value = doc.get("modified") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else ""


def _names_in(doc: JSONValue) -> set[str] | None:
    """The normalised package names a parsed record's affected[] names (None: cannot tell)."""
    try:
        return {canonicalize_name(a["package"]["name"]) for a in doc["affected"]}
    except (KeyError, TypeError, AttributeError):
        return None


def scan(path: Path, names: frozenset[str] | None = None) -> Scan:
    """Read the database at *path*: the records concerning *names* (every record if None).

    Every record's ``modified`` counts for the identity.  JSON records are all parsed (the
    standard library's parser is quick); a YAML record is parsed only if it may name one of
    *names* (see :func:`may_concern`).  A record whose packages cannot be told is checked,
    so it is counted as malformed rather than passed over.
    """
    fmt, digest, records = read_database(path)
    if not records:
        raise AdvisoryDBError(f"advisory database {path} holds no OSV records (*.json, *.yaml)",
                              hint="pass osv.dev's all.zip, a directory of OSV files or a "
                                   "PyPA advisory-database checkout")
    newest = ""
    found: list[Advisory] = []
    withdrawn: list[str] = []
    malformed: list[tuple[str, str]] = []
    examined = 0
    for raw in records:
        if raw.is_yaml and names is not None and not may_concern(raw, names):
            stamp = modified_of(raw)
            if stamp is not None:
                newest = max(newest, stamp)
                continue
            newest = max(newest, _modified(load_record(raw)))
            continue
        doc = load_record(raw)
        newest = max(newest, _modified(doc))
        if names is not None:
            named = _names_in(doc)
            if named is not None and not named & names:
                continue
        examined += 1
        try:
            adv = parse_advisory(doc, raw.source)
        except Malformed as exc:
            malformed.append((raw.source, str(exc)))
            continue
        if adv.withdrawn is not None:
            withdrawn.append(adv.id)
        elif names is None or adv.names() & names:
            found.append(adv)
    identity = DBIdentity(str(path), fmt, digest, len(records), newest or None)
    return Scan(identity, tuple(found), examined, tuple(withdrawn), tuple(malformed))


def write_zip(path: Path, out: Path) -> int:
    """Write the database at *path* as an osv.dev-style zip of ``ID.json`` members; return the count.

    A YAML checkout read this way once on the build side is read from JSON on the isolated
    side, where the pure-Python YAML reader is slow.  The zip is deterministic (sorted
    members, fixed times) and written under a temporary name, then renamed into place.
    YAML scalars stay strings, as every OSV field this reader uses is.
    """
    _, _, records = read_database(path)
    docs = {}
    for raw in records:
        doc = load_record(raw)
        stem = raw.source.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        name = f"{stem}.json"
        if name in docs:
            raise AdvisoryDBError(f"advisory database {path} holds two records named {stem}",
                                  hint="one record per id; remove the duplicate")
        docs[name] = json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(docs):
                info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, docs[name])
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise AdvisoryDBError(f"cannot write {out}: {exc.strerror or exc}") from None
    return len(docs)
