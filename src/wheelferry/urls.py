"""URL helpers shared by both halves: credentials are used, never shown.

Standard library only.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_CRED_IN_TEXT = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def _replace_userinfo(url: str, userinfo: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, userinfo + host, parts.path, parts.query, parts.fragment))


def redact_url(url: str) -> str:
    """Return *url* with any user:password replaced by ``***``."""
    return _replace_userinfo(url, "***@")


def strip_credentials(url: str) -> str:
    """Return *url* with user and password removed entirely (for files we write)."""
    return _replace_userinfo(url, "")


def redact_text(text: str) -> str:
    """Redact every ``scheme://user:pass@`` that appears anywhere in *text*."""
    return _CRED_IN_TEXT.sub(r"\g<scheme>***@", text)
