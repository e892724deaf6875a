"""Recognising a licence by its whole text: normalised words compared with the reference texts.

The references in ``licence-texts/`` are the licences' own texts (the GNU family,
MPL-2.0 and Apache-2.0 verbatim as their stewards publish them; MIT, ISC and the BSD
clauses as the SPDX list gives them).  Both sides are normalised the way SPDX's
matching guidelines allow (case, punctuation, quotes, bullets, line breaks,
British spellings), cut into runs of five words, and a reference is found where a
dense stretch of the text holds most of its runs.  A file holding several licences
(a project's own, then those it bundles) yields each, in order; where two
references cover the same stretch (BSD-2 inside BSD-3, GPL-3.0 inside AGPL-3.0) the
closer one wins.  Standard library only.
"""

from __future__ import annotations

import functools
import pkgutil
import re
from dataclasses import dataclass

_RUN = 5  # words per run
_GAP = 60  # a stretch ends where this many words in a row match nothing of the reference
_MIN_COVER = 0.8  # share of the reference's runs a match must hold
_MIN_SCORE = 0.8  # and the harmonic mean of that share and the stretch's density
_REFERENCES = ("AGPL-3.0-only", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "GPL-2.0-only", "GPL-3.0-only",
               "ISC", "LGPL-2.0-only", "LGPL-2.1-only", "LGPL-3.0-only", "MIT", "MPL-2.0")
# SPDX matching guidelines, "equivalent words" (a few of the list): one spelling stands for both.
_EQUIVALENT = {"licence": "license", "licences": "licenses", "licenced": "licensed", "sublicence": "sublicense",
               "organisation": "organization", "organisations": "organizations", "whilst": "while",
               "acknowledgment": "acknowledgement", "noninfringement": "non infringement"}
_WORD = re.compile(r"[a-z0-9]+")
# The GNU Affero licence is the GNU GPL 3.0 with a network clause: told apart by its title.
_AFFERO = "gnu affero general public license"


@dataclass(frozen=True)
class TextMatch:
    """One reference licence found in a text: where (in words), how much of it, how closely."""

    spdx: str
    start: int
    end: int
    cover: float  # share of the reference's five-word runs found in the stretch
    score: float  # harmonic mean of cover and the stretch's density of matching runs


def words(text: str) -> list[str]:
    """The text as SPDX-normalised words: lower case, no punctuation, equivalent spellings merged."""
    flat = text.lower().replace("\u2019", "'").replace("'", "").replace("&", " and ")
    out: list[str] = []
    for w in _WORD.findall(flat):
        out.extend(_EQUIVALENT.get(w, w).split())
    return out


def _runs(ws: list[str]) -> list[str]:
    return [" ".join(ws[i:i + _RUN]) for i in range(len(ws) - _RUN + 1)]


@functools.lru_cache(maxsize=1)
def _index() -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
    """Every five-word run of the references -> the references holding it; and each one's run count."""
    index: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for spdx in _REFERENCES:
        if spdx == "AGPL-3.0-only":
            continue  # recognised through GPL-3.0's text and its own title
        raw = pkgutil.get_data("wheelferry.offline", f"licence-texts/{spdx}.txt") or b""
        runs = set(_runs(words(raw.decode("utf-8"))))
        sizes[spdx] = len(runs)
        for r in runs:
            index.setdefault(r, []).append(spdx)
    return {k: tuple(v) for k, v in index.items()}, sizes


def _stretches(positions: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for p in positions:
        if out and p - out[-1][-1] <= _GAP:
            out[-1].append(p)
        else:
            out.append([p])
    return out


def _overlap(a: TextMatch, b: TextMatch) -> bool:
    shared = min(a.end, b.end) - max(a.start, b.start)
    return shared > 0.5 * min(a.end - a.start, b.end - b.start)


def match_texts(text: str) -> list[TextMatch]:
    """Every reference licence found in *text*, in the order they appear."""
    ws = words(text)
    runs = _runs(ws)
    index, sizes = _index()
    hits: dict[str, list[int]] = {}
    for i, r in enumerate(runs):
        for spdx in index.get(r, ()):
            hits.setdefault(spdx, []).append(i)
    found = []
    for spdx, positions in hits.items():
        for stretch in _stretches(positions):
            cover = len({runs[i] for i in stretch}) / sizes[spdx]
            if cover < _MIN_COVER:
                continue
            density = len(stretch) / (stretch[-1] - stretch[0] + 1)
            score = 2 * cover * density / (cover + density)
            if score >= _MIN_SCORE:
                found.append(TextMatch(spdx, stretch[0], stretch[-1] + _RUN, round(cover, 3), round(score, 3)))
    kept: list[TextMatch] = []
    for m in sorted(found, key=lambda m: (-m.score, m.start)):
        if not any(_overlap(m, k) for k in kept):
            kept.append(m)
    out = []
    for m in sorted(kept, key=lambda m: m.start):
        if m.spdx == "GPL-3.0-only" and _AFFERO in " ".join(ws[max(0, m.start - 40):m.start + 200]):
            m = TextMatch("AGPL-3.0-only", m.start, m.end, m.cover, m.score)
        out.append(m)
    return out


def licence_of_texts(matches: list[TextMatch]) -> TextMatch | None:
    """The licence a text (or a wheel's licence files, in order) grants: the first found.

    Except that the GNU LGPL 3.0 is a set of permissions added to the GNU GPL 3.0 and
    ships beside its text: both together are the LGPL.
    """
    if not matches:
        return None
    lesser = next((m for m in matches if m.spdx == "LGPL-3.0-only"), None)
    if lesser and any(m.spdx == "GPL-3.0-only" for m in matches):
        return lesser
    return matches[0]
