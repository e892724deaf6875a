"""What splitting the largest wheel into Range requests gains when every byte is also hashed.

    .venv/bin/python benchmarks/split_probe.py LOCK_DIR [--reps 5] [--ranges 1 2 3 4]

Takes the largest wheel of a wheelferry lock and downloads it, alternating the ways
(A B C A B C), into a scratch file under benchmarks/.work:

* ``inline``: one stream, hashed on the reading thread;
* ``thread``: one stream, each chunk handed to a hashing thread (the fetcher's way for
  large wheels, ``wheelferry.cache.BackgroundHash``);
* ``ranges=K``: K Range requests written at their offsets (``pwrite``) by K threads,
  while one more thread hashes the file in order, reading back what is already there.

Prints the median seconds of each way and checks every digest against the lock.  A probe
for deciding the fetcher's design, not a stage of ``benchmarks/run``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from wheelferry.cache import BackgroundHash  # noqa: E402
from wheelferry.http import make_session  # noqa: E402
from wheelferry.lock import read_lock_dir  # noqa: E402

CHUNK = 512 << 10


def inline(session: object, url: str, size: int, fd: int, h: object = None) -> str:
    h = h or hashlib.sha256()
    resp = session.get(url, headers={"Accept-Encoding": "identity"}, stream=True)  # type: ignore[attr-defined]
    resp.raise_for_status()
    pos = 0
    for chunk in resp.iter_content(CHUNK):
        os.pwrite(fd, chunk, pos)
        h.update(chunk)  # type: ignore[attr-defined]
        pos += len(chunk)
    return h.hexdigest()  # type: ignore[attr-defined]


def thread(session: object, url: str, size: int, fd: int) -> str:
    return inline(session, url, size, fd, BackgroundHash())


def ranges(k: int) -> Callable[[object, str, int, int], str]:
    def run(session: object, url: str, size: int, fd: int) -> str:
        bounds = [size * i // k for i in range(k + 1)]
        ends = bounds[:-1].copy()
        cond = threading.Condition()
        errors: list[BaseException] = []

        def segment(i: int) -> None:
            try:
                a, b = bounds[i], bounds[i + 1]
                resp = session.get(url, stream=True, headers={  # type: ignore[attr-defined]
                    "Range": f"bytes={a}-{b - 1}", "Accept-Encoding": "identity"})
                if resp.status_code != 206:
                    raise RuntimeError(f"HTTP {resp.status_code} to a Range request")
                pos = a
                for chunk in resp.iter_content(CHUNK):
                    os.pwrite(fd, chunk, pos)
                    pos += len(chunk)
                    with cond:
                        ends[i] = pos
                        cond.notify_all()
            except BaseException as exc:  # noqa: BLE001 (re-raised by the caller)
                errors.append(exc)
                with cond:
                    ends[i] = bounds[i + 1]
                    cond.notify_all()

        h = hashlib.sha256()

        def hasher() -> None:
            pos, i = 0, 0
            while pos < size:
                while pos >= bounds[i + 1]:
                    i += 1
                with cond:
                    while ends[i] <= pos:
                        cond.wait()
                    end = ends[i]
                while pos < end:
                    data = os.pread(fd, min(end - pos, 1 << 20), pos)
                    h.update(data)
                    pos += len(data)

        threads = [threading.Thread(target=segment, args=(i,)) for i in range(k)]
        threads.append(threading.Thread(target=hasher))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return h.hexdigest()

    return run


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("lock", type=Path)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--ranges", type=int, nargs="+", default=[1, 2, 3, 4])
    args = p.parse_args()
    lock = read_lock_dir(args.lock)
    wheel = max(lock.wheels.values(), key=lambda w: w.size or 0)
    ways: dict[str, Callable[[object, str, int, int], str]] = {"inline": inline, "thread": thread}
    ways.update({f"ranges={k}": ranges(k) for k in args.ranges})
    times: dict[str, list[float]] = {name: [] for name in ways}
    scratch = HERE / ".work"
    scratch.mkdir(exist_ok=True)
    print(f"{wheel.filename}: {(wheel.size or 0) / 1e6:.0f} MB, {args.reps} run(s) each")
    for _ in range(args.reps):
        for name, way in ways.items():
            session = make_session([])
            with tempfile.NamedTemporaryFile(dir=scratch) as f:
                os.sync()
                started = time.perf_counter()
                digest = way(session, wheel.urls[0], wheel.size or 0, f.fileno())
                times[name].append(time.perf_counter() - started)
            if digest != wheel.sha256:
                print(f"{name}: digest mismatch", file=sys.stderr)
                return 1
    for name, ts in times.items():
        print(f"{name:10} median {statistics.median(ts):.2f} s  (min {min(ts):.2f}, max {max(ts):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
