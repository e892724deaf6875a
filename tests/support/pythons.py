"""Other interpreters on this machine (pyenv), for the tests that must run on Python 3.9."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def pyenv_versions() -> list[Path]:
    """The pyenv ``versions`` directories here: ``$PYENV_ROOT/versions``, then ``~/.pyenv/versions``."""
    roots = [Path(os.environ["PYENV_ROOT"])] if os.environ.get("PYENV_ROOT") else []
    roots.append(Path.home() / ".pyenv")
    seen: list[Path] = []
    for root in roots:
        versions = root / "versions"
        if versions.is_dir() and versions.resolve() not in [s.resolve() for s in seen]:
            seen.append(versions)
    return seen


def pyenv_python(series: str) -> str | None:
    """The newest pyenv-managed Python of *series* (``VERSIONS/SERIES*/bin/python``), or None."""
    found = sorted(p for root in pyenv_versions() for p in root.glob(f"{series}*/bin/python"))
    return str(found[-1]) if found else None


def python39() -> str | None:
    """The newest pyenv-managed Python 3.9, or None."""
    return pyenv_python("3.9.")


def pipless_venv(path: Path) -> Path:
    """A new venv at *path* without pip in it (ensurepip costs seconds per venv); its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def pip_for(python: str | Path) -> list[str]:
    """The command line of real pip (the suite's own) working on *python*'s environment (``pip --python``).

    pip runs under that interpreter and sees its environment as its own pip would, so a venv
    needs no copy of pip where pip is a tool of the test rather than the thing tested.
    """
    return [sys.executable, "-m", "pip", "--python", str(python)]
