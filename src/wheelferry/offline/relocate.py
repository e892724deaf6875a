"""Make a virtual environment built at one path correct at another (its final path).

Standard library only.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import subprocess
from pathlib import Path

from wheelferry.errors import InstallError
from wheelferry.interrupt import checkpoint
from wheelferry.offline.envchanges import site_packages


def _bin_dir(env: Path) -> Path:
    return env / ("Scripts" if (env / "Scripts").is_dir() and not (env / "bin").is_dir() else "bin")


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _rewrite_records(env: Path, changed: set[Path]) -> None:
    """Put the new hash and size of every *changed* file into the RECORD that lists it."""
    if not changed:
        return
    targets = {os.path.normcase(os.path.abspath(p)) for p in changed}
    for site in site_packages(env):
        for record in site.glob("*.dist-info/RECORD"):
            try:
                rows = list(csv.reader(io.StringIO(record.read_text(encoding="utf-8"))))
            except (OSError, UnicodeDecodeError, csv.Error):
                continue
            touched = False
            for row in rows:
                if len(row) < 3 or not row[1]:
                    continue
                full = os.path.normcase(os.path.abspath(os.path.join(site, row[0])))
                if full in targets:
                    data = Path(full).read_bytes()
                    row[1], row[2] = _record_hash(data), str(len(data))
                    touched = True
            if touched:
                out = io.StringIO()
                csv.writer(out, lineterminator="\n").writerows(rows)
                record.write_text(out.getvalue(), encoding="utf-8")


def relocate(staging: Path, final: Path, *, bytecode: bool = True) -> list[Path]:
    """Make an environment built at *staging* correct at *final*; returns the files rewritten.

    A venv is not relocatable: scripts carry the absolute interpreter path, the
    activate scripts and pyvenv.cfg name the directory, and bytecode records its
    source path.  Every such mention of *staging* becomes *final* (RECORD hashes
    follow); bytecode naming *staging* is compiled again by the environment's own
    interpreter with its recorded path under *final*.
    """
    old, new = os.fsencode(str(staging)), os.fsencode(str(final))
    changed: set[Path] = set()
    candidates = [staging / "pyvenv.cfg"]
    bindir = _bin_dir(staging)
    if bindir.is_dir():
        candidates += sorted(bindir.iterdir())
    for path in candidates:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 4 * 1024 * 1024:
            continue
        data = path.read_bytes()
        if old in data:
            mode = path.stat().st_mode
            path.write_bytes(data.replace(old, new))
            os.chmod(path, mode)
            changed.add(path)
    if bytecode:
        changed |= _recompile(staging, final, old)
    _rewrite_records(staging, changed)
    return sorted(changed)


def _recompile(staging: Path, final: Path, old: bytes) -> set[Path]:
    stale: list[Path] = []
    for site in site_packages(staging):
        for pyc in site.rglob("*.pyc"):
            try:
                if old in pyc.read_bytes():
                    stale.append(pyc)
            except OSError:
                continue
    sources = []
    for pyc in stale:
        src = pyc.parent.parent / (pyc.name.split(".", 1)[0] + ".py")
        if pyc.parent.name == "__pycache__" and src.is_file():
            sources.append(str(src))
    if not sources:
        return set()
    checkpoint("compile")
    python = _bin_dir(staging) / ("python.exe" if os.name == "nt" else "python")
    proc = subprocess.run([str(python), "-m", "compileall", "-q", "-f", "-j", "0", "-s", str(staging),
                           "-p", str(final), "-i", "-"], input="\n".join(sources) + "\n",
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise InstallError(f"could not compile bytecode for {final}: "
                           f"{(proc.stdout + proc.stderr).strip().splitlines()[-1:] or proc.returncode}")
    return set(stale)
