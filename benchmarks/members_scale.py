"""Verify time against the number of bundle members: linear work doubles with the count.

A manifest lists *N* empty wheels and the tar carries every one of them (no SHA256SUMS, so
verify refuses the bundle at the end, after checking every member).  The 16 MiB manifest cap
holds about 100,000 entries; quadratic work would take tens of minutes there, linear work
seconds.  Prints the seconds per count, the ratio to the previous count and the load average.

    .venv/bin/python benchmarks/members_scale.py [--counts 12500,25000,50000,100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.support.bundles import many_members_bundle  # noqa: E402
from wheelferry.errors import VerificationError  # noqa: E402
from wheelferry.offline.verify import verify_bundle  # noqa: E402


def _bundle(root: Path, count: int) -> Path:
    return many_members_bundle(root / f"demo-{count}.tar", count, tool="wheelferry-bench")


def _verify_seconds(tar: Path, state: Path) -> float:
    started = time.perf_counter()
    try:
        verify_bundle(tar, keyring=None, trusted=[], allow_unsigned=True, state_dir=state)
    except VerificationError as exc:
        if "SHA256SUMS" not in str(exc):
            raise SystemExit(f"unexpected refusal: {exc}") from None
    else:
        raise SystemExit("a bundle without SHA256SUMS was accepted")
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="12500,25000,50000,100000")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        previous: tuple[float, int] | None = None
        for count in counts:
            tar = _bundle(root, count)
            median = statistics.median(_verify_seconds(tar, root / "state") for _ in range(args.rounds))
            ratio = (f"  x{median / previous[0]:.2f} for x{count / previous[1]:.0f} members"
                     if previous else "")
            print(f"{count:>7} members: {median:6.2f} s (median of {args.rounds}){ratio}", flush=True)
            previous = (median, count)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
