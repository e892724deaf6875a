"""Capture an interpreter exactly: its complete marker environment and wheel-tag ladder.

The capture is read by that interpreter itself through the kit's own vendored
``packaging`` (put on its path for the probe only), so no guess about glibc,
musl or macOS versions is involved and the interpreter needs no pip: a pip-less
Python 3.9, or one whose pip 20.2 knows no PEP 600 tag, still reports
``manylinux_2_28``.  An interpreter too old for the kit's packaging falls back to
its pip's, then to an installed ``packaging``.  The JSON shape is
pex's "complete platform" (``marker_environment`` + ``compatible_tags``) plus a
``name``, so either tool's captures work as ``--target @FILE``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from wheelferry.errors import UsageError, WheelferryError
from wheelferry.files import atomic_write
from wheelferry.jsontypes import JSONObject

CAPTURE_FORMAT = 1

# Runs inside the interpreter being described: the standard library plus the kit's packaging.
_SCRIPT = r"""
import json, platform, sys
sys.path.insert(0, sys.argv[1])
try:
    from packaging import tags, markers
except (ImportError, SyntaxError):
    sys.path.pop(0)
    for m in [m for m in sys.modules if m == "packaging" or m.startswith("packaging.")]:
        del sys.modules[m]
    try:
        from pip._vendor.packaging import tags, markers
    except ImportError:
        from packaging import tags, markers
env = markers.default_environment()
libc = platform.libc_ver()
print(json.dumps({
    "marker_environment": env,
    "compatible_tags": [str(t) for t in tags.sys_tags()],
    "python": sys.version.split()[0],
    "executable": sys.executable,
    "libc": list(libc),
}))
"""


def vendor_root() -> str:
    """Where the kit's vendored libraries are importable from: ``_vendor`` here, or the kit's root."""
    import wheelferry

    package = Path(wheelferry.__file__).parent
    if (package / "_vendor" / "packaging" / "tags.py").is_file():
        return str(package / "_vendor")
    return str(package.parent)  # inside wheelferry-offline.pyz: the archive itself


def describe_interpreter(python: str = sys.executable,
                         run: Callable[..., Any] = subprocess.run) -> JSONObject:  # Any: subprocess.run
    """Marker environment and compatible tags of *python*, as that interpreter reports them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PYTHONNOUSERSITE"] = "1"
    try:
        proc = run([python, "-c", _SCRIPT, vendor_root()], capture_output=True, text=True, env=env, timeout=120)
    except FileNotFoundError:
        raise UsageError(f"no interpreter at {python}") from None
    except OSError as exc:
        raise UsageError(f"cannot run {python}: {exc.strerror}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise WheelferryError(f"{python} could not describe itself: {last}",
                              hint="is it a working CPython or PyPy 3?")
    data: JSONObject = json.loads(proc.stdout)
    return data


def default_capture_name(data: JSONObject) -> str:
    """``<hostname>-cpXY`` without dots, e.g. ``factory7-cp311``."""
    env = data["marker_environment"]
    host = re.sub(r"[^A-Za-z0-9_-]+", "-", platform.node().split(".")[0]) or "host"
    return f"{host}-cp{env['python_version'].replace('.', '')}"


def capture(python: str = sys.executable, name: str | None = None,
            run: Callable[..., Any] = subprocess.run) -> JSONObject:  # Any: subprocess.run
    """A capture document for *python*, ready to be written as JSON."""
    data = describe_interpreter(python, run)
    return {
        "format": CAPTURE_FORMAT,
        "name": name or default_capture_name(data),
        "marker_environment": data["marker_environment"],
        "compatible_tags": data["compatible_tags"],
        "python": data["python"],
        "libc": data["libc"],
    }


def write_capture(doc: JSONObject, out: Path) -> None:
    """Write the capture JSON atomically."""
    atomic_write(out, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8"))
