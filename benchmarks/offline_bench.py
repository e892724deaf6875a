#!/usr/bin/env python3
"""The air-gapped half side by side: `wheelferry verify` and `install` against gpgv, tar, sha256sum, pip and uv.

Usage::

    benchmarks/offline_bench.py BUNDLE.tar --keyring KEYS.asc --trusted-key FPR [--rounds 3]
                                [--install-rounds 2] [--pyz wheelferry-offline.pyz] [--skip-install]

Tools run alternately, round by round, so a busy machine slows each the same;
installs go into fresh venvs, under ``unshare -rn`` (no network) when the kernel
allows it.  The peers do not check a signature or the bundle's hashes (pip and
uv get the wheels already extracted); wheelferry's times include both.
Standalone: standard library only, plus the repo's ``src`` to build the kit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GNU_TIME = "/usr/bin/time"


@dataclass
class Tool:
    """One contestant: a setup step (untimed) and the timed steps of one run."""

    name: str
    steps: Callable[[Path], list[list[str]]]  # run directory -> commands, timed together
    setup: Callable[[Path], None] = lambda run_dir: None
    seconds: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)


def _network_cut() -> list[str]:
    try:
        ok = subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False).returncode == 0
    except OSError:
        ok = False
    return ["unshare", "-rn"] if ok else []


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "PYTHON"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", UV_NO_CONFIG="1")
    return env


def _timed(argv: Sequence[str], cwd: Path) -> tuple[float, int]:
    """Run *argv*; wall seconds and peak RSS in KiB (GNU time, else the rise of RUSAGE_CHILDREN)."""
    out = cwd / ".rss"
    cmd = [GNU_TIME, "-f", "%M", "-o", str(out), *argv] if os.access(GNU_TIME, os.X_OK) else list(argv)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-2000:]}")
    if cmd[0] == GNU_TIME:
        rss = int(out.read_text().split()[-1])
    else:
        rss = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss - before, 0)
    return seconds, rss


def _run(tool: Tool, scratch: Path) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    try:
        tool.setup(run_dir)
        total, peak = 0.0, 0
        for argv in tool.steps(run_dir):
            seconds, rss = _timed(argv, run_dir)
            total, peak = total + seconds, max(peak, rss)
        tool.seconds.append(total)
        tool.rss_kb.append(peak)
        print(f"  {tool.name:<34} {total:7.2f} s  {peak / 1024:7.0f} MB", flush=True)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _table(title: str, tools: list[Tool], size: int) -> list[dict[str, object]]:
    ours = tools[0]
    ours_median = statistics.median(ours.seconds)
    print(f"\n{title} ({size / 1e6:.0f} MB, {len(ours.seconds)} rounds)")
    print(f"{'tool':<36}{'median':>8}{'min':>8}{'max':>8}{'MB/s':>8}{'vs wheelferry':>15}{'peak RSS':>10}")
    rows = []
    for t in tools:
        med = statistics.median(t.seconds)
        ratio = "" if t is ours else f"{med / ours_median:.2f}x slower" if med >= ours_median \
            else f"{ours_median / med:.2f}x faster"
        print(f"{t.name:<36}{med:8.2f}{min(t.seconds):8.2f}{max(t.seconds):8.2f}"
              f"{size / 1e6 / med:8.0f}{ratio:>15}{max(t.rss_kb) / 1024:8.0f} MB")
        rows.append({"tool": t.name, "seconds": t.seconds, "median": med, "mb_per_s": size / 1e6 / med,
                     "peak_rss_mb": max(t.rss_kb) / 1024, "ratio_to_wheelferry": med / ours_median})
    return rows


def _build_pyz(scratch: Path) -> Path:
    sys.path.insert(0, str(REPO / "src"))
    from wheelferry.pyz import write_offline_pyz

    return write_offline_pyz(scratch / "wheelferry-offline.pyz")


def _real_python() -> str:
    # Past any launcher shim (pyenv, asdf): its start-up would be timed with every run.
    found = shutil.which("python3") or sys.executable
    proc = subprocess.run([found, "-c", "import sys; print(sys.executable)"], capture_output=True,
                          text=True, check=True)
    return proc.stdout.strip() or found


def _requirements(extracted: Path, target: str | None) -> Path:
    found = sorted(extracted.glob("*/lock/requirements.*.txt"))
    if target:
        found = [p for p in found if p.name == f"requirements.{target}.txt"]
    if len(found) != 1:
        raise SystemExit(f"pick one target with --target: {', '.join(p.name for p in found) or 'none'}")
    return found[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the tables (and --json FILE)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--keyring", type=Path, required=True, help="armoured public key(s)")
    ap.add_argument("--trusted-key", required=True, help="fingerprint that signed the bundle")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--install-rounds", type=int, help="rounds for installs (default --rounds)")
    ap.add_argument("--pyz", type=Path, help="the offline kit (default: built from this checkout)")
    ap.add_argument("--python", help="the interpreter of the isolated host (default: python3's own path)")
    ap.add_argument("--target", help="lock target id, when the bundle has several")
    ap.add_argument("--skip-install", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    bundle, key = args.bundle.resolve(), args.keyring.resolve()
    size = bundle.stat().st_size
    cut = _network_cut()
    scratch = Path(tempfile.mkdtemp(prefix="offline-bench-"))
    try:
        pyz = args.pyz.resolve() if args.pyz else _build_pyz(scratch)
        py = args.python = args.python or _real_python()
        print(f"bundle {bundle.name}: {size / 1e6:.0f} MB; kit {pyz.name}; python {py}; "
              f"{'no network (unshare -rn)' if cut else 'network NOT cut (unshare -rn not permitted)'}; "
              f"{os.cpu_count()} CPUs")
        keyring_gpg = scratch / "keys.gpg"
        with open(key, "rb") as src, open(keyring_gpg, "wb") as dst:
            subprocess.run(["gpg", "--dearmor"], stdin=src, stdout=dst, check=True)
        kit = [*cut, py, str(pyz)]
        keys = ["--keyring", str(key), "--trusted-key", args.trusted_key]
        verify = [
            Tool("wheelferry verify", lambda d: [[*kit, "verify", str(bundle), *keys,
                                                  "--state-dir", str(d / "state")]]),
            Tool("gpgv + tar x + sha256sum -c", lambda d: [
                ["gpgv", "--keyring", str(keyring_gpg), str(bundle) + ".asc", str(bundle)],
                ["tar", "-xf", str(bundle), "-C", str(d)],
                ["sh", "-c", 'cd "$1"/*/ && sha256sum -c --quiet SHA256SUMS', "sh", str(d)]]),
            Tool("gpgv alone", lambda d: [["gpgv", "--keyring", str(keyring_gpg), str(bundle) + ".asc",
                                           str(bundle)]]),
        ]
        results: dict[str, object] = {"bundle": bundle.name, "bytes": size, "network_cut": bool(cut)}
        for r in range(args.rounds):
            print(f"verify round {r + 1}/{args.rounds}", flush=True)
            for t in verify:
                _run(t, scratch)
        results["verify"] = _table("verify", verify, size)
        if not args.skip_install:
            results["install"] = _install(args, bundle, size, kit, keys, cut, scratch)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _install(args: argparse.Namespace, bundle: Path, size: int, kit: list[str], keys: list[str],
             cut: list[str], scratch: Path) -> list[dict[str, object]]:
    extracted = scratch / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-xf", str(bundle), "-C", str(extracted)], check=True)
    req = _requirements(extracted, args.target)
    wheels = req.parents[1] / "wheels"
    py = args.python
    uv = REPO / ".venv" / "bin" / "uv"
    uv_bin = str(uv) if uv.is_file() else shutil.which("uv")
    pip_install = ["install", "--no-index", "--find-links", str(wheels), "--require-hashes", "-r", str(req)]

    def uv_steps(d: Path, compile_: bool) -> list[list[str]]:
        assert uv_bin is not None
        cache = ["--cache-dir", str(d / "uv-cache")]  # a first install: nothing cached before
        return [[*cut, uv_bin, "venv", "--offline", "--python", py, *cache, str(d / "env")],
                [*cut, uv_bin, "pip", "install", "--offline", "--no-index", "--find-links", str(wheels),
                 "--require-hashes", "-r", str(req), "--python", str(d / "env" / "bin" / "python"),
                 *cache, *(["--compile-bytecode"] if compile_ else [])]]

    tools = [
        Tool("wheelferry install (verify+install)", lambda d: [[
            *kit, "install", str(bundle), *keys, "--venv", str(d / "env"), "--state-dir", str(d / "state")]]),
        Tool("pip install --no-index (venv+install)", lambda d: [
            [*cut, py, "-m", "venv", str(d / "env")],
            [*cut, str(d / "env" / "bin" / "python"), "-m", "pip", *pip_install]]),
    ]
    if uv_bin:
        tools.append(Tool("uv pip install --offline --compile", lambda d: uv_steps(d, True)))
        tools.append(Tool("uv pip install --offline (no .pyc)", lambda d: uv_steps(d, False)))
    rounds = args.install_rounds or args.rounds
    for r in range(rounds):
        print(f"install round {r + 1}/{rounds}", flush=True)
        for t in tools:
            _run(t, scratch)
    return _table("install into a fresh venv", tools, size)


if __name__ == "__main__":
    sys.exit(main())
