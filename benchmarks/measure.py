"""Run commands the same way for every tool and record wall time, peak memory and exit code."""

from __future__ import annotations

import json
import os
import resource
import shlex
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

GNU_TIME = "/usr/bin/time"
# A wheelferry command that exits 2 (bad usage: the subcommand or option does not
# exist yet) or dies importing a stage module that is not written yet is "not
# available yet", not a failure of the stage.
_NOT_YET_MARKERS = ("No module named 'wheelferry.", "invalid choice", "unrecognized arguments")


@dataclass(frozen=True)
class Step:
    """One process to run: argument list, working directory, extra environment, redirections."""

    argv: tuple[str, ...]
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: Path | None = None
    stdout: Path | None = None

    def display(self) -> str:
        """The command as a user would type it (for the README and the results)."""
        text = shlex.join(self.argv)
        if self.stdin:
            text += f" < {self.stdin.name}"
        if self.stdout:
            text += f" > {self.stdout.name}"
        return text


@dataclass(frozen=True)
class Sample:
    """One measured run: wall seconds, peak RSS in KiB (largest process), exit code, output tail."""

    seconds: float
    peak_kib: int | None
    code: int
    output: str = ""
    phase_seconds: float | None = None  # a tool's own timing of the phase under test, if it reports one


def memory_method() -> str:
    """How peak memory is measured on this machine."""
    if os.access(GNU_TIME, os.X_OK):
        return "GNU time %M: peak RSS of the largest process in the command's tree"
    return "getrusage(RUSAGE_CHILDREN) ru_maxrss rise: peak RSS of the largest child so far"


def run_steps(steps: Sequence[Step], base_env: Mapping[str, str]) -> Sample:
    """Run *steps* in order (stop at the first failure); wall times add up, memory is the max."""
    total = 0.0
    peak: int | None = None
    outputs: list[str] = []
    code = 0
    for step in steps:
        sample = _run_one(step, base_env)
        total += sample.seconds
        if sample.peak_kib is not None:
            peak = max(peak or 0, sample.peak_kib)
        outputs.append(sample.output)
        code = sample.code
        if code != 0:
            break
    return Sample(total, peak, code, "\n".join(outputs)[-4000:])


def _run_one(step: Step, base_env: Mapping[str, str]) -> Sample:
    env = dict(base_env)
    env.update(step.env)
    use_time = os.access(GNU_TIME, os.X_OK)
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss, \
            tempfile.TemporaryFile("w+") as err:
        argv = list(step.argv)
        if use_time:
            argv = [GNU_TIME, "-q", "-f", "%M", "-o", rss.name, *argv]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        stdin = open(step.stdin, "rb") if step.stdin else subprocess.DEVNULL
        stdout = open(step.stdout, "wb") if step.stdout else subprocess.PIPE
        try:
            started = time.perf_counter()
            proc = subprocess.run(argv, cwd=step.cwd, env=env, stdin=stdin, stdout=stdout,
                                  stderr=err, check=False)
            seconds = time.perf_counter() - started
        finally:
            for f in (stdin, stdout):
                if hasattr(f, "close"):
                    f.close()  # type: ignore[union-attr]
        err.seek(0)
        text = (proc.stdout.decode(errors="replace") if isinstance(proc.stdout, bytes) else "")
        text += err.read()
        peak: int | None = None
        if use_time:
            lines = [ln for ln in rss.read().split() if ln.isdigit()]
            peak = int(lines[-1]) if lines else None
        else:
            after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            peak = after if after > before else None
    return Sample(seconds, peak, proc.returncode, text[-4000:])


@dataclass
class Contender:
    """One tool in a stage: how to make the steps of run *i*, and what it has done so far."""

    name: str
    make_steps: Callable[[int], Sequence[Step]]
    is_product: bool = False
    phase: Callable[[str], float | None] | None = None
    samples: list[Sample] = field(default_factory=list)
    status: str = "ok"
    command: str = ""
    note: str = ""
    nbytes: int = 0  # bytes this tool moves, when not the stage's whole set (its MB/s divides these)

    def summary(self) -> dict[str, object]:
        """A JSON-ready summary: times (median/min/max), memory, status, the command line."""
        times = [s.phase_seconds if s.phase_seconds is not None else s.seconds for s in self.samples]
        walls = [s.seconds for s in self.samples]
        mems = [s.peak_kib for s in self.samples if s.peak_kib is not None]
        out: dict[str, object] = {"tool": self.name, "status": self.status, "runs": len(times),
                                  "command": self.command, "note": self.note}
        if times:
            out.update(median_s=statistics.median(times), min_s=min(times), max_s=max(times),
                       wall_median_s=statistics.median(walls), times_s=times,
                       peak_mib=(max(mems) / 1024) if mems else None)
        return out


def classify_failure(sample: Sample, is_product: bool) -> str:
    """A one-line status for a failed run: 'not available yet' or 'failed (exit N): reason'."""
    if is_product and (sample.code == 2 or any(m in sample.output for m in _NOT_YET_MARKERS)):
        return "not available yet"
    reason = _json_message(sample.output)
    if reason:
        return f"failed (exit {sample.code}): {reason[:160]}"
    lines = [ln.strip() for ln in sample.output.splitlines() if ln.strip()]
    reason = next((ln for ln in reversed(lines) if ln.lower().startswith(("error", "×", "fatal"))),
                  lines[-1] if lines else "no output")
    return f"failed (exit {sample.code}): {reason[:160]}"


def _json_message(output: str) -> str | None:
    """The message of a ``--json`` error object, if the output holds one."""
    start = output.find("{")
    if start < 0:
        return None
    try:
        data = json.loads(output[start:output.rfind("}") + 1])
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("ok") is False:
        return f"{data.get('error')}: {data.get('message')}"
    return None


def alternate(contenders: Sequence[Contender], reps: int, base_env: Mapping[str, str],
              log: Callable[[str], None]) -> None:
    """Run every contender *reps* times, interleaved A B C A B C; a failing one drops out."""
    for i in range(reps):
        for c in contenders:
            if c.status != "ok":
                continue
            steps = list(c.make_steps(i))
            c.command = " && ".join(s.display() for s in steps)
            # Unmeasured: what the previous run wrote reaches the disk before this one starts,
            # so no tool pays for another's writeback.
            os.sync()
            sample = run_steps(steps, base_env)
            if sample.code != 0:
                c.status = classify_failure(sample, c.is_product)
                log(f"    {c.name}: {c.status}")
                log("      " + sample.output[-1500:].replace("\n", "\n      "))
                continue
            if c.phase is not None:
                phase = c.phase(sample.output)
                sample = Sample(sample.seconds, sample.peak_kib, sample.code, sample.output, phase)
            c.samples.append(sample)
            mem = f", {sample.peak_kib / 1024:.0f} MiB" if sample.peak_kib else ""
            log(f"    {c.name} run {i + 1}: {sample.seconds:.2f} s{mem}")
