"""Licences of wheels, each result with its evidence: METADATA first, then the licence files.

Standard library, the vendored packaging (SPDX ids) and the shared METADATA reader only,
so build (its SBOM and ``--policy``) and the offline audit resolve licences the same way.
"""

from __future__ import annotations

import functools
import json
import pkgutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wheelferry.coremetadata import CoreMetadata, read_core_metadata
from wheelferry.jsontypes import JSONObject
from wheelferry.offline.licencetext import licence_of_texts, match_texts
from wheelferry.offline.policy import canonical_spdx

# Trove classifiers that name exactly one SPDX licence ("BSD License" does not: the licence file decides).
_CLASSIFIERS = {
    "MIT License": "MIT", "MIT No Attribution License (MIT-0)": "MIT-0", "ISC License (ISCL)": "ISC",
    "Apache Software License": "Apache-2.0", "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "The Unlicense (Unlicense)": "Unlicense", "Zero-Clause BSD (0BSD)": "0BSD",
    "zlib/libpng License": "Zlib", "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "Python Software Foundation License": "PSF-2.0", "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "European Union Public Licence 1.2 (EUPL 1.2)": "EUPL-1.2",
    "Universal Permissive License (UPL)": "UPL-1.0",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}


@dataclass(frozen=True)
class Licence:
    """A wheel's licence: what to show, its SPDX form if one is known, where it came from and why."""

    text: str
    spdx: str | None
    source: str  # License-Expression | License | classifier | License-name | notice | License-File | none
    names: tuple[str, ...] = ()  # classifier names, for an SBOM without an SPDX form
    evidence: str = ""  # the field, classifier, spelling or file that decided it
    full_text: str = ""  # a License field holding a whole licence text that matched no SPDX id


def _normal(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


@functools.lru_cache(maxsize=1)
def licence_names() -> dict[str, dict[str, str]]:
    """The data file of common free-text licence spellings (lower-cased key -> spdx, source)."""
    raw = pkgutil.get_data("wheelferry.offline", "licence-names.json")
    data: JSONObject = json.loads(raw or b"{}")
    return {_normal(k): v for k, v in data.items() if not k.startswith("_")}


def _spdx(text: str) -> str | None:
    try:
        return canonical_spdx(text)
    except ValueError:
        return None


_VENDORS = {"nvidia": "NVIDIA"}  # a proprietary notice by one of these -> LicenseRef-<Vendor>-Proprietary


def _proprietary(meta: CoreMetadata, first: str) -> Licence | None:
    said = "proprietary" in first.lower() or any(c.endswith(":: Other/Proprietary License")
                                                 for c in meta.licence_classifiers)
    if not said:
        return None
    who = " ".join(x or "" for x in (meta.author, meta.author_email, meta.maintainer, meta.maintainer_email,
                                     first)).lower()
    vendor = next((v for k, v in _VENDORS.items() if k in who), None)
    ref = f"LicenseRef-{vendor}-Proprietary" if vendor else "LicenseRef-Proprietary"
    by = f" by {vendor}" if vendor else ""
    return Licence(first or "Other/Proprietary License", ref, "notice",
                   evidence=f"proprietary notice{by} ({'License: ' + first if first else 'classifier'})")


def licence_of(metadata: bytes) -> Licence:
    """The declared licence in a METADATA file, without reading the licence files.

    In this order: License-Expression; a License field that is an SPDX expression;
    classifiers that each name one SPDX licence; a known free-text spelling
    (``licence-names.json``); a proprietary notice (a ``LicenseRef-`` id); a License
    field holding a licence's whole text.  Otherwise source ``none``.
    """
    meta = read_core_metadata(metadata)
    expression = (meta.license_expression or "").strip()
    if expression:
        spdx = _spdx(expression)
        if spdx:
            return Licence(expression, spdx, "License-Expression", evidence=f"License-Expression: {expression}")
    text = meta.license or ""
    first = text.splitlines()[0].strip() if text.strip() else ""
    if first.upper() == "UNKNOWN":
        first = ""
    single = "\n" not in text.strip()
    if first and single and (spdx := _spdx(first)):
        return Licence(first, spdx, "License", evidence=f"License: {first}")
    names = sorted({c.split("::")[-1].strip() for c in meta.licence_classifiers if c.count("::") >= 2})
    ids = [_CLASSIFIERS.get(n) for n in names]
    if names and all(ids):
        # Several classifiers say nothing of OR or AND: judge the stricter AND.
        spdx = " AND ".join(sorted({i for i in ids if i}))
        return Licence(", ".join(names), spdx, "classifier", tuple(names),
                       evidence="; ".join(f"Classifier: License :: {n}" for n in names))
    known = licence_names().get(_normal(first)) if first and single else None
    if known:
        return Licence(first, known["spdx"], "License-name",
                       evidence=f"License: {first} (a known spelling, seen in {known['source']})")
    notice = _proprietary(meta, first[:200])
    if notice:
        return notice
    if first and not single:
        found = licence_in_text(text)
        if found:
            return Licence(f"{found} (recognised in the License field)", found, "License",
                           evidence=f"License field: the text of {found}")
    if first:
        return Licence(first[:200], None, "License", evidence=f"License: {first[:200]} (no SPDX id)",
                       full_text="" if single else text)
    if names:
        return Licence(", ".join(names), None, "classifier", tuple(names),
                       evidence="; ".join(f"Classifier: License :: {n}" for n in names) + " (no single SPDX id)")
    return Licence("UNKNOWN", None, "none")


# Phrases of licence texts that tell them apart, each list in its text's own order, for files
# that hold no whole reference text (a notice, a shortened or a less common licence).
# An earlier licence in a file wins: a project's own licence comes before the bundled ones.
_LICENCE_TEXTS = (
    ("Apache-2.0", ("apache license", "version 2.0", "terms and conditions for use, reproduction")),
    ("Apache-2.0", ("licensed under the apache license, version 2.0",)),  # the licence's own notice
    ("MPL-2.0", ("mozilla public license", "version 2.0")),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms",
                      "neither the name", "may be used to endorse or promote products")),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms",
                      "names of its contributors may not be used to endorse")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",
                      "redistributions in binary form must reproduce")),
    ("MIT", ("permission is hereby granted, free of charge", "the above copyright notice and this permission "
             "notice shall be included")),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any purpose",)),
    ("PSF-2.0", ("python software foundation license version 2",)),
    ("Zlib", ("this software is provided 'as-is', without any express or implied",
              "altered source versions must be plainly marked")),
    ("BSL-1.0", ("boost software license - version 1.0",)),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",)),
    ("LicenseRef-NVIDIA-Proprietary", ("nvidia", "license agreement", "proprietary")),
)


def _phrases_in_text(flat: str) -> str | None:
    best: tuple[int, str] | None = None
    for spdx, needles in _LICENCE_TEXTS:
        at = [flat.find(n) for n in needles]
        if all(i >= 0 for i in at):
            if spdx == "BSD-2-Clause" and "neither the name" in flat[at[0]:at[0] + 2000]:
                continue
            if best is None or at[0] < best[0]:
                best = (at[0], spdx)
    return best[1] if best else None


@dataclass(frozen=True)
class _Found:
    spdx: str
    how: str  # what of the text matched, for the evidence


def _recognise(text: str) -> list[_Found]:
    """The licences of one text, first the governing one: by whole text, else by distinguishing phrases."""
    matches = match_texts(text)
    if matches:
        first = matches[0]
        # Unrecognised terms longer than the first licence found come first: that one is bundled.
        if first.start > max(120, (first.end - first.start) // 2):
            return []
        chosen = licence_of_texts(matches)
        out = [_Found(m.spdx, f"{m.cover:.0%} of its reference text") for m in matches]
        return sorted(out, key=lambda f: f.spdx != (chosen.spdx if chosen else ""))
    phrase = _phrases_in_text(" ".join(text.lower().replace("\u2019", "'").split()))
    return [_Found(phrase, "its distinguishing phrases")] if phrase else []


def licence_in_text(text: str) -> str | None:
    """The SPDX id of the licence *text* grants: a reference licence's whole text, else its phrases.

    A file holding several licences grants the first (the rest are bundled), the GNU
    LGPL 3.0 beside the GPL 3.0 it supplements grants the LGPL.
    """
    found = _recognise(text)
    return found[0].spdx if found else None


def _licence_members(names: list[str], declared: list[str]) -> list[str]:
    if declared:
        # PEP 639 puts them under .dist-info/licenses/; older tools straight into .dist-info/.
        found = [next((n for n in names if n.count(".dist-info/") == 1 and n.split(".dist-info/", 1)[1]
                       in (f"licenses/{path}", path)), None) for path in declared]
        return [n for n in found if n]
    return sorted(n for n in names if n.count(".dist-info/") == 1 and
                  n.rsplit("/", 1)[-1].upper().startswith(("LICEN", "COPYING")))


_MAX_LICENCE_FILES = 32
_ONLY_NOTE = "; the text alone grants no later version"


def licence_from_files(wheel: Path, metadata: bytes) -> Licence | None:
    """The licence recognised in the wheel's licence files (declared by ``License-File``, or found in .dist-info).

    The first file holding a recognised licence decides, except that a GNU LGPL 3.0
    text in any of the files, beside the GNU GPL 3.0 it supplements, makes it the LGPL.
    """
    declared = list(read_core_metadata(metadata).license_files)
    found: list[tuple[str, _Found]] = []
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member in _licence_members(zf.namelist(), declared)[:_MAX_LICENCE_FILES]:
                text = zf.read(member)[:200000].decode("utf-8", errors="replace")
                path = member.split(".dist-info/", 1)[1]
                found += [(path, f) for f in _recognise(text)]
    except (zipfile.BadZipFile, OSError):
        return None
    if not found:
        return None
    path, first = found[0]
    gpl3 = next((p for p, f in found if f.spdx == "GPL-3.0-only"), None)
    lesser = next(((p, f) for p, f in found if f.spdx == "LGPL-3.0-only"), None)
    beside = ""
    if first.spdx == "GPL-3.0-only" and lesser is not None:
        (path, first), beside = lesser, f", beside {gpl3}: the GPL-3.0 it supplements"
    note = _ONLY_NOTE if first.spdx.endswith("-only") else ""
    return Licence(f"{first.spdx} (recognised in {path})", first.spdx, "License-File",
                   evidence=f"{path}: the text of {first.spdx} ({first.how}{note}){beside}")


def licence_of_wheel(wheel: Path, metadata: bytes) -> Licence:
    """The whole chain: :func:`licence_of`, then the licence files if that found no SPDX id."""
    declared = licence_of(metadata)
    if declared.spdx:
        return declared
    return licence_from_files(wheel, metadata) or declared


def wheel_licences(paths: Mapping[str, Path], metadata: Mapping[str, bytes]) -> dict[str, Licence]:
    """The licence of each wheel file in *paths* (its METADATA in *metadata*), by file name."""
    return {name: licence_of_wheel(path, metadata.get(name, b"")) for name, path in sorted(paths.items())}
