"""A project page read for a few of its files costs a fraction of reading all of them.

Index pages list every file of every release (tens of thousands for some projects)
while a lock needs the few wheels that fit its targets, so ``read_json_page`` names
every file up front and makes a DistFile only for the names asked for.  This takes
the recorded numpy page, repeats its entries as *N* releases, and times, alternating
(A B A B), the reading a lock does (``read_json_page(...).dists(keep)`` with *keep*
admitting one release's linux wheels) against the whole reading (``.dists()``, every
file made), with the peak memory of each (tracemalloc, in a run of its own).  If the
files were all made while the page is read, the ratio would be near 1.

    .venv/bin/python benchmarks/lazy_pages.py [--releases 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from wheelferry.pages import read_json_page  # noqa: E402

URL = "https://mirror.example/simple/numpy/"


def _page(releases: int) -> bytes:
    doc = json.loads((ROOT / "tests" / "data" / "pages" / "numpy.json").read_bytes())
    files: list[dict[str, Any]] = []
    for i in range(releases):
        for entry in doc["files"]:
            if not isinstance(entry, dict) or not entry.get("filename") or not entry.get("url"):
                continue
            name = entry["filename"].replace("1.26.4", f"1.{i}.0").replace("1.22.0", f"0.{i}.0")
            files.append({**entry, "filename": name, "url": entry["url"].rsplit("/", 1)[0] + "/" + name})
    return json.dumps({**doc, "files": files}).encode()


def _few(name: str) -> bool:
    return name.startswith("numpy-1.7.0-") and "manylinux" in name


def _read(body: bytes, keep: Callable[[str], bool] | None) -> int:
    return len(read_json_page(body, URL, source="bench").dists(keep))


def _seconds(body: bytes, keep: Callable[[str], bool] | None) -> float:
    started = time.perf_counter()
    _read(body, keep)
    return time.perf_counter() - started


def _peak(body: bytes, keep: Callable[[str], bool] | None) -> int:
    tracemalloc.start()
    try:
        _read(body, keep)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--releases", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    body = _page(args.releases)
    few, every = _read(body, _few), _read(body, None)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores; "
          f"a page of {every} files ({len(body) / 1e6:.1f} MB), {few} asked for")
    lazy: list[float] = []
    whole: list[float] = []
    for _ in range(args.rounds):
        lazy.append(_seconds(body, _few))
        whole.append(_seconds(body, None))
    a, b = statistics.median(lazy), statistics.median(whole)
    pa, pb = _peak(body, _few), _peak(body, None)
    print(f"{few:>6} files asked for: {a * 1000:8.1f} ms, peak {pa / 1e6:6.1f} MB (median of {args.rounds})")
    print(f"{every:>6} files (all):      {b * 1000:8.1f} ms, peak {pb / 1e6:6.1f} MB")
    print(f"ratio: x{a / b:.2f} time, x{pa / pb:.2f} peak memory of reading every file")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
