"""``export-index``: a verified bundle as a static "simple" index any web server can serve.

Standard library only.  Layout under DIR (relative links, so the tree can be
moved, served by ``python -m http.server`` or nginx, or read as ``file://``)::

    simple/index.html, simple/index.json            project list (PEP 503 / PEP 691)
    simple/<project>/index.html                     PEP 503 links with #sha256=, data-requires-python,
                                                    data-core-metadata (PEP 658/714; not the
                                                    pre-714 name, which pip 22.3-23.1 misread)
    simple/<project>/index.json                     PEP 691 v1.1 (PEP 700: size, upload-time, versions)
    files/<wheel>, files/<wheel>.metadata           the wheels and their METADATA (PEP 658)

Exporting a newer bundle into the same DIR merges: files are written first,
project pages next, the project list last, each through a temporary name and
``os.replace``, so a client reading mid-update never sees a link to a missing file.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from wheelferry.errors import UsageError, VerificationError
from wheelferry.files import atomic_path, atomic_write, hash_file
from wheelferry.jsontypes import JSONObject
from wheelferry.manifest import WHEELS_DIR
from wheelferry.offline.audit import read_metadata, requires_python_of
from wheelferry.offline.verify import VerifiedBundle
from wheelferry.timestamps import upload_time_z

API_VERSION = "1.1"


@dataclass(frozen=True)
class ExportReport:
    """What one export added to DIR."""

    directory: str
    projects: tuple[str, ...]
    added: tuple[str, ...]
    kept: tuple[str, ...]  # files already there with the same sha256

    def to_json(self) -> JSONObject:
        return {"directory": self.directory, "projects": list(self.projects),
                "added": list(self.added), "kept": list(self.kept)}


def _sha256(path: Path) -> str:
    return str(hash_file(path).hexdigest())


def _write(path: Path, data: bytes) -> None:
    atomic_write(path, data, 0o644)


def _place(src: Path, dst: Path) -> None:
    """Move *src* to *dst* atomically (a rename when on one file system, else copy then rename)."""
    with atomic_path(dst, 0o644) as tmp:
        try:
            os.replace(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def _existing_files(page: Path, project: str) -> dict[str, JSONObject]:
    if not page.is_file():
        return {}
    try:
        data = json.loads(page.read_text(encoding="utf-8"))
        files = data["files"]
        if not isinstance(files, list) or not all(isinstance(f["filename"], str) for f in files):
            raise TypeError("files")
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"{page} is not a PEP 691 page this export can merge with",
                         hint=f"export into an empty directory, or remove simple/{project}/") from None
    return {f["filename"]: f for f in files}


def _entry(filename: str, sha256: str, size: int, requires_python: str | None,
           upload_time: str | None, metadata_sha256: str) -> JSONObject:
    entry: JSONObject = {
        "filename": filename, "url": f"../../files/{quote(filename)}", "hashes": {"sha256": sha256},
        "requires-python": requires_python, "size": size, "yanked": False,
        "core-metadata": {"sha256": metadata_sha256},
    }
    if upload_time:
        entry["upload-time"] = upload_time
    return entry


def _project(filename: str) -> str:
    try:
        return str(parse_wheel_filename(filename)[0])
    except InvalidWheelFilename:
        raise VerificationError(f"the bundle's lock names {filename!r}, which is not a wheel file name",
                                hint="the lock was edited by hand: build the bundle again") from None


def _version_of(filename: str) -> str:
    try:
        return str(parse_wheel_filename(filename)[1])
    except InvalidWheelFilename:
        return ""


def _sorted_versions(files: list[JSONObject]) -> list[str]:
    versions = {_version_of(f["filename"]) for f in files} - {""}

    def key(v: str) -> tuple[int, Version | tuple[()], str]:
        try:
            return (0, Version(v), v)
        except InvalidVersion:
            return (1, (), v)
    return sorted(versions, key=key)


def project_json(project: str, files: list[JSONObject]) -> bytes:
    """The PEP 691 v1.1 JSON page of one project."""
    # PEP 714's name only (see project_html); a page written by an older export loses the old key.
    listed = [{k: v for k, v in f.items() if k != "dist-info-metadata"} for f in files]
    doc = {"meta": {"api-version": API_VERSION}, "name": project,
           "files": sorted(listed, key=lambda f: f["filename"]), "versions": _sorted_versions(files)}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def project_html(project: str, files: list[JSONObject]) -> bytes:
    """The PEP 503 HTML page of one project (PEP 629 version meta, PEP 658/714 attributes)."""
    links = []
    for f in sorted(files, key=lambda f: f["filename"]):
        attrs = [f'href="{html.escape(f["url"])}#sha256={f["hashes"]["sha256"]}"']
        if f.get("requires-python"):
            # PEP 503: the value is HTML-escaped, so "<" and ">" survive as &lt; and &gt;.
            attrs.append(f'data-requires-python="{html.escape(f["requires-python"])}"')
        meta = (f.get("core-metadata") or {}).get("sha256")
        if meta:
            # PEP 714's name only.  pip 22.3-23.1 read PEP 658 files solely under the old name
            # (data-dist-info-metadata; "dist-info-metadata" in JSON, where a PEP 691 object
            # breaks them) and then compare the file's Name: with the requirement as spelt,
            # unnormalised, so `google_pasta` against `Name: google-pasta` fails
            # (pypa/pip#12038, fixed in 23.2, which also reads the new name).  Without the old
            # name those pips download the wheel they install anyway; pip 23.2+ and uv still
            # read the metadata file alone.
            attrs.append(f'data-core-metadata="sha256={meta}"')
        links.append(f"    <a {' '.join(attrs)}>{html.escape(f['filename'])}</a><br>")
    return _page(f"Links for {project}", links)


def _page(title: str, links: list[str]) -> bytes:
    return ("<!DOCTYPE html>\n<html>\n  <head>\n"
            f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
            f"    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n"
            f"    <h1>{html.escape(title)}</h1>\n" + "\n".join(links) + "\n  </body>\n</html>\n").encode()


def _projects(simple: Path) -> list[str]:
    if not simple.is_dir():
        return []
    return sorted(p.name for p in simple.iterdir()
                  if p.is_dir() and ((p / "index.json").is_file() or (p / "index.html").is_file()))


def export_index(bundle: VerifiedBundle, extracted: Path, out: Path) -> ExportReport:
    """Add the wheels of a verified, extracted bundle to the static index at *out*."""
    out = Path(out)
    simple, files_dir = out / "simple", out / "files"
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    lock = bundle.lock
    project_of = {p.wheel: p.name for t in lock.targets for p in t.packages}
    # Check everything that could refuse before the first byte is written.
    kept, fresh, pages = [], [], {}
    for filename in sorted(lock.wheels):
        project = canonicalize_name(project_of.get(filename) or _project(filename))
        if project not in pages:
            pages[project] = _existing_files(simple / project / "index.json", project)
        dst = files_dir / filename
        if dst.exists():
            if _sha256(dst) != lock.wheels[filename].sha256:
                raise VerificationError(
                    f"{dst} already exists with different contents than the bundle's {filename}",
                    hint="a wheel file name must never be re-used with other bytes; find out which "
                         "copy is genuine before exporting")
            kept.append(filename)
        else:
            fresh.append(filename)
    for filename in sorted(lock.wheels):
        wheel = lock.wheels[filename]
        src = extracted / WHEELS_DIR / filename
        metadata = read_metadata(src)
        if filename in fresh:
            _place(src, files_dir / filename)
        meta_path = files_dir / f"{filename}.metadata"
        if not meta_path.is_file() or meta_path.read_bytes() != metadata:
            _write(meta_path, metadata)
        project = canonicalize_name(project_of.get(filename) or _project(filename))
        pages[project][filename] = _entry(filename, wheel.sha256, bundle.files[f"{WHEELS_DIR}/{filename}"][1],
                                          wheel.requires_python or requires_python_of(metadata),
                                          upload_time_z(wheel.upload_time),
                                          hashlib.sha256(metadata).hexdigest())
    for project, entries in sorted(pages.items()):
        listed = list(entries.values())
        _write(simple / project / "index.json", project_json(project, listed))
        _write(simple / project / "index.html", project_html(project, listed))
    projects = sorted(set(_projects(simple)) | set(pages))
    root = {"meta": {"api-version": API_VERSION}, "projects": [{"name": p} for p in projects]}
    _write(simple / "index.json", (json.dumps(root, indent=2, sort_keys=True) + "\n").encode())
    _write(simple / "index.html", _page("Simple index", [f'    <a href="{quote(p)}/">{html.escape(p)}</a><br>'
                                                         for p in projects]))
    return ExportReport(str(out), tuple(sorted(pages)), tuple(fresh), tuple(kept))

