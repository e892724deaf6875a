"""Benchmark entry point: side-by-side runs of wheelferry, pip, uv and plain tools; see README.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import synthetic  # noqa: E402
from report import machine_facts, write_results  # noqa: E402
from scale import scale_stage  # noqa: E402
from stages import (FileRef, Setup, airflow_stage, fetch_stage, install_stage, lock_stage,  # noqa: E402
                    pack_stage, verify_stage)

STAGES = ("lock", "fetch", "pack", "verify", "install", "scale", "airflow")
LIVE_TARGET = "linux-x86_64:3.11"


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/run", description=__doc__)
    p.add_argument("--live", action="store_true",
                   help="tensorflow==2.20.0 for linux-x86_64:3.11 from pip's default index")
    p.add_argument("--quick", action="store_true", help="fewer runs and smaller sizes (minutes)")
    p.add_argument("--only", action="append", choices=STAGES, metavar="STAGE",
                   help=f"run only this stage (repeatable): {', '.join(STAGES)}")
    p.add_argument("--gpu-set", action="store_true",
                   help="the GPU set (live: tensorflow[and-cuda], about 3.5 GB; synthetic: CUDA-sized wheels)")
    p.add_argument("--reps", type=int, help="runs per tool (default 3; --quick 2)")
    p.add_argument("--root", type=Path, default=HERE.parent, help=argparse.SUPPRESS)
    p.add_argument("--tools", type=Path, default=HERE / ".venv" / "bin", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _host_python() -> tuple[int, int]:
    return sys.version_info[0], sys.version_info[1]


def main(argv: list[str] | None = None) -> int:
    """Run the chosen stages and write benchmarks/RESULTS.md and RESULTS.json."""
    args = _parse(argv)
    raw_args = sys.argv[1:] if argv is None else argv
    shown_args = [a for i, a in enumerate(raw_args)
                  if a not in ("--root", "--tools") and (i == 0 or raw_args[i - 1] not in ("--root", "--tools"))]
    reps = args.reps or (2 if args.quick else 3)
    wanted = args.only or list(STAGES)
    work = HERE / ".work" / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    index_root = HERE / ".work"
    py = _host_python()
    on_linux_x86 = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")
    if args.live:
        target = LIVE_TARGET + (":gpu" if args.gpu_set else "")
        requirement = "tensorflow[and-cuda]==2.20.0" if args.gpu_set else "tensorflow==2.20.0"
        host = on_linux_x86 and py == (3, 11)
        input_text = f"live: `{requirement}` from pip's default index"
    else:
        target = f"linux-x86_64:{py[0]}.{py[1]}" + (":gpu" if args.gpu_set else "")
        requirement, pkgs = synthetic.tf_like_set(py, quick=args.quick, gpu=args.gpu_set)
        host = on_linux_x86
        total = sum(p.size for p in synthetic.resolved_files(pkgs, requirement))
        input_text = (f"synthetic TF-shaped loopback index, `{requirement}` -> "
                      f"{len(synthetic.resolved_files(pkgs, requirement))} wheels, {total / 1e6:.0f} MB")
    setup = Setup(root=args.root, tools=args.tools, work=work, target=target, requirement=requirement,
                  index_url=None, reps=reps, host_target=host, log=_log)
    results: list[dict[str, object]] = []
    started = time.monotonic()
    _log(f"wheelferry benchmarks: {input_text}; target {target}; {reps} run(s) per tool")

    def loaded(result: dict[str, object], before: float) -> dict[str, object]:
        # The machine is shared: the 1-minute load average when the stage began and ended.
        result["load"] = f"{before:.1f} to {os.getloadavg()[0]:.1f}"
        return result

    def run_stages() -> None:
        for name in wanted:
            before = os.getloadavg()[0]
            if name == "scale":
                continue
            if name == "airflow":
                if args.live:
                    _log("stage airflow (live)")
                    results.append(loaded(airflow_stage(setup, warm=False), before))
                    before = os.getloadavg()[0]
                    results.append(loaded(airflow_stage(setup, warm=True), before))
                elif args.only:
                    _log("stage airflow: live only (add --live); skipped")
                continue
            _log(f"stage {name}")
            # The gigabytes an earlier stage wrote go to disk now, not during this one's runs.
            os.sync()
            if name == "lock":
                results.append(loaded(lock_stage(setup, warm=False), before))
                before = os.getloadavg()[0]
                results.append(loaded(lock_stage(setup, warm=True), before))
            else:
                fn = {"fetch": fetch_stage, "pack": pack_stage, "verify": verify_stage,
                      "install": install_stage}[name]
                results.append(loaded(fn(setup), before))

    if args.live:
        run_stages()
    elif any(n not in ("scale", "airflow") for n in wanted):
        _log(f"generating the synthetic index ({input_text})")
        tree = synthetic.build_index(index_root / f"index-tf{'-gpu' if args.gpu_set else ''}"
                                     f"{'-quick' if args.quick else ''}", pkgs)
        with synthetic.serve(tree, repo_python=args.root / ".venv" / "bin" / "python") as served:
            url = served.url
            input_text += f", served by {served.server}"
            setup.index_url = url
            setup.artifacts["files_dir"] = tree / "files"
            base = url.rsplit("/simple", 1)[0]
            setup.expected = [FileRef(p.filename, f"{base}/files/{p.filename}",
                                      synthetic._sha256(tree / "files" / p.filename))  # noqa: SLF001
                              for p in synthetic.resolved_files(pkgs, requirement)]
            run_stages()
        if "install" in wanted:
            results.append(_install_many(args, py, index_root, work, reps))
    if "scale" in wanted:
        _log("stage scale")
        sizes, chain = ((10, 100, 300), 100) if args.quick else ((10, 100, 1000), 200)
        backtrack = (100, 300) if args.quick else (100, 1000)
        results.append(scale_stage(setup, index_root, sizes, chain, reps=1 if args.quick else 2,
                                   backtrack=backtrack))
    facts = machine_facts(args.root, args.tools)
    for r in results:
        if args.live and r["stage"] != "scale":  # the scale curve is always synthetic
            r["stage"], r["title"] = f"live-{r['stage']}", f"LIVE {r['title']}"
        r["date"] = facts["date"]
        r.setdefault("input", input_text)
    _shorten_paths(results, args.root, work)
    merged = _merge_previous(HERE / "RESULTS.json", results, args)
    unavailable = sorted({str(st["stage"]) for st in merged for r in st.get("rows", [])  # type: ignore[attr-defined]
                          if r["tool"] == "wheelferry" and str(r["status"]).startswith("not available")})
    run = {"args": shown_args, "input": input_text, "input_kind": "live" if args.live else "synthetic", "target": target, "reps": reps,
           "seconds": round(time.monotonic() - started, 1), "unavailable": unavailable}
    md, js = write_results(HERE, facts, run, merged)
    _log(f"wrote {md} and {js} in {run['seconds']} s")
    return 0


def _install_many(args: argparse.Namespace, py: tuple[int, int], index_root: Path, work: Path,
                  reps: int) -> dict[str, object]:
    """The install stage again on many small wheels and one big one (synthetic.install_set)."""
    requirement, pkgs = synthetic.install_set(py, quick=args.quick)
    files = synthetic.resolved_files(pkgs, requirement)
    total = sum(p.size for p in files)
    text = (f"synthetic loopback index, `{requirement}` -> {len(files)} wheels "
            f"({sum(p.modules for p in files)} modules), {total / 1e6:.0f} MB unpacked payload")
    _log(f"stage install-many: generating the index ({text})")
    tree = synthetic.build_index(index_root / f"index-many{'-quick' if args.quick else ''}", pkgs)
    with synthetic.serve(tree, repo_python=args.root / ".venv" / "bin" / "python") as served:
        s = Setup(root=args.root, tools=args.tools, work=work / "install-many",
                  target=f"linux-x86_64:{py[0]}.{py[1]}", requirement=requirement,
                  index_url=served.url, reps=reps, host_target=True, log=_log)
        s.artifacts["files_dir"] = tree / "files"
        base = served.url.rsplit("/simple", 1)[0]
        s.expected = [FileRef(p.filename, f"{base}/files/{p.filename}",
                              synthetic._sha256(tree / "files" / p.filename))
                      for p in files]
        os.sync()
        out = install_stage(s, stage="install-many",
                            title="install (offline, fresh venv): many small wheels + one big one")
    out["input"] = text + f", served by {served.server}"
    return out


_REMOTE_ORIGIN = re.compile(r"https?://(?!127\.0\.0\.1[:/])[^/\s`'\"]+")


def _shorten_paths(results: list[dict[str, object]], root: Path, work: Path) -> None:
    """Command lines relative to the repo, with the run folder as $RUN, so they read like docs."""
    def short(text: str) -> str:
        text = text.replace(f"{work}/", "$RUN/").replace(f"{root.resolve()}/", "")
        # Live file URLs name whatever host pip's default index sends files from; the
        # results name no registry host, so it reads as $FILES_HOST.
        return _REMOTE_ORIGIN.sub("$FILES_HOST", text)

    for st in results:
        for row in st.get("rows", []):  # type: ignore[attr-defined]
            row["command"] = short(str(row.get("command", "")))
        for point in st.get("points", []):  # type: ignore[attr-defined]
            for value in point.values():
                if isinstance(value, dict):
                    value["command"] = short(str(value.get("command", "")))


def _merge_previous(path: Path, results: list[dict[str, object]], args: argparse.Namespace) -> list[dict[str, object]]:
    """Keep the stages of earlier runs that this run did not measure (each carries its date).

    A full run replaces every stage of its kind (synthetic or live); with --only,
    only the stages it ran.  Live stages are keyed ``live-<stage>``.
    """
    kind = "live-" if args.live else ""
    if not path.is_file():
        return results
    try:
        old = json.loads(path.read_text())
    except ValueError:
        return results
    fresh = {r["stage"] for r in results}
    kept = [st for st in old.get("stages", []) if st.get("stage") not in fresh
            and (args.only or str(st.get("stage", "")).startswith("live-") != bool(kind))]
    order = {s: i for i, s in enumerate(("lock-cold", "lock-warm", "fetch", "pack", "verify",
                                         "install", "install-many", "scale"))}
    return sorted([*kept, *results], key=lambda st: (str(st["stage"]).startswith("live-"),
                                                     order.get(str(st["stage"]).removeprefix("live-"), 99)))


if __name__ == "__main__":
    sys.exit(main())
