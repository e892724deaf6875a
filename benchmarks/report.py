"""Machine facts and the RESULTS.md / RESULTS.json writers."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

from measure import memory_method


def _first_line(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    except (OSError, subprocess.SubprocessError):
        return "absent"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "absent"


def machine_facts(root: Path, tools: Path) -> dict[str, Any]:
    """Cores, memory, OS, Python and every tool's version, and the date of the run."""
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "memory_method": memory_method(),
        "versions": {
            "wheelferry": _first_line([str(root / ".venv/bin/wheelferry"), "--version"]),
            "pip": _first_line([str(tools / "python"), "-m", "pip", "--version"]).split(" from ")[0],
            "uv": _first_line([str(tools / "uv"), "--version"]),
            "pex": _first_line([str(tools / "pex3"), "--version"]),
            "gpg": _first_line(["gpg", "--version"]),
            "curl": _first_line(["curl", "--version"]).split(" (")[0],
            "tar": _first_line(["tar", "--version"]),
        },
    }


def _s(x: Any) -> str:
    return f"{x:.2f}" if isinstance(x, (int, float)) else "–"


def _when(stage: Mapping[str, Any]) -> str:
    load = f", load average {stage['load']}" if stage.get("load") else ""
    return f"_Measured {stage.get('date', '?')} on {stage.get('input', '?')}{load}._\n"


def _stage_md(stage: Mapping[str, Any]) -> list[str]:
    rate = bool(stage.get("bytes"))
    out = [f"### {stage['title']}", "", _when(stage),
           "| tool | median s | min s | max s |" + (" MB/s |" if rate else "")
           + " peak MiB | wheelferry ÷ tool | runs | status |",
           "|---|---:|---:|---:|" + ("---:|" if rate else "") + "---:|---:|---:|---|"]
    for r in stage["rows"]:
        ratio = f"{r['ratio']:.2f}×" if r.get("ratio") else ("—" if r["tool"] == "wheelferry" else "–")
        mem = f"{r['peak_mib']:.0f}" if r.get("peak_mib") else "–"
        status = str(r["status"])
        if r.get("wall_median_s") and abs(float(r["wall_median_s"]) - float(r["median_s"])) > 1e-6:
            status += f" (phase time; whole command {r['wall_median_s']:.2f} s)"
        mbs = (f" {r['mb_per_s']:.0f} |" if r.get("mb_per_s") else " – |") if rate else ""
        out.append(f"| {r['tool']} | {_s(r.get('median_s'))} | {_s(r.get('min_s'))} | "
                   f"{_s(r.get('max_s'))} |{mbs} {mem} | {ratio} | {r['runs']} | {status} |")
    out.append("")
    out += [f"* {n}" for n in stage.get("notes", [])]
    out += ["", "<details><summary>command lines</summary>", ""]
    out += [f"* {r['tool']}: `{r['command']}`" for r in stage["rows"] if r.get("command")]
    out += ["", "</details>", ""]
    return out


def _scale_md(stage: Mapping[str, Any]) -> list[str]:
    tools = ("wheelferry lock", "uv pip compile", "wheelferry build --no-sign")
    out = [f"### {stage['title']}", "", _when(stage),
           "| case | packages | " + " | ".join(f"{t} s (ms/pkg)" for t in tools)
           + " | lock ÷ uv | peak MiB | right versions |",
           "|---|---:|" + "---:|" * len(tools) + "---:|---:|---:|"]
    for p in stage["points"]:
        cells = []
        for t in tools:
            r = p.get(t) or {}
            if r.get("median_s"):
                cells.append(f"{r['median_s']:.2f} ({r['ms_per_package']:.1f})")
            else:
                cells.append(str(r.get("status", "–")))
        lk, uv = p.get("wheelferry lock") or {}, p.get("uv pip compile") or {}
        ratio = f"{lk['median_s'] / uv['median_s']:.2f}×" if lk.get("median_s") and uv.get("median_s") else "–"
        mem = " / ".join(f"{r['peak_mib']:.0f}" if r.get("peak_mib") else "–" for r in (lk, uv))
        right = p.get("right versions") or {}
        agree = " / ".join(str(right.get(t, "–")) for t in tools[:2]) if right else "–"
        out.append(f"| {p['case']} | {p['packages']} | " + " | ".join(cells) + f" | {ratio} | {mem} | {agree} |")
    out.append("")
    out.append("* lock ÷ uv: wheelferry lock's median over uv's; peak MiB: lock, wheelferry / uv; right "
               "versions (backtracking trees, which have one correct answer): wheelferry / uv.")
    growth = stage.get("growth") or {}
    out += [f"* **{t}**: {g}" for t, g in growth.items()] or ["* growth: not enough points measured"]
    out.append("")
    return out


def write_results(directory: Path, facts: Mapping[str, Any], run: Mapping[str, Any],
                  stages: Sequence[Mapping[str, Any]]) -> tuple[Path, Path]:
    """Write RESULTS.md and RESULTS.json atomically (temp name, then rename)."""
    data = {"machine": facts, "run": run, "stages": list(stages)}
    md = ["# wheelferry benchmark results", "",
          f"Run of {facts['date']}: `benchmarks/run {' '.join(run['args'])}`".rstrip() + ".",
          f"Input: {run['input']}. Target `{run['target']}`, {run['reps']} run(s) per tool, tools "
          "interleaved (A B C A B C). Times are wall seconds; peak memory is "
          f"{facts['memory_method']}. A ratio below 1 means wheelferry is faster.",
          "Comparisons run by hand beside these tables (A/B of two commits) are in NOTES.md.", "",
          "## Machine", "",
          f"* {facts['cores']} cores, {facts['memory_gib']} GiB, {facts['os']}, Python {facts['python']}",
          *[f"* {k}: {v}" for k, v in facts["versions"].items()], ""]
    older = sorted({str(st.get("date")) for st in stages if st.get("date") != facts["date"]})
    if older:
        md += ["Stages this run did not measure are kept from earlier runs, each under its own "
               f"_Measured_ line ({', '.join(older)}).", ""]
    if run.get("unavailable"):
        md += ["Stages where wheelferry was not available yet: "
               + ", ".join(run["unavailable"]) + ".", ""]
    md += ["## Stages", ""]
    for st in stages:
        md += _scale_md(st) if str(st["stage"]).endswith("scale") else _stage_md(st)
    paths = (directory / "RESULTS.md", directory / "RESULTS.json")
    for path, text in zip(paths, ("\n".join(md) + "\n",
                                  json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return paths
