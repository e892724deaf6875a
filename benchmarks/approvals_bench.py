#!/usr/bin/env python3
"""N of M verify against 1 of 1: does checking several signatures still read the bundle once?

Usage::

    .venv/bin/python benchmarks/approvals_bench.py [--mb 400] [--rounds 3]

Builds a bundle of incompressible wheels (--mb in total), throwaway ed25519 keys
in a temporary GNUPGHOME, then times ``wheelferry-offline verify`` (the command a
user runs, in a fresh process each time) alternately, round by round:

* 1-of-1: the builder's ``NAME.tar.asc``, one pinned key;
* 2-of-3: the builder's and one approval, three pinned keys, ``--threshold 2``;
* 3-of-3: the builder's and two approvals, three pinned keys, ``--threshold 3``.

Prints the median and best seconds of each and the ratio to 1-of-1, and the
same as JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.support.bundles import make_bundle  # noqa: E402
from tests.support.gpgkeys import make_keys  # noqa: E402
from tests.support.wheels import build_wheel  # noqa: E402
from wheelferry.offline.approvals import approval_path  # noqa: E402

RUN = "import sys; from wheelferry.offline.cli import main; sys.exit(main(sys.argv[1:]))"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=400, help="total wheel bytes in MB (default 400)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="wfb", dir="/tmp"))
    os.chmod(home, 0o700)
    work = Path(tempfile.mkdtemp(prefix="wheelferry-approvals-bench-"))
    try:
        keys = make_keys(home)
        sizes = [args.mb * 1_000_000 * share // 100 for share in (50, 30, 15, 5)]
        wheels = [build_wheel(work / "w", f"pkg{i}", "1.0", padding=n) for i, n in enumerate(sizes)]
        cases = {}
        for case, signers in (("1-of-1", ["good"]), ("2-of-3", ["good", "other"]),
                              ("3-of-3", ["good", "other", "protected"])):
            d = work / case
            d.mkdir()
            tar = make_bundle(d, wheels, name="bench")
            keys.sign(signers[0], tar)
            for name in signers[1:]:
                keys.sign(name, tar, approval_path(tar, keys.fpr[name]))
            pinned = [keys.fpr["good"]] if case == "1-of-1" else \
                [keys.fpr[n] for n in ("good", "other", "protected")]
            ring = keys.export(*(["good"] if case == "1-of-1" else ["good", "other", "protected"]),
                               path=d / "KEYS.asc")
            need = {"1-of-1": "1", "2-of-3": "2", "3-of-3": "3"}[case]
            cases[case] = [sys.executable, "-c", RUN, "verify", str(tar),
                           "--keyring", str(ring), *(a for f in pinned for a in ("--trusted-key", f)),
                           "--threshold", need, "--state-dir", str(d / "state"), "--force-older"]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        seconds: dict[str, list[float]] = {c: [] for c in cases}
        bundle_bytes = (work / "1-of-1" / "bench.tar").stat().st_size
        for _ in range(args.rounds):
            for case, cmd in cases.items():
                started = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
                seconds[case].append(time.perf_counter() - started)
                if proc.returncode != 0 or "verified in" not in proc.stdout:
                    print(f"{case} failed: {proc.stderr.strip()}", file=sys.stderr)
                    return 1
        base = statistics.median(seconds["1-of-1"])
        result = {"bundle-bytes": bundle_bytes, "rounds": args.rounds, "cpus": os.cpu_count(),
                  "cases": {c: {"median": round(statistics.median(s), 3), "best": round(min(s), 3),
                                "ratio": round(statistics.median(s) / base, 3)} for c, s in seconds.items()}}
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"bundle {bundle_bytes / 1e6:.0f} MB, {args.rounds} rounds, {os.cpu_count()} cpus")
            for c, r in result["cases"].items():
                print(f"{c}: median {r['median']:.2f} s, best {r['best']:.2f} s, x{r['ratio']:.2f} of 1-of-1")
        return 0
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
