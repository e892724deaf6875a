"""Other interpreters on this machine (pyenv), for the tests that must run on Python 3.9."""

from __future__ import annotations

from pathlib import Path


def pyenv_python(series: str) -> str | None:
    """The newest pyenv-managed Python of *series* (``~/.pyenv/versions/SERIES*``), or None."""
    root = Path.home() / ".pyenv" / "versions"
    found = sorted(root.glob(f"{series}*/bin/python")) if root.is_dir() else []
    return str(found[-1]) if found else None


def python39() -> str | None:
    """The newest pyenv-managed Python 3.9, or None."""
    return pyenv_python("3.9.")
