"""One big wheel unpacks faster with more workers: the install engine shares its members out.

An environment's biggest wheel (TensorFlow's, a CUDA library) would end an install
alone on one thread if each wheel were one task; the engine cuts the biggest wheels
into chunks of members, biggest first, so every worker writes part of it.  This
builds one wheel of *members* deflated members (text that deflates to about 3:4) and
installs it alone (no bytecode), alternating (A B A B), with one worker and with one
per core.  Prints the medians, their ratio and the load average.
With one task per wheel the ratio would be about 1; on an idle machine with *n*
cores the split brings it towards 1/n.

    .venv/bin/python benchmarks/unpack_split.py [--members 32] [--mib 4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.support.wheels import build_wheel  # noqa: E402
from wheelferry.offline.engine import default_workers, install_wheels  # noqa: E402


def _wheel(directory: Path, members: int, mib: int) -> Path:
    size = mib << 20
    # base64 of random bytes deflates to about 3:4 and inflates at Huffman speed, as code does.
    files = {f"big/part{i:03d}.txt": base64.encodebytes(os.urandom(size * 3 // 4))[:size] for i in range(members)}
    return build_wheel(directory, "big", "1.0", tag="cp311-cp311-linux_x86_64", files=files)


def _seconds(wheel: Path, root: Path, workers: int) -> float:
    shutil.rmtree(root, ignore_errors=True)
    scheme = {k: str(root / k) for k in ("purelib", "platlib", "headers", "scripts", "data")}
    started = time.perf_counter()
    install_wheels([wheel], scheme, sys.executable, compile=False, workers=workers)
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=32)
    ap.add_argument("--mib", type=int, default=4, help="MiB per member (default 4)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    cores = default_workers()
    with tempfile.TemporaryDirectory(dir=ROOT / "benchmarks") as tmp:
        wheel = _wheel(Path(tmp) / "w", args.members, args.mib)
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {cores} cores; "
              f"one wheel of {args.members} members, {wheel.stat().st_size / 2**20:.0f} MiB packed, "
              f"{args.members * args.mib} MiB unpacked")
        times: dict[int, list[float]] = {1: [], cores: []}
        for _ in range(args.rounds):
            for workers in times:
                times[workers].append(_seconds(wheel, Path(tmp) / "dest", workers))
        one, many = statistics.median(times[1]), statistics.median(times[cores])
        print(f"1 worker:      {one:6.2f} s (median of {args.rounds})")
        print(f"{cores} workers: {many:8.2f} s")
        print(f"ratio x{many / one:.2f}" + ("" if cores > 1 else " (one core: nothing to share)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
