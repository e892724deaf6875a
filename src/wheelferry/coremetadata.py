"""The one reader of a wheel's core metadata (METADATA, PEP 658 files), for both halves.

Built on ``packaging.metadata.parse_email`` (the vendored copy in the offline kit)
and as lenient as pip: any Metadata-Version (1.0 to 2.4 and later), non-ASCII
text (UTF-8, else Latin-1 as a last resort), RFC 2047 encoded words in the
free-text fields, folded and very long fields (70 KB licence texts), repeated
single-use fields (the first one counts, the rest are noted).  It never raises
on any input: what it cannot read is absent and said in ``problems``.  Judging
the values (PEP 508 requirements, PEP 440 versions, SPDX expressions) is left to
each consumer, which knows what a bad one means for its own work.
"""

from __future__ import annotations

import email.errors
import email.header
import re
import textwrap
from dataclasses import dataclass
from typing import Any

from packaging.metadata import parse_email

# RFC 2047 section 2: =?charset?encoding?encoded-text?=
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
# Fields of free text where writers (distutils' email generator among them) put encoded words.
_TEXT_FIELDS = ("summary", "author", "author_email", "maintainer", "maintainer_email", "license")
# The fields read, by packaging's RawMetadata names: single-use, then multiple-use.
_SINGLE = ("metadata_version", "name", "version", "summary", "requires_python", "license",
           "license_expression", "author", "author_email", "maintainer", "maintainer_email",
           "home_page", "download_url", "description_content_type")
_MULTIPLE = ("requires_dist", "provides_extra", "classifiers", "license_files", "dynamic",
             "platforms", "requires_external", "obsoletes_dist", "provides_dist")


@dataclass(frozen=True)
class CoreMetadata:
    """The fields of a core metadata file, as text; absent fields are None or empty."""

    metadata_version: str | None = None
    name: str | None = None
    version: str | None = None
    summary: str | None = None
    requires_python: str | None = None
    license: str | None = None  # folds undone (the first line is its name when it is a text)
    license_expression: str | None = None  # PEP 639
    author: str | None = None
    author_email: str | None = None
    maintainer: str | None = None
    maintainer_email: str | None = None
    home_page: str | None = None
    download_url: str | None = None
    description_content_type: str | None = None
    requires_dist: tuple[str, ...] = ()
    provides_extra: tuple[str, ...] = ()
    classifiers: tuple[str, ...] = ()
    license_files: tuple[str, ...] = ()
    dynamic: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    requires_external: tuple[str, ...] = ()
    obsoletes_dist: tuple[str, ...] = ()
    provides_dist: tuple[str, ...] = ()
    project_urls: tuple[tuple[str, str], ...] = ()  # (label, URL) in file order
    problems: tuple[str, ...] = ()  # what was off in the file, one short phrase each

    @property
    def licence_classifiers(self) -> tuple[str, ...]:
        """The ``License ::`` trove classifiers, in file order."""
        return tuple(c for c in self.classifiers if c.startswith("License ::"))


def _decode(data: bytes) -> tuple[str, list[str]]:
    """The file as text: UTF-8 (a BOM dropped), else Latin-1, which maps every byte."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        return data.decode("latin-1"), ["not UTF-8 (read as Latin-1)"]


def _encoded_words(value: str) -> str:
    """*value* with RFC 2047 encoded words decoded; as written when they do not decode."""
    if not _ENCODED_WORD.search(value):
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (email.errors.HeaderParseError, LookupError, UnicodeError, ValueError, TypeError):
        return value


def _unescape(value: str) -> str:
    """A multi-line field with its folding undone, as setuptools' ``rfc822_unescape`` does."""
    lines = value.splitlines()
    if len(lines) <= 1:
        return value.strip()
    rest = textwrap.dedent("\n".join(lines[1:]))
    return "\n".join((lines[0].strip(), rest)).strip()


def _project_urls(values: list[str]) -> tuple[tuple[str, str], ...]:
    """``Project-URL: label, URL`` pairs; a value without a comma is a URL without a label."""
    out = []
    for value in values:
        label, sep, url = value.partition(",")
        out.append((label.strip(), url.strip()) if sep else ("", label.strip()))
    return tuple(out)


def read_core_metadata(data: bytes | str) -> CoreMetadata:
    """Read a METADATA / PKG-INFO / PEP 658 file; never raises, whatever the bytes."""
    problems: list[str] = []
    if isinstance(data, bytes):
        text, problems = _decode(data)
    else:
        text = data
    text = text.replace("\r\n", "\n")
    try:
        raw, unparsed = parse_email(text)
    except Exception as exc:  # noqa: BLE001 - the email package on arbitrary input; a reader never raises
        return CoreMetadata(problems=(*problems, f"not an RFC 822 header block ({type(exc).__name__})"))
    fields: dict[str, object] = dict(raw)
    for email_name, values in unparsed.items():
        key = email_name.replace("-", "_")
        key = {"classifier": "classifiers", "license_file": "license_files", "platform": "platforms",
               "project_url": "project_urls"}.get(key, key)
        if key in _SINGLE and values:
            # parse_email leaves a repeated single-use field unparsed: the first one counts.
            fields[key] = values[0]
            if len(values) > 1:
                problems.append(f"{len(values)} {email_name.title()} fields (the first is used)")
        elif key in _MULTIPLE or key == "project_urls":
            fields[key] = values
    # Any: the fields of several types go to CoreMetadata(**out) by name; each is checked here.
    out: dict[str, Any] = {}
    for key in _SINGLE:
        value = fields.get(key)
        if isinstance(value, str):
            value = _encoded_words(value) if key in _TEXT_FIELDS else value
            value = _unescape(value) if key == "license" else " ".join(value.split())
            out[key] = value or None
    for key in _MULTIPLE:
        many = fields.get(key)
        if isinstance(many, list):
            out[key] = tuple(v for v in (" ".join(str(v).split()) for v in many) if v)
    urls = fields.get("project_urls")
    if isinstance(urls, dict):
        # parse_email reads a value without a comma as a label without a URL: it is a URL.
        out["project_urls"] = tuple((str(k), str(v)) if v else ("", str(k)) for k, v in urls.items())
    elif isinstance(urls, list):
        out["project_urls"] = _project_urls([str(u) for u in urls])
    if not out.get("name") or not out.get("version"):
        problems.append("no Name or no Version field")
    return CoreMetadata(**out, problems=tuple(problems))
