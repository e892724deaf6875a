"""The core metadata reader takes whatever pip takes, and never raises on any bytes."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.wheels import build_wheel
from wheelferry.cli import main
from wheelferry.coremetadata import read_core_metadata
from wheelferry.offline.audit import requires_python_of
from wheelferry.offline.cyclonedx import licence_choices
from wheelferry.offline.licences import licence_of

# A licence text of the size and kind pandas 2.2.3 ships in its License field: 72 KB, non-ASCII.
_PARAGRAPH = ("Copyright (c) 2008-2011, AQR Capital Management, LLC, Lambda Foundry, Inc. and "
              "PyData Development Team; portions © 2011-2024 Open source contributors, "
              "Kévin Ørsted-Ñúñez, 日本語の著者.")
LONG_LICENCE = ["BSD 3-Clause License", ""] + [f"{i}. {_PARAGRAPH}" for i in range(560)]


def _fold(lines: list[str], indent: str) -> str:
    return ("\n" + indent).join(lines)


def pandas_like(indent: str = " " * 8) -> bytes:
    """METADATA in the shape of pandas 2.2.3's: a whole licence text folded into License."""
    return (
        "Metadata-Version: 2.1\n"
        "Name: pandas\n"
        "Version: 2.2.3\n"
        "Summary: Powerful data structures for data analysis, time series, and statistics\n"
        "Author-Email: The Pandas Development Team <pandas-dev@python.org>\n"
        f"License: {_fold(LONG_LICENCE, indent)}\n"
        "Classifier: License :: OSI Approved :: BSD License\n"
        "Requires-Python: >=3.9\n"
        'Requires-Dist: numpy>=1.26.0; python_version >= "3.12"\n'
        "Requires-Dist: python-dateutil>=2.8.2\n"
        "Provides-Extra: test\n"
        "Requires-Dist: pytest>=7.3.2; extra == 'test'\n"
        "Description-Content-Type: text/markdown\n"
        "\n"
        "# pandas: powerful Python data analysis toolkit — ünïcode body\n"
    ).encode()


def test_a_72kb_non_ascii_licence_is_read_whole() -> None:
    data = pandas_like()
    assert len(data) > 70_000
    meta = read_core_metadata(data)
    assert (meta.name, meta.version, meta.requires_python) == ("pandas", "2.2.3", ">=3.9")
    assert meta.license == "\n".join(LONG_LICENCE)
    assert meta.requires_dist == ('numpy>=1.26.0; python_version >= "3.12"', "python-dateutil>=2.8.2",
                                  "pytest>=7.3.2; extra == 'test'")
    assert meta.provides_extra == ("test",)
    assert meta.problems == ()


def test_folds_indented_by_the_field_name_are_undone_too() -> None:
    # pyproject-metadata indents continuation lines by len("License: ") rather than 8.
    assert read_core_metadata(pandas_like(" " * 9)).license == "\n".join(LONG_LICENCE)
    assert read_core_metadata(pandas_like("\t")).license == "\n".join(LONG_LICENCE)


def test_the_consumers_read_the_pandas_licence() -> None:
    data = pandas_like()
    audited = licence_of(data)
    assert (audited.text, audited.source) == ("BSD 3-Clause License", "License")
    (entry,) = licence_choices(audited)
    assert entry["license"]["name"] == "BSD 3-Clause License"
    assert entry["license"]["text"]["content"] == "\n".join(LONG_LICENCE)
    assert requires_python_of(data) == ">=3.9"


def test_rfc2047_encoded_words_are_decoded_in_text_fields_only() -> None:
    data = (b"Metadata-Version: 1.1\nName: oldpkg\nVersion: 0.3\n"
            b"Author: =?utf-8?q?J=C3=B6rg_M=C3=BCller?=\n"
            b"Summary: =?iso-8859-1?b?R3L832Vu?= things\n"
            b"Requires-Dist: =?utf-8?q?x?=\n"
            b"Maintainer: =?nosuch-charset?q?abc?=\n")
    meta = read_core_metadata(data)
    assert meta.author == "Jörg Müller"
    assert meta.summary == "Grüßen things"
    assert meta.requires_dist == ("=?utf-8?q?x?=",)  # requirements are never decoded
    assert meta.maintainer == "=?nosuch-charset?q?abc?="  # undecodable: kept as written


def test_latin1_bytes_are_read_and_said() -> None:
    meta = read_core_metadata("Metadata-Version: 1.0\nName: vieux\nVersion: 1.0\n"
                              "Author: François\nLicense: GPL\n".encode("latin-1"))
    assert (meta.name, meta.author, meta.license) == ("vieux", "François", "GPL")
    assert meta.problems == ("not UTF-8 (read as Latin-1)",)


def test_every_metadata_version_reads_its_own_fields() -> None:
    v10 = read_core_metadata(b"Metadata-Version: 1.0\nName: a\nVersion: 1\nSummary: s\nPlatform: UNKNOWN\n"
                             b"License: UNKNOWN\n")
    assert (v10.metadata_version, v10.platforms, v10.requires_dist) == ("1.0", ("UNKNOWN",), ())
    v12 = read_core_metadata(b"Metadata-Version: 1.2\nName: a\nVersion: 1\nRequires-Python: >=2.7, !=3.0.*\n"
                             b"Requires-External: libpng\nObsoletes-Dist: b\nProvides-Dist: c\n")
    assert (v12.requires_python, v12.requires_external) == (">=2.7, !=3.0.*", ("libpng",))
    assert (v12.obsoletes_dist, v12.provides_dist) == (("b",), ("c",))
    v22 = read_core_metadata(b"Metadata-Version: 2.2\nName: a\nVersion: 1\nDynamic: Requires-Dist\n"
                             b"Project-URL: Source, https://mirror.example/src\nProject-URL: https://x.example\n")
    assert v22.dynamic == ("Requires-Dist",)
    assert v22.project_urls == (("Source", "https://mirror.example/src"), ("", "https://x.example"))
    v24 = read_core_metadata(b"Metadata-Version: 2.4\nName: a\nVersion: 1\nLicense-Expression: MIT OR\n"
                             b"  Apache-2.0\nLicense-File: LICENSE\nLicense-File: licenses/NOTICE\n")
    assert v24.license_expression == "MIT OR Apache-2.0"
    assert v24.license_files == ("LICENSE", "licenses/NOTICE")
    future = read_core_metadata(b"Metadata-Version: 3.7\nName: a\nVersion: 1\nX-Future: yes\n")
    assert (future.metadata_version, future.name, future.problems) == ("3.7", "a", ())


def test_crlf_bom_and_a_repeated_single_field() -> None:
    meta = read_core_metadata(b"\xef\xbb\xbfMetadata-Version: 2.1\r\nName: twice\r\nName: other\r\n"
                              b"Version: 1.0\r\nRequires-Dist: six\r\n\r\nbody\r\n")
    assert (meta.name, meta.version, meta.requires_dist) == ("twice", "1.0", ("six",))
    assert meta.problems == ("2 Name fields (the first is used)",)


def test_what_is_not_metadata_reads_as_nothing() -> None:
    for data in (b"", b"\x00\xff\xfe garbage", b"<html><body>404</body></html>", b"Name:\nVersion:\n"):
        meta = read_core_metadata(data)
        assert (meta.name, meta.version) == (None, None), data
        assert "no Name or no Version field" in meta.problems


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_fuzz_arbitrary_bytes_never_raise(data: bytes) -> None:
    meta = read_core_metadata(data)
    assert all(isinstance(r, str) and r == r.strip() and r for r in meta.requires_dist)


_header_text = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=200)
_FIELDS = ("Metadata-Version", "Name", "Version", "Summary", "License", "License-Expression", "Author",
           "Requires-Dist", "Requires-Python", "Provides-Extra", "Classifier", "Project-URL",
           "Description", "Keywords", "Dynamic", "License-File", "X-Other")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_FIELDS), _header_text,
                          st.sampled_from(["\n", "\r\n", "\n        ", "\n\t", "\n "])), max_size=25),
       st.text(max_size=300), st.sampled_from(["utf-8", "latin-1", "utf-16"]))
def test_fuzz_metadata_shaped_files_never_raise(fields: list[tuple[str, str, str]], body: str,
                                                encoding: str) -> None:
    text = "".join(f"{name}: {value}{fold}" for name, value, fold in fields) + "\n" + body
    meta = read_core_metadata(text.encode(encoding, errors="replace"))
    assert isinstance(meta.problems, tuple)
    assert licence_of(text.encode("utf-8", errors="surrogatepass")).source in (
        "License-Expression", "License", "classifier", "none")


@settings(max_examples=200, deadline=None)
@given(name=st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,30}[A-Za-z0-9])?", fullmatch=True),
       author=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs")), min_size=1,
                      max_size=80),
       licence=st.lists(st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs")),
                                min_size=1, max_size=60), min_size=1, max_size=20),
       reqs=st.lists(st.sampled_from(["six", "numpy>=1.26", 'tzdata; sys_platform == "win32"',
                                      "pytest[x]>=8; extra == 'test'"]), max_size=4))
def test_written_fields_read_back(name: str, author: str, licence: list[str], reqs: list[str]) -> None:
    data = ("Metadata-Version: 2.1\n"
            f"Name: {name}\nVersion: 1.0\nAuthor: {author}\n"
            f"License: {_fold(licence, ' ' * 8)}\n"
            + "".join(f"Requires-Dist: {r}\n" for r in reqs)
            + "\nbody\n").encode()
    meta = read_core_metadata(data)
    assert (meta.name, meta.version, meta.author) == (name, "1.0", author)
    assert meta.license == "\n".join(licence)
    assert meta.requires_dist == tuple(reqs)


def _run(*argv: str, capsys: Any) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_build_and_audit_a_bundle_holding_the_pandas_licence(index_server: Any, tmp_path: Path,
                                                               capsys: Any) -> None:
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "pandas", "2.2.3", tag="cp311-cp311-manylinux_2_17_x86_64", metadata=pandas_like())
    build_wheel(wheels, "python-dateutil", "2.9.0")
    server = index_server(wheels)
    code, res = _run("build", "-r", "pandas==2.2.3", "--target", "linux-x86_64:3.11", "--index-url",
                     server.url, "--no-sign", "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "out"),
                     capsys=capsys)
    assert code == 0, res
    with tarfile.open(res["bundle"]) as tar:
        sbom_member = next(m for m in tar.getmembers() if m.name.endswith(".cdx.json"))
        sbom = json.loads(tar.extractfile(sbom_member).read())  # type: ignore[union-attr]
    (component,) = [c for c in sbom["components"] if c["name"] == "pandas"]
    (licence,) = component["licenses"]
    assert licence["license"]["name"] == "BSD 3-Clause License"
    assert "Kévin Ørsted-Ñúñez" in licence["license"]["text"]["content"]
    code, audit = _run("audit", res["bundle"], "--allow-unsigned", capsys=capsys)
    assert code == 0, audit
    assert "BSD 3-Clause License" in json.dumps(audit, ensure_ascii=False)
