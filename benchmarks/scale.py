"""How lock (and build) cost grows with the number of packages, on synthetic loopback indexes."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import synthetic
from measure import Contender, Step, alternate
from stages import Setup, _uv_platform


def scale_stage(s: Setup, index_root: Path, sizes: Sequence[int], chain: int, reps: int) -> dict[str, object]:
    """Lock with wheelferry and uv (and build with wheelferry) at each size; time per package."""
    points: list[dict[str, object]] = []
    cases = [(n, False) for n in sizes] + ([(chain, True)] if chain else [])
    for n, is_chain in cases:
        label = f"chain-{n}" if is_chain else f"dag-{n}"
        root_req, pkgs = synthetic.scale_set(n, chain=is_chain)
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
                              "--index-url", str(sub.index_url), "-o", str(d / "lock"),
                              "--cache", str(d / "cache")), env={"XDG_CACHE_HOME": str(d)})]

            def uv_lock(i: int, sub: Setup = sub, req_in: Path = req_in) -> list[Step]:
                d = sub.rundir("lock", "uv", i)
                return [Step((sub.uv, "pip", "compile", str(req_in), *_uv_platform(sub.target),
                              "--only-binary", ":all:", "--generate-hashes", "--index-url",
                              str(sub.index_url), "--cache-dir", str(d / "cache"), "-o",
                              str(d / "requirements.txt"), "--quiet"))]

            def wf_build(i: int, sub: Setup = sub) -> list[Step]:
                d = sub.rundir("build", "wheelferry", i)
                lock = sub.work / "lock" / "wheelferry-0" / "lock"
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
        resolved = len(synthetic.resolved_files(pkgs, root_req))
        point: dict[str, object] = {"case": label, "packages": resolved}
        for c in [*lockers, *builders]:
            summ = c.summary()
            point[c.name] = summ
            if summ.get("median_s"):
                summ["ms_per_package"] = 1000 * float(summ["median_s"]) / resolved  # type: ignore[arg-type]
        points.append(point)
    return {"stage": "scale", "title": "scale curve (synthetic, tiny wheels, cold cache)",
            "points": points, "growth": growth(points)}


def growth(points: Sequence[dict[str, object]]) -> dict[str, str]:
    """Per tool: the log-log slope of time against package count between the DAG sizes."""
    out: dict[str, str] = {}
    dags = [p for p in points if str(p["case"]).startswith("dag-")]
    if len(dags) < 2:
        return out
    for tool in ("wheelferry lock", "uv pip compile", "wheelferry build --no-sign"):
        xs = [(int(p["packages"]), p[tool].get("median_s")) for p in dags  # type: ignore[union-attr]
              if isinstance(p.get(tool), dict) and p[tool].get("median_s")]  # type: ignore[union-attr]
        if len(xs) < 2:
            continue
        (n0, t0), (n1, t1) = xs[-2], xs[-1]
        slope = math.log(float(t1) / float(t0)) / math.log(n1 / n0)
        marginal = (float(t1) - float(t0)) / (n1 - n0) * 1000
        verdict = ("linear or better" if slope <= 1.15 else
                   "slightly worse than linear" if slope <= 1.4 else "super-linear")
        out[tool] = (f"{verdict}: time grows as n^{slope:.2f} from {n0} to {n1} packages "
                     f"({marginal:.1f} ms per extra package)")
    return out
