"""How lock (and build) cost grows with the number of packages, on synthetic loopback indexes."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import synthetic
from measure import Contender, Step, alternate
from stages import Setup, _uv_platform


def scale_stage(s: Setup, index_root: Path, sizes: Sequence[int], chain: int, reps: int,
                backtrack: Sequence[int] = ()) -> dict[str, object]:
    """Lock with wheelferry and uv (and build with wheelferry) at each size; time per package."""
    points: list[dict[str, object]] = []
    cases = [(n, "dag") for n in sizes] + ([(chain, "chain")] if chain else []) + \
        [(n, "backtrack") for n in backtrack]
    for n, kind in cases:
        label = f"{kind}-{n}"
        expect: dict[str, str] | None = None
        if kind == "backtrack":
            root_req, pkgs, expect = synthetic.backtrack_set(n)
        else:
            root_req, pkgs = synthetic.scale_set(n, chain=kind == "chain")
        s.log(f"  scale {label}: generating {len(pkgs)} wheels")
        tree = synthetic.build_index(index_root / f"scale-{label}", pkgs)
        with synthetic.serve(tree) as served:
            url = served.url
            sub = replace(s, requirement=root_req, index_url=url, work=s.work / "scale" / label,
                          artifacts={}, reps=reps)
            sub.work.mkdir(parents=True, exist_ok=True)
            req_in = sub.work / "requirements.in"
            req_in.write_text(root_req + "\n")

            def wf_lock(i: int, sub: Setup = sub) -> list[Step]:
                d = sub.rundir("lock", "wheelferry", i)
                return [Step((sub.wf, "lock", "-r", sub.requirement, "--target", sub.target,
                              "--index-url", str(sub.index_url), "-o", str(_out(sub, "wheelferry", i)),
                              "--cache", str(d / "cache")), env={"XDG_CACHE_HOME": str(d)})]

            def uv_lock(i: int, sub: Setup = sub, req_in: Path = req_in) -> list[Step]:
                d = sub.rundir("lock", "uv", i)
                return [Step((sub.uv, "pip", "compile", str(req_in), *_uv_platform(sub.target),
                              "--only-binary", ":all:", "--generate-hashes", "--index-url",
                              str(sub.index_url), "--cache-dir", str(d / "cache"), "-o",
                              str(_out(sub, "uv", i) / "requirements.txt"), "--quiet"))]

            def wf_build(i: int, sub: Setup = sub) -> list[Step]:
                d = sub.rundir("build", "wheelferry", i)
                lock = _out(sub, "wheelferry", 0)
                return [Step((sub.wf, "build", "--lock", str(lock), "--no-sign", "-o", str(d / "out"),
                              "--cache", str(d / "cache"), "--jobs", "8"),
                             env={"XDG_CACHE_HOME": str(d)})]

            lockers = [Contender("wheelferry lock", wf_lock, is_product=True),
                       Contender("uv pip compile", uv_lock)]
            alternate(lockers, reps, sub.env(), s.log)
            builders = [Contender("wheelferry build --no-sign", wf_build, is_product=True)]
            if lockers[0].status == "ok":
                alternate(builders, reps, sub.env(), s.log)
            else:
                builders[0].status = "not available yet (needs `wheelferry lock`)"
        resolved = len(expect) if expect is not None else len(synthetic.resolved_files(pkgs, root_req))
        point: dict[str, object] = {"case": label, "packages": resolved}
        for c in [*lockers, *builders]:
            summ = c.summary()
            point[c.name] = summ
            if summ.get("median_s"):
                summ["ms_per_package"] = 1000 * float(summ["median_s"]) / resolved  # type: ignore[arg-type]
        if expect is not None:  # every correct resolution of this tree picks the same versions
            point["right versions"] = {
                "wheelferry lock": _agree(sorted(_out(sub, "wheelferry", 0).glob("requirements.*.txt")),
                                          expect),
                "uv pip compile": _agree([_out(sub, "uv", 0) / "requirements.txt"], expect)}
        points.append(point)
    return {"stage": "scale", "title": "scale curve (synthetic, tiny wheels, cold cache)",
            "input": f"generated indexes of 1 KB wheels (random DAG of fan-out <= 3, a chain, and "
                     f"trees whose newest releases conflict seven levels down, synthetic.backtrack_set), "
                     f"served by {served.server}",
            "points": points, "growth": growth(points)}


def _out(s: Setup, tool: str, i: int) -> Path:
    """Where run *i* of *tool* writes its lock: beside the run folders, which each run clears."""
    d = s.work / "out" / f"{tool}-{i}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _agree(paths: Sequence[Path], expect: dict[str, str]) -> str:
    """How many of the expected pins a requirements file has: ``N of M``."""
    pins: dict[str, str] = {}
    for path in paths:
        if path.is_file():
            for line in path.read_text().splitlines():
                name, sep, version = line.strip().partition("==")
                if sep and not line.startswith((" ", "#")):
                    pins[synthetic._norm(name)] = version.split()[0].rstrip("\\").strip()  # noqa: SLF001
    return f"{sum(1 for n, v in expect.items() if pins.get(n) == v)} of {len(expect)}"


def growth(points: Sequence[dict[str, object]]) -> dict[str, str]:
    """Per tool: the marginal cost per extra package between the DAG sizes, and its trend.

    The smallest size's time is mostly start-up, so the verdict compares marginal
    costs (ms per extra package) rather than totals: equal marginal costs are
    linear growth; a quadratic cost would multiply the marginal cost by the size ratio.
    """
    out: dict[str, str] = {}
    dags = [p for p in points if str(p["case"]).startswith("dag-")]
    for tool in ("wheelferry lock", "uv pip compile", "wheelferry build --no-sign"):
        xs = [(int(p["packages"]), float(p[tool]["median_s"])) for p in dags  # type: ignore[index]
              if isinstance(p.get(tool), dict) and p[tool].get("median_s")]  # type: ignore[union-attr]
        if len(xs) < 3:
            continue
        (n0, t0), (n1, t1), (n2, t2) = xs[-3:]
        m1 = (t1 - t0) / (n1 - n0) * 1000
        m2 = (t2 - t1) / (n2 - n1) * 1000
        trend = m2 / m1 if m1 > 0 else float("inf")
        exponent = math.log(max(t2 - t0, 1e-9) / max(t1 - t0, 1e-9)) / math.log((n2 - n0) / (n1 - n0))
        verdict = ("linear (or better)" if trend <= 1.5 else
                   "mildly super-linear" if trend <= 3 else "super-linear")
        out[tool] = (f"{verdict}: {m1:.1f} ms per extra package from {n0} to {n1}, {m2:.1f} ms "
                     f"from {n1} to {n2} (x{trend:.1f}); time above start-up grows as n^{exponent:.2f}")
    for kind in ("dag", "backtrack"):
        pts = [p for p in points if str(p["case"]).startswith(f"{kind}-")]
        for tool in ("wheelferry lock", "uv pip compile"):
            per = [(int(p["packages"]), float(p[tool]["ms_per_package"])) for p in pts  # type: ignore[index]
                   if isinstance(p.get(tool), dict) and p[tool].get("ms_per_package")]  # type: ignore[union-attr]
            if len(per) >= 2 and per[-2][0] >= 100:
                (na, a), (nb, b) = per[-2], per[-1]
                out[f"{tool}, {kind} ms/package"] = (f"{a:.1f} at {na}, {b:.1f} at {nb} "
                                                     f"(x{b / a:.2f}; at most 1 is linear or better)")
    return out
