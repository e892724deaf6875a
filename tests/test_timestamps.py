"""wheelferry.timestamps: the one writer and reader of times, also on the offline kit's Python 3.9."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.pythons import python39
from wheelferry.timestamps import parse_utc, upload_time_z, utc_text

SRC = Path(__file__).resolve().parent.parent / "src"
UTC = dt.timezone.utc


@given(st.integers(min_value=0, max_value=253402300799))
def test_written_times_read_back(epoch: int) -> None:
    text = utc_text(epoch)
    assert text.endswith("Z") and len(text) == 20
    parsed = parse_utc(text)
    assert parsed is not None and parsed.timestamp() == epoch


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-03-01T12:00:00Z", dt.datetime(2024, 3, 1, 12, tzinfo=UTC)),
    ("2024-03-01T12:00:00.123456789Z", dt.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)),
    ("2024-03-01T12:00:00.5+00:00", dt.datetime(2024, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)),
    ("2024-03-01T14:00:00+02:00", dt.datetime(2024, 3, 1, 12, tzinfo=UTC)),
    ("2024-03-01T12:00:00", dt.datetime(2024, 3, 1, 12, tzinfo=UTC)),  # no offset: UTC
    ("2024-03-01", dt.datetime(2024, 3, 1, tzinfo=UTC)),
])
def test_upload_times_as_indexes_serve_them(text: str, expected: dt.datetime) -> None:
    assert parse_utc(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-03-01T25:00:00Z"])
def test_what_is_no_time_is_none(text: str) -> None:
    assert parse_utc(text) is None


def test_pep700_form_only_for_utc_text() -> None:
    assert upload_time_z("2024-03-01T12:00:00+00:00") == "2024-03-01T12:00:00Z"
    assert upload_time_z("2024-03-01T12:00:00.1Z") == "2024-03-01T12:00:00.1Z"
    assert upload_time_z("2024-03-01T12:00:00+02:00") is None
    assert upload_time_z(None) is None


def test_same_answers_on_python_3_9() -> None:
    py = python39()
    if py is None:
        pytest.skip("no pyenv Python 3.9 here ($PYENV_ROOT/versions or ~/.pyenv/versions)")
    code = ("from wheelferry.timestamps import parse_utc, utc_text; "
            "print(parse_utc('2024-03-01T12:00:00.123456789Z').isoformat(), parse_utc('2024-03-01').isoformat(), "
            "parse_utc('nope'), utc_text(86400))")
    out = subprocess.run([py, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(SRC)!r}); {code}"],
                         capture_output=True, text=True, check=True, env={"PATH": os.environ.get("PATH", "")})
    assert out.stdout.split() == ["2024-03-01T12:00:00.123456+00:00", "2024-03-01T00:00:00+00:00", "None",
                                  "1970-01-02T00:00:00Z"]
