"""Other interpreters on this machine (pyenv), for the tests that must run on Python 3.9."""

from __future__ import annotations

from pathlib import Path


def python39() -> str | None:
    """The newest pyenv-managed Python 3.9 (``~/.pyenv/versions/3.9*``), or None."""
    root = Path.home() / ".pyenv" / "versions"
    found = sorted(root.glob("3.9*/bin/python3")) if root.is_dir() else []
    return str(found[-1]) if found else None
