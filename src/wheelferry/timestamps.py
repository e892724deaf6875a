"""Times as wheelferry writes and reads them: RFC 3339 in UTC with a ``Z`` (standard library only).

Written: :func:`utc_text` (``2026-12-03T14:23:37Z``: MANIFEST.json, the replay state, gpg's
signature times).  Read: :func:`parse_utc`, which takes what indexes serve as a release's
``upload-time`` (PEP 700: ISO 8601, maybe with fractions) as well as wheelferry's own text.
"""

from __future__ import annotations

import datetime as dt
import re

UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_FRACTION = re.compile(r"\.(\d+)")


def utc_text(when: float | dt.datetime | None = None) -> str:
    """*when* (epoch seconds or an aware datetime; None: now) as ``YYYY-MM-DDTHH:MM:SSZ``."""
    if when is None:
        when = dt.datetime.now(dt.timezone.utc)
    elif not isinstance(when, dt.datetime):
        when = dt.datetime.fromtimestamp(when, dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).strftime(UTC_FORMAT)


def parse_utc(text: str) -> dt.datetime | None:
    """An ISO 8601 time or date as an aware datetime (no offset: UTC); None if it is not one.

    Fractions of a second are kept to the microsecond (written as six digits first: Python
    3.9's ``fromisoformat`` reads only 3 or 6); ``Z`` is read as ``+00:00``.
    """
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "00000")[:6], text.strip())
    text = text.replace("Z", "+00:00").replace("z", "+00:00")
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)


def upload_time_z(text: str | None) -> str | None:
    """A release's upload time as PEP 700 writes it (UTC, ``Z``), or None when it is not UTC text."""
    if not text:
        return None
    return text.replace("+00:00", "Z") if text.endswith(("Z", "+00:00")) else None
