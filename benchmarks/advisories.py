"""How fast `audit --advisories` reads an OSV database for a TensorFlow-sized bundle.

    .venv/bin/python benchmarks/advisories.py                  # synthetic all.zip, 50,000 records
    .venv/bin/python benchmarks/advisories.py --records 20000 --pypa ~/advisory-database

The synthetic all.zip is shaped like osv.dev's PyPI export: one ID.json per record, PYSEC and
GHSA records aliasing each other, ECOSYSTEM ranges and long `versions` lists, spread over
8,000 projects of which the bundle's 43 (a TensorFlow 2.x tree) have some.  Each case runs in a
fresh interpreter: the build side (this venv, PyYAML with libyaml) and the offline kit on the
oldest Python it supports (`python3.9 -I -S wheelferry-offline.pyz`, pure-Python PyYAML).
`--pypa DIR` adds a checkout of the PyPA advisory database (OSV YAML), read as it is and
converted to a JSON zip (`wheelferry advisories DIR --write-zip`).  osv-scanner's offline
mode is not measured: it is a Go program, and no Go toolchain or release binary is available
on the build host (see README).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TF_TREE = ["tensorflow", "tensorboard", "keras", "numpy", "protobuf", "grpcio", "h5py", "absl-py",
           "astunparse", "flatbuffers", "gast", "google-pasta", "libclang", "ml-dtypes", "opt-einsum",
           "packaging", "requests", "setuptools", "six", "termcolor", "typing-extensions", "wrapt",
           "tensorflow-io-gcs-filesystem", "markdown", "werkzeug", "tensorboard-data-server", "urllib3",
           "idna", "charset-normalizer", "certifi", "markupsafe", "rich", "namex", "optree", "pygments",
           "markdown-it-py", "mdurl", "wheel", "jax", "scipy", "pillow", "cryptography", "flask"]
PINS = {n: "1.0.0" for n in TF_TREE} | {"tensorflow": "2.9.0", "numpy": "1.21.0", "pillow": "8.0.0"}

CASE = """
import sys, time
t = time.perf_counter()
from pathlib import Path
from wheelferry.offline.advisories import findings
from wheelferry.offline.osv import scan
pins = {pins!r}
result = scan(Path({db!r}), frozenset(pins))
found = findings(result, list(pins.items()))
print(time.perf_counter() - t, result.examined, len(found), result.identity.records)
"""


def synthetic_zip(path: Path, records: int, seed: int = 7) -> Path:
    rng = random.Random(seed)
    projects = TF_TREE + [f"project-{i}" for i in range(8000 - len(TF_TREE))]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(records):
            name = rng.choice(TF_TREE) if rng.random() < 0.05 else rng.choice(projects)
            major = rng.randint(0, 9)
            versions = [f"{major}.{m}.{p}" for m in range(rng.randint(1, 12)) for p in range(rng.randint(1, 6))]
            ids = (f"PYSEC-2024-{i}", f"GHSA-{i:04x}-synt-hetc") if i % 2 else (f"GHSA-{i:04x}-synt-hetc",
                                                                                f"PYSEC-2024-{i}")
            rec = {
                "schema_version": "1.6.0", "id": ids[0], "aliases": [ids[1], f"CVE-2024-{i}"],
                "modified": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T00:00:00Z",
                "published": "2023-01-01T00:00:00Z", "summary": f"Synthetic vulnerability {i} in {name}",
                "details": "Synthetic record for the benchmark. " * rng.randint(3, 30),
                "affected": [{"package": {"ecosystem": "PyPI", "name": name, "purl": f"pkg:pypi/{name}"},
                              "ranges": [{"type": "ECOSYSTEM", "events": [
                                  {"introduced": "0"}, {"fixed": f"{major}.{rng.randint(0, 12)}.0"}]}],
                              "versions": versions}],
                "references": [{"type": "WEB", "url": f"https://example.invalid/{i}/{j}"} for j in range(4)],
                "database_specific": {"severity": rng.choice(["LOW", "MODERATE", "HIGH", "CRITICAL"])},
            }
            zf.writestr(f"{ids[0]}.json", json.dumps(rec, indent=2))
    return path


def run(python: list[str], path_entry: str, db: Path, reps: int) -> list[float]:
    code = f"import sys; sys.path.insert(0, {path_entry!r})\n" + CASE.format(pins=PINS, db=str(db))
    times = []
    for _ in range(reps):
        proc = subprocess.run([*python, "-c", code], capture_output=True, text=True, check=True)
        seconds, examined, found, total = proc.stdout.split()
        times.append(float(seconds))
    print(f"    examined {examined} of {total} records, {found} findings")
    return times


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=50000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pypa", type=Path, help="a checkout of the PyPA advisory database")
    ap.add_argument("--python39", default=str(next(Path.home().glob(".pyenv/versions/3.9*/bin/python3"), ""))
                    or shutil.which("python3.9"))
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from wheelferry.pyz import write_offline_pyz

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        db = synthetic_zip(Path(tmp) / "all.zip", args.records)
        print(f"synthetic all.zip: {args.records} records, {db.stat().st_size / 1e6:.1f} MB zipped, "
              f"written in {time.perf_counter() - t:.1f} s")
        kit = write_offline_pyz(Path(tmp) / "wheelferry-offline.pyz")
        cases = [("all.zip", db)]
        if args.pypa:
            from wheelferry.offline.osv import write_zip

            converted = Path(tmp) / "pypa.zip"
            write_zip(args.pypa, converted)  # `wheelferry advisories DIR --write-zip pypa.zip`
            cases += [("pypa-yaml", args.pypa), ("pypa-zip", converted)]
        sides = [("build side", [sys.executable], str(ROOT / "src"))]
        if args.python39:
            sides.append(("offline kit, 3.9 -I -S", [args.python39, "-I", "-S"], str(kit)))
        with open("/proc/loadavg") as fh:
            load = fh.read().split()[0]
        print(f"{len(PINS)} packages (a TensorFlow tree), best of {args.reps}, load average {load}:")
        for label, path in cases:
            for side, python, entry in sides:
                print(f"  {label:10s} {side:24s}", flush=True)
                times = run(python, entry, path, args.reps)
                print(f"    best {min(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
