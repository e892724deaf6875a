"""Verify throughput: `wheelferry verify` of one big bundle against `sha256sum` + `gpg --verify` of the same bytes.

The floor is what any verifier must do at least: read every byte once for
sha256 and let gpg check the detached signature over the same bytes (run one
after the other, as a shell script would).  wheelferry does both and more (tar
parsing, every member's sha256, manifest and lock checks, bounded
decompression) in one read.  With ``--baseline COMMIT`` the same verify of an
older checkout runs in the same rounds, e.g. the commit before the bounds on
unsigned input were added, to show what they cost.  Every command runs in the
same rounds, interleaved, with the bundle in the page cache (one warm-up read).

    python benchmarks/verify_throughput.py BUNDLE.tar --keyring KEYS.asc --trusted-key FPR \
        [--rounds 5] [--baseline fa23020] [--json OUT.json]

A real TensorFlow bundle comes from ``benchmarks/run --live --only verify``
(``.work/run/artifacts/wf-bundle/tensorflow.tar`` and ``keys.asc``).
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
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(argv: Sequence[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(list(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip()[:500]}")
    return elapsed


def _export(commit: str, into: Path) -> Path:
    """The ``src`` folder of *commit* of this repository, unpacked into *into*."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rounds and print the table (and --json FILE)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--keyring", type=Path, required=True, help="armoured public key(s)")
    ap.add_argument("--trusted-key", required=True, help="fingerprint that signed the bundle")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", metavar="COMMIT", help="also time verify of this commit's src")
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    bundle, keyring = args.bundle.resolve(), args.keyring.resolve()
    size = bundle.stat().st_size
    scratch = Path(tempfile.mkdtemp(prefix="verify-bench-"))
    try:
        home = scratch / "gnupg"
        home.mkdir(mode=0o700)
        subprocess.run(["gpg", "--homedir", str(home), "--batch", "--quiet", "--import", str(keyring)],
                       check=True, capture_output=True)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
        keys = ["--keyring", str(keyring), "--trusted-key", args.trusted_key]
        tools: dict[str, tuple[list[str], dict[str, str]]] = {
            "wheelferry verify": ([args.python, "-m", "wheelferry", "verify", str(bundle), *keys,
                                   "--state-dir", str(scratch / "state-now")],
                                  {**base_env, "PYTHONPATH": str(ROOT / "src")}),
            "sha256sum + gpg --verify": (["sh", "-c", 'sha256sum "$1" >/dev/null && gpg --homedir "$2" --batch '
                                          '--quiet --verify "$1.asc" "$1"', "sh", str(bundle), str(home)],
                                         base_env),
        }
        if args.baseline:
            old_src = _export(args.baseline, scratch / "baseline")
            tools[f"wheelferry verify @ {args.baseline}"] = (
                [args.python, "-m", "wheelferry", "verify", str(bundle), *keys,
                 "--state-dir", str(scratch / "state-old")], {**base_env, "PYTHONPATH": str(old_src)})
        with open(bundle, "rb") as f:  # warm the page cache once, for every tool alike
            while f.read(16 << 20):
                pass
        times: dict[str, list[float]] = {name: [] for name in tools}
        for r in range(args.rounds):
            for name, (cmd, env) in tools.items():
                times[name].append(_timed(cmd, env))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()),
                  flush=True)
        floor = statistics.median(times["sha256sum + gpg --verify"])
        rows = []
        print(f"\n{bundle.name}: {size / 1e6:.0f} MB, {args.rounds} rounds, {os.cpu_count()} CPUs, medians")
        print(f"{'tool':40} {'seconds':>8} {'MB/s':>7} {'vs floor':>9}")
        for name, ts in times.items():
            med = statistics.median(ts)
            rows.append({"tool": name, "median_s": round(med, 3), "mb_per_s": round(size / 1e6 / med, 1),
                         "ratio_to_floor": round(med / floor, 3), "runs": [round(t, 3) for t in ts]})
            print(f"{name:40} {med:8.2f} {size / 1e6 / med:7.0f} {med / floor:8.2f}x")
        if args.json:
            args.json.write_text(json.dumps({"bundle": bundle.name, "bytes": size, "rounds": args.rounds,
                                             "cpus": os.cpu_count(), "results": rows}, indent=2) + "\n",
                                 encoding="utf-8")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
