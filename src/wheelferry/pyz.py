"""The offline kit: ``wheelferry-offline.pyz``, a stdlib zipapp of the air-gapped half.

It holds ``wheelferry/__init__.py``, the stdlib-only shared modules named in
``wheelferry.offline.SHARED_MODULES``, the whole ``wheelferry/offline`` package and,
at the archive's root, the pinned pure-Python libraries of ``wheelferry/_vendor``
(with their licence files), so ``python3 wheelferry-offline.pyz`` runs on a bare
Python 3.9+ and imports ``packaging``, ``installer`` and ``tomli`` from itself.
The bytes are deterministic: sorted members, one fixed date, fixed modes.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import wheelferry
from wheelferry.errors import BundleError
from wheelferry.files import atomic_path
from wheelferry.offline import SHARED_MODULES

SHEBANG = b"#!/usr/bin/env python3\n"
# The earliest date a zip header can hold; the kit's bytes must not depend on the clock.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Plain enough for any Python to parse, so an interpreter older than 3.9 says so in one line
# instead of failing on the syntax of the modules it would import.
MAIN = (
    '"""Entry point of wheelferry-offline.pyz: verify, install and audit on an isolated host."""\n'
    "import sys\n\n"
    "if sys.version_info < (3, 9):\n"
    "    sys.stderr.write('error: wheelferry-offline needs Python 3.9 or newer; %s is Python %d.%d\\n'\n"
    "                     % (sys.executable or 'this interpreter', sys.version_info[0], sys.version_info[1]))\n"
    "    sys.exit(1)\n\n"
    "from wheelferry.offline.cli import main\n\n"
    "sys.exit(main())\n"
)


def kit_members() -> dict[str, bytes]:
    """The files of the kit by archive path, read from the installed package."""
    package = Path(wheelferry.__file__).parent
    members = {"__main__.py": MAIN.encode(),
               "wheelferry/__init__.py": (package / "__init__.py").read_bytes()}
    for name in SHARED_MODULES:
        members[f"wheelferry/{name}.py"] = (package / f"{name}.py").read_bytes()
    for path in _files(package / "offline"):
        members[f"wheelferry/{path.relative_to(package).as_posix()}"] = path.read_bytes()
    vendor = package / "_vendor"
    for path in _files(vendor):
        rel = path.relative_to(vendor)
        if len(rel.parts) > 1:  # the libraries and their licences; not vendor.txt or __init__
            members[rel.as_posix()] = path.read_bytes()
    return members


def _files(root: Path) -> list[Path]:
    """Every file under *root* except compiled bytecode, sorted."""
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.relative_to(root).parts
                  and p.suffix not in (".pyc", ".pyo"))


def write_offline_pyz(out: Path) -> Path:
    """Write the offline kit to *out* atomically (mode 0755) and return *out*."""
    out = Path(out)
    try:
        with atomic_path(out, 0o755) as tmp, open(tmp, "wb") as f:
            # As the zipapp module does: the shebang line, then the zip (offsets account for it).
            f.write(SHEBANG)
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for name, data in sorted(kit_members().items()):
                    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
                    info.external_attr = 0o644 << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.create_system = 3  # Unix, whatever the building host
                    zf.writestr(info, data, compresslevel=9)
    except OSError as exc:
        raise BundleError(f"cannot write {out}: {exc.strerror}",
                          hint="choose a writable output directory with -o") from None
    return out
