"""Licences recognised by their whole text: real licence files of real wheels, the GNU family included."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.wheels import build_wheel
from wheelferry.offline.audit import read_metadata
from wheelferry.offline.licences import licence_in_text, licence_of_wheel
from wheelferry.offline.licencetext import match_texts, words

TEXTS = Path(__file__).parent / "data" / "licences" / "texts"


def _text(wheel: str, name: str) -> str:
    return gzip.decompress((TEXTS / wheel / f"{name}.gz").read_bytes()).decode("utf-8")


def _licence_only_wheel(tmp_path: Path, recorded: str, files: list[str]) -> Path:
    """A wheel whose METADATA names its licence files and nothing else about its licence."""
    name, version = recorded.rsplit("-", 1)
    meta = f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n" + "".join(
        f"License-File: {f}\n" for f in files)
    members = {f"{name}-{version}.dist-info/licenses/{f}": _text(recorded, f).encode() for f in files}
    return build_wheel(tmp_path, name, version, metadata=meta.encode(), extra_members=members)


# Each wheel's own declaration is in tests/data/licences/README.md.  From a GNU licence's
# text alone the version is known but not whether "or later" was granted: the -only id.
@pytest.mark.parametrize(("recorded", "files", "spdx", "decided_by"), [
    ("mutagen-1.48.1", ["COPYING"], "GPL-2.0-only", "COPYING"),
    ("paramiko-5.1.0", ["LICENSE"], "LGPL-2.1-only", "LICENSE"),
    ("python_telegram_bot-22.8", ["LICENSE", "LICENSE.dual", "LICENSE.lesser"], "LGPL-3.0-only", "LICENSE.dual"),
    ("ultralytics-8.4.190", ["LICENSE"], "AGPL-3.0-only", "LICENSE"),
    ("hypothesis-6.170.17", ["LICENSE.txt"], "MPL-2.0", "LICENSE.txt"),
    ("requests-2.34.2", ["LICENSE"], "Apache-2.0", "LICENSE"),
    ("urllib3-2.8.0", ["LICENSE.txt"], "MIT", "LICENSE.txt"),
    ("resolvelib-1.2.1", ["LICENSE"], "ISC", "LICENSE"),
    ("idna-3.20", ["LICENSE.md"], "BSD-3-Clause", "LICENSE.md"),
    ("pygments-2.21.0", ["LICENSE"], "BSD-2-Clause", "LICENSE"),
    ("mypy-2.4.1", ["LICENSE"], "MIT", "LICENSE"),
])
def test_a_wheel_that_ships_only_its_licence_files(tmp_path: Path, recorded: str, files: list[str], spdx: str,
                                                   decided_by: str) -> None:
    wheel = _licence_only_wheel(tmp_path, recorded, files)
    lic = licence_of_wheel(wheel, read_metadata(wheel))
    assert (lic.spdx, lic.source) == (spdx, "License-File")
    assert lic.evidence.startswith(f"licenses/{decided_by}: the text of {spdx} (")
    assert "of its reference text" in lic.evidence


def test_gpl_and_lgpl_3_side_by_side_are_the_lgpl(tmp_path: Path) -> None:
    gpl = _text("python_telegram_bot-22.8", "LICENSE")
    lesser = _text("python_telegram_bot-22.8", "LICENSE.lesser")
    assert licence_in_text(gpl) == "GPL-3.0-only" and licence_in_text(lesser) == "LGPL-3.0-only"
    assert licence_in_text(gpl + "\n\n" + lesser) == "LGPL-3.0-only"
    # In separate files too: the GPL's file comes first, the LGPL decides.
    wheel = _licence_only_wheel(tmp_path, "python_telegram_bot-22.8", ["LICENSE", "LICENSE.lesser"])
    lic = licence_of_wheel(wheel, read_metadata(wheel))
    assert lic.spdx == "LGPL-3.0-only"
    assert lic.evidence.endswith("beside licenses/LICENSE: the GPL-3.0 it supplements")


def test_the_affero_licence_is_told_from_the_gpl_it_extends() -> None:
    affero = _text("ultralytics-8.4.190", "LICENSE")
    gpl = _text("python_telegram_bot-22.8", "LICENSE")
    assert [m.spdx for m in match_texts(affero)] == ["AGPL-3.0-only"]
    assert [m.spdx for m in match_texts(gpl)] == ["GPL-3.0-only"]


def test_bsd_2_and_3_clause_are_told_apart() -> None:
    three = _text("idna-3.20", "LICENSE.md")
    two = _text("pygments-2.21.0", "LICENSE")
    assert [m.spdx for m in match_texts(three)] == ["BSD-3-Clause"]
    assert [m.spdx for m in match_texts(two)] == ["BSD-2-Clause"]


def test_a_file_of_several_licences_is_the_first_and_bundled_ones_are_listed() -> None:
    found = [m.spdx for m in match_texts(_text("mypy-2.4.1", "LICENSE"))]
    assert found[0] == "MIT" and len(found) >= 2
    assert licence_in_text(_text("mypy-2.4.1", "LICENSE")) == "MIT"


def test_an_unrecognised_licence_before_bundled_ones_is_not_taken_for_them(tmp_path: Path) -> None:
    # pyramid's own licence (Repoze, no SPDX id) comes first; a BSD and an MIT text follow it.
    text = _text("pyramid-2.1", "LICENSE.txt")
    assert [m.spdx for m in match_texts(text)][-1] == "MIT"
    assert licence_in_text(text) is None
    wheel = _licence_only_wheel(tmp_path, "pyramid-2.1", ["LICENSE.txt"])
    assert licence_of_wheel(wheel, read_metadata(wheel)).spdx is None


def test_a_fragment_of_a_licence_is_not_that_licence() -> None:
    gpl = _text("mutagen-1.48.1", "COPYING")
    assert licence_in_text(gpl) == "GPL-2.0-only"
    half = " ".join(gpl.split()[: len(gpl.split()) // 2])
    assert match_texts(half) == [] and licence_in_text(half) is None


def test_layout_spelling_and_quotes_do_not_matter() -> None:
    mit = _text("urllib3-2.8.0", "LICENSE.txt")
    reflowed = " ".join(mit.split()).replace('"', "\u201c").replace("LICENSE", "LICENCE").upper()
    assert licence_in_text(reflowed) == "MIT"
    assert words("Licence  \u2019s\n(a) Organisation") == words("license 's a) organization")


@given(st.text(max_size=3000))
def test_any_text_is_matched_without_error(text: str) -> None:
    for m in match_texts(text):
        assert 0.8 <= m.cover <= 1 and m.start < m.end


def test_the_offline_kit_recognises_texts_on_python_3_9(tmp_path: Path) -> None:
    import subprocess

    from tests.support.pythons import python39
    from wheelferry.pyz import write_offline_pyz

    py = python39()
    if py is None:
        pytest.skip("no pyenv Python 3.9 on this machine")
    kit = write_offline_pyz(tmp_path / "wheelferry-offline.pyz")
    licence = tmp_path / "COPYING"
    licence.write_text(_text("ultralytics-8.4.190", "LICENSE"), encoding="utf-8")
    code = (f"import sys; sys.path.insert(0, {str(kit)!r}); "
            "from wheelferry.offline.licences import licence_in_text; "
            f"print(licence_in_text(open({str(licence)!r}, encoding='utf-8').read()))")
    proc = subprocess.run([py, "-I", "-S", "-c", code], capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout.strip()) == (0, "AGPL-3.0-only"), proc.stderr
