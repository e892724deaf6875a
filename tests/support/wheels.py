"""Real tiny wheels built in tmp_path (PEP 427), for loopback indexes and installs."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable

import pytest
from packaging.utils import canonicalize_name

FIXED_DATE = (2020, 1, 1, 0, 0, 0)


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def build_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    extras: Mapping[str, Sequence[str]] | None = None,
    requires_python: str | None = None,
    tag: str = "py3-none-any",
    license: str | None = "MIT",
    license_expression: str | None = None,
    classifiers: Sequence[str] = (),
    files: Mapping[str, bytes] | None = None,
    padding: int = 0,
    extra_members: Mapping[str, bytes] | None = None,
    extra_metadata: Sequence[str] = (),
    metadata: bytes | None = None,
) -> Path:
    """Write ``name-version-tag.whl`` into *directory* and return its path.

    The wheel has a module ``<name>/__init__.py`` defining ``__version__`` so an
    installed copy can be imported; *padding* adds incompressible bytes to make
    the file a given size; *extra_members* adds raw zip members (e.g. hostile names);
    *metadata* replaces the METADATA written from the other arguments, byte for byte.
    """
    directory.mkdir(parents=True, exist_ok=True)
    dist = canonicalize_name(name).replace("-", "_")
    dist_info = f"{dist}-{version}.dist-info"
    meta = [
        "Metadata-Version: 2.4" if license_expression else "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
    ]
    if license_expression:
        meta.append(f"License-Expression: {license_expression}")
    elif license:
        meta.append(f"License: {license}")
    meta += [f"Classifier: {c}" for c in classifiers]
    meta += list(extra_metadata)
    if requires_python:
        meta.append(f"Requires-Python: {requires_python}")
    for req in requires:
        meta.append(f"Requires-Dist: {req}")
    for extra, reqs in (extras or {}).items():
        meta.append(f"Provides-Extra: {extra}")
        for req in reqs:
            sep = " and " if ";" in req else "; "
            if ";" in req:
                base, marker = req.split(";", 1)
                meta.append(f'Requires-Dist: {base.strip()}; ({marker.strip()}) and extra == "{extra}"')
            else:
                meta.append(f'Requires-Dist: {req}{sep}extra == "{extra}"')
    if metadata is None:
        metadata = ("\n".join(meta) + "\n").encode()
    members: dict[str, bytes] = {
        f"{dist}/__init__.py": f"__version__ = {version!r}\n".encode(),
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: wheelferry-tests\nRoot-Is-Purelib: "
            f"{'true' if tag.endswith('-any') else 'false'}\nTag: {tag}\n"
        ).encode(),
    }
    for rel, data in (files or {}).items():
        members[rel] = data
    if padding:
        members[f"{dist}/_padding.bin"] = hashlib.shake_256(f"{name}{version}".encode()).digest(padding)
    record_lines = [f"{p},{_record_hash(d)},{len(d)}" for p, d in members.items()]
    record_lines.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = ("\n".join(record_lines) + "\n").encode()
    path = directory / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel, data in list(members.items()) + list((extra_members or {}).items()):
            info = zipfile.ZipInfo(rel, date_time=FIXED_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED if rel.endswith("_padding.bin") else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture
def make_wheel(tmp_path: Path) -> Callable[..., Path]:
    """``make_wheel(name, version, **kw)`` builds a wheel into ``tmp_path/wheels``."""
    def _make(name: str, version: str, directory: Path | None = None, **kw: object) -> Path:
        return build_wheel(directory or tmp_path / "wheels", name, version, **kw)  # type: ignore[arg-type]
    return _make
