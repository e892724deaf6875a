"""The measured stages (lock, fetch, pack, verify, install) on identical inputs for every tool."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from measure import Contender, Step, alternate, classify_failure, run_steps

FETCH_PHASE = re.compile(r"fetched .*?\((\d+(?:\.\d+)?) s\)")
_RUN_DIR = re.compile(r".+-(-?\d+)$")


@dataclass(frozen=True)
class FileRef:
    """One wheel of the resolved set: file name, a URL to fetch it from, its sha256."""

    filename: str
    url: str
    sha256: str


@dataclass
class Setup:
    """Everything the stages share: paths, the target, the requirement, the index, the keys."""

    root: Path
    tools: Path
    work: Path
    target: str
    requirement: str
    index_url: str | None
    reps: int
    host_target: bool
    log: Callable[[str], None]
    expected: list[FileRef] = field(default_factory=list)
    artifacts: dict[str, object] = field(default_factory=dict)

    @property
    def wf(self) -> str:
        return str(self.root / ".venv" / "bin" / "wheelferry")

    @property
    def uv(self) -> str:
        return str(self.tools / "uv")

    @property
    def py(self) -> str:
        return str(self.tools / "python")

    def index_args(self, flag: str = "--index-url") -> list[str]:
        """The index option for a tool, or nothing: then each tool uses pip's default index."""
        return [flag, self.index_url] if self.index_url else []

    def rundir(self, stage: str, tool: str, i: int) -> Path:
        """A fresh, empty directory for run *i* of *tool* in *stage*.

        Every earlier run directory of the stage (``TOOL-N``; not the ``TOOL-cache`` of warm
        runs) is removed first: gigabytes of finished runs would otherwise fill the page
        cache, and every later run would pay for reclaiming memory while it writes.
        """
        base = self.work / stage
        if base.is_dir():
            for old in base.iterdir():
                if old.is_dir() and _RUN_DIR.match(old.name):
                    shutil.rmtree(old)
        d = base / f"{tool}-{i}"
        d.mkdir(parents=True)
        return d

    def env(self) -> dict[str, str]:
        """The environment every tool runs in: no local pip/uv configuration, no progress bars."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PIP_", "UV_", "PEX_", "WHEELFERRY_", "XDG_CACHE"))}
        env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
                   PIP_NO_INPUT="1", WHEELFERRY_NO_PROGRESS="1", UV_NO_PROGRESS="1",
                   SOURCE_DATE_EPOCH="1700000000")
        return env


def _uv_platform(target: str) -> list[str]:
    plat, py = target.split(":")[:2]
    os_name, _, arch = plat.partition("-")
    name = {"linux": f"{arch}-manylinux_2_28", "windows": f"{arch}-pc-windows-msvc",
            "macos": f"{arch}-apple-darwin"}[os_name].replace("amd64-pc", "x86_64-pc")
    return ["--python-platform", name, "--python-version", py]


def _prime(s: Setup, contenders: Sequence[Contender]) -> None:
    """One unmeasured run of each contender so its cache is warm."""
    for c in contenders:
        sample = run_steps(list(c.make_steps(-1)), s.env())
        if sample.code != 0:
            c.status = classify_failure(sample, c.is_product)


AIRFLOW = "apache-airflow[celery,postgres,amazon]==2.10.3"
# Two of its dependencies publish no wheel; wheelferry leaves them out with --exclude, uv
# with an override that no environment matches.
AIRFLOW_EXCLUDE = ("python-nvd3", "unicodecsv")


def airflow_stage(s: Setup, warm: bool) -> dict[str, object]:
    """The airflow tree (174 packages) locked by wheelferry and uv, cold or warm; live only."""
    sub = replace(s, requirement=AIRFLOW, work=s.work / "airflow", host_target=False)
    sub.work.mkdir(parents=True, exist_ok=True)
    overrides = sub.work / "overrides.txt"
    overrides.write_text("".join(f"{n} ; sys_platform == 'never'\n" for n in AIRFLOW_EXCLUDE))
    wf_extra = tuple(a for n in AIRFLOW_EXCLUDE for a in ("--exclude", n))
    result = lock_stage(sub, warm, stage_prefix="lock-airflow", wf_extra=wf_extra,
                        uv_extra=("--override", str(overrides)))
    result["title"] = f"lock {AIRFLOW} ({'warm' if warm else 'cold'} cache)"
    result["input"] = f"live: `{AIRFLOW}` from pip's default index"
    result["notes"] = [f"wheelferry: `--exclude {' --exclude '.join(AIRFLOW_EXCLUDE)}`; uv: the same two "
                       "overridden to a marker no environment matches (neither has a wheel)."]
    return result


def lock_stage(s: Setup, warm: bool, *, stage_prefix: str = "lock", wf_extra: Sequence[str] = (),
               uv_extra: Sequence[str] = ()) -> dict[str, object]:
    """wheelferry lock vs uv pip compile vs pip install --dry-run --report, cold or warm cache."""
    stage = f"{stage_prefix}-warm" if warm else f"{stage_prefix}-cold"
    req_in = s.work / "requirements.in"
    req_in.write_text(s.requirement + "\n")

    def cache(tool: str, d: Path) -> Path:
        return s.work / stage / f"{tool}-cache" if warm else d / "cache"

    def wf_steps(i: int) -> list[Step]:
        d = s.rundir(stage, "wheelferry", i)
        c = cache("wheelferry", d)
        return [Step((s.wf, "lock", "-r", s.requirement, "--target", s.target, *s.index_args(),
                      *wf_extra, "-o", str(d / "lock"), "--cache", str(c), "--json"),
                     env={"XDG_CACHE_HOME": str(c)})]

    def uv_steps(i: int) -> list[Step]:
        d = s.rundir(stage, "uv", i)
        return [Step((s.uv, "pip", "compile", str(req_in), *_uv_platform(s.target), "--only-binary",
                      ":all:", "--generate-hashes", *s.index_args(), *uv_extra, "--cache-dir",
                      str(cache("uv", d)), "-o", str(d / "requirements.txt"), "--quiet"))]

    def pip_steps(i: int) -> list[Step]:
        d = s.rundir(stage, "pip", i)
        return [Step((s.py, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                      "--only-binary", ":all:", "--report", str(d / "report.json"), "--quiet",
                      *s.index_args(), "--cache-dir", str(cache("pip", d)), s.requirement))]

    cs = [Contender("wheelferry", wf_steps, is_product=True), Contender("uv", uv_steps)]
    if s.host_target:
        cs.append(Contender("pip", pip_steps))
    if warm:
        _prime(s, cs)
    alternate(cs, s.reps, s.env(), s.log)
    return _result(stage, f"lock ({'warm' if warm else 'cold'} cache)", cs, notes=[
        "uv resolves for the target with --python-platform/--python-version; pip runs only when "
        "the target is this host (pip install --dry-run --report)."])


def ensure_lock(s: Setup) -> Path | None:
    """A wheelferry lock directory for the target (made once, unmeasured), or None."""
    if "lock" not in s.artifacts:
        d = s.work / "artifacts" / "lock"
        sample = run_steps([Step((s.wf, "lock", "-r", s.requirement, "--target", s.target,
                                  *s.index_args(), "-o", str(d), "--cache",
                                  str(s.work / "artifacts" / "lock-cache")))], s.env())
        s.artifacts["lock"] = d if sample.code == 0 else None
        if sample.code != 0:
            s.artifacts["lock_status"] = classify_failure(sample, True)
    return s.artifacts["lock"]  # type: ignore[return-value]


def file_list(s: Setup) -> list[FileRef]:
    """The resolved wheel set: from wheelferry's lock, else the generator's answer, else pip's report."""
    lock = ensure_lock(s)
    if lock is not None:
        data = json.loads((lock / "wheelferry.lock.json").read_text())
        return [FileRef(w["filename"], w["urls"][0], w["sha256"])
                for _, w in sorted(data["wheels"].items())]
    if s.expected:
        return s.expected
    if "pip_report" not in s.artifacts:
        d = s.work / "artifacts" / "pip-report"
        d.mkdir(parents=True, exist_ok=True)
        run_steps([Step((s.py, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                         "--only-binary", ":all:", "--report", str(d / "r.json"), "--quiet",
                         *s.index_args(), s.requirement))], s.env())
        report = json.loads((d / "r.json").read_text())
        s.artifacts["pip_report"] = [
            FileRef(x["download_info"]["url"].rsplit("/", 1)[-1], x["download_info"]["url"],
                    x["download_info"]["archive_info"]["hashes"]["sha256"])
            for x in report["install"]]
    return s.artifacts["pip_report"]  # type: ignore[return-value]


def _not_yet(name: str, why: str) -> Contender:
    c = Contender(name, lambda i: [], is_product=True)
    c.status = f"not available yet ({why})"
    return c


def fetch_stage(s: Setup) -> dict[str, object]:
    """wheelferry build's download phase vs pip download --no-deps vs 8 parallel curl processes."""
    files = file_list(s)
    lock = ensure_lock(s)
    urls = s.work / "urls.txt"
    urls.write_text("".join(f.url + "\n" for f in files))

    def wf_steps(i: int) -> list[Step]:
        d = s.rundir("fetch", "wheelferry", i)
        return [Step((s.wf, "build", "--lock", str(lock), "--no-sign", "-o", str(d / "out"),
                      "--cache", str(d / "cache"), "--jobs", "8"), env={"XDG_CACHE_HOME": str(d)})]

    def pip_steps(i: int) -> list[Step]:
        d = s.rundir("fetch", "pip", i)
        return [Step((s.py, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d",
                      str(d / "out"), "--cache-dir", str(d / "cache"), "--quiet",
                      *[f.url for f in files]))]

    def curl_steps(i: int) -> list[Step]:
        d = s.rundir("fetch", "curl", i)
        return [Step(("xargs", "-P", "8", "-n", "1", "curl", "-fsS", "-O"), cwd=d, stdin=urls)]

    # The floor of any tool that opens one connection per file: the largest wheel alone.
    largest = max(files, key=lambda f: _size(s, f))
    big = _size(s, largest)
    ranges = s.work / "ranges.txt"
    ranges.write_text("".join(f"{big * k // 4}-{big * (k + 1) // 4 - 1}\n" for k in range(4)))

    def alone_steps(i: int) -> list[Step]:
        d = s.rundir("fetch", "curl-largest", i)
        return [Step(("curl", "-fsS", "-o", str(d / largest.filename), largest.url))]

    def split_steps(i: int) -> list[Step]:
        d = s.rundir("fetch", "curl-ranges", i)
        return [Step(("xargs", "-P", "4", "-I", "RANGE", "curl", "-fsS", "-r", "RANGE", "-o",
                      "part-RANGE", largest.url), cwd=d, stdin=ranges)]

    phase = _fetch_phase
    wf = (Contender("wheelferry", wf_steps, is_product=True, phase=phase) if lock is not None
          else _not_yet("wheelferry", "needs `wheelferry lock`"))
    cs = [wf, Contender("pip download", pip_steps), Contender("curl x8", curl_steps),
          Contender("curl, largest wheel alone", alone_steps, nbytes=big),
          Contender("curl x4 ranges, largest wheel", split_steps, nbytes=big)]
    alternate(cs, s.reps, s.env(), s.log)
    total = sum(_size(s, f) for f in files)
    return _result("fetch", f"fetch ({len(files)} wheels, {total / 1e6:.0f} MB, cold cache)", cs, notes=[
        "wheelferry's time is its own 'fetched ... (N s)' figure for the download phase "
        "(hash while streaming, into its cache); wall_median_s is the whole cold `build --no-sign`.",
        "pip download gets the exact file URLs (no index lookups); curl does no hashing.",
        f"The last two rows fetch only the largest wheel ({largest.filename}, {big / 1e6:.0f} MB; "
        "their MB/s divide its size): over one connection, no hashing, it is the least time any "
        "tool needs for the set unless that file is split; four Range requests show what "
        "splitting it gains from this index."], nbytes=total)


def _fetch_phase(output: str) -> float | None:
    m = FETCH_PHASE.search(output)
    return float(m.group(1)) if m else None


def _size(s: Setup, f: FileRef) -> int:
    p = ensure_wheels(s) / f.filename
    return p.stat().st_size if p.exists() else 0


def _total(s: Setup) -> int:
    """Bytes of the resolved wheels: the MB/s figures of fetch, pack and verify divide this."""
    return sum(_size(s, f) for f in file_list(s))


def ensure_wheels(s: Setup) -> Path:
    """A flat folder of the resolved wheels for the peers (hard links or one pip download)."""
    d = s.work / "artifacts" / "wheels"
    if d.is_dir():
        return d
    d.mkdir(parents=True)
    files = file_list(s)
    local = s.artifacts.get("files_dir")
    if isinstance(local, Path):
        for f in files:
            os.link(local / f.filename, d / f.filename)
    else:
        run_steps([Step((s.py, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                         "-d", str(d), "--quiet", *[f.url for f in files]))], s.env())
    return d


def ensure_keys(s: Setup) -> dict[str, str]:
    """A throwaway ed25519 signing key in a private GNUPGHOME; armoured and binary public keyrings."""
    if "keys" not in s.artifacts:
        home = Path(s.work / "artifacts" / "gnupg")
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        gpg = ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--quiet"]
        subprocess.run([*gpg, "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
                        "Wheelferry Bench <bench@example.test>", "ed25519", "sign", "1d"], check=True,
                       capture_output=True)
        out = subprocess.run([*gpg, "--with-colons", "--list-keys"], check=True,
                             capture_output=True, text=True).stdout
        fpr = next(ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr:"))
        asc, binary = home.parent / "keys.asc", home.parent / "keys.gpg"
        asc.write_bytes(subprocess.run([*gpg, "--armor", "--export", fpr], check=True,
                                       capture_output=True).stdout)
        binary.write_bytes(subprocess.run([*gpg, "--export", fpr], check=True,
                                          capture_output=True).stdout)
        s.artifacts["keys"] = {"home": str(home), "fpr": fpr, "asc": str(asc), "gpg": str(binary)}
    return s.artifacts["keys"]  # type: ignore[return-value]


def _wf_build(s: Setup, out: Path, cache: Path, keys: dict[str, str]) -> list[Step]:
    return [Step((s.wf, "build", "--lock", str(ensure_lock(s)), "--sign-key", keys["fpr"],
                  "--gnupghome", keys["home"], "-o", str(out), "--cache", str(cache), "--jobs", "8"),
                 env={"XDG_CACHE_HOME": str(cache)})]


def _peer_pack(s: Setup, out: Path, keys: dict[str, str]) -> list[Step]:
    staging = s.work / "artifacts" / "staging"
    if not staging.is_dir():
        shutil.copytree(ensure_wheels(s), staging / "wheels", copy_function=os.link)
    names = sorted(p.name for p in (staging / "wheels").iterdir())
    tar = out / "bundle.tar"
    return [
        Step(("sha256sum", *[f"wheels/{n}" for n in names]), cwd=staging,
             stdout=staging / "SHA256SUMS"),
        Step(("tar", "--sort=name", "--mtime=@1700000000", "--owner=0", "--group=0",
              "--numeric-owner", "-cf", str(tar), "-C", str(staging), "SHA256SUMS", "wheels")),
        Step(("gpg", "--homedir", keys["home"], "--batch", "--yes", "--quiet", "--armor",
              "--detach-sign", "--local-user", keys["fpr"], "--output", str(tar) + ".asc", str(tar))),
    ]


def ensure_bundles(s: Setup) -> tuple[Path | None, Path]:
    """wheelferry's signed bundle (None if build is not available) and the peers' tar + .asc."""
    if "bundles" not in s.artifacts:
        keys = ensure_keys(s)
        wf_tar: Path | None = None
        if ensure_lock(s) is not None:
            out = s.work / "artifacts" / "wf-bundle"
            shutil.rmtree(out, ignore_errors=True)
            sample = run_steps(_wf_build(s, out, s.work / "artifacts" / "wf-cache", keys), s.env())
            tars = sorted(out.glob("*.tar")) if sample.code == 0 else []
            wf_tar = tars[0] if tars else None
            if wf_tar is None:
                s.artifacts["build_status"] = classify_failure(sample, True)
        out = s.work / "artifacts" / "peer-bundle"
        out.mkdir(parents=True, exist_ok=True)
        run_steps(_peer_pack(s, out, keys), s.env())
        s.artifacts["bundles"] = (wf_tar, out / "bundle.tar")
    return s.artifacts["bundles"]  # type: ignore[return-value]


def pack_stage(s: Setup) -> dict[str, object]:
    """wheelferry build from a warm cache (hash + tar + sign) vs sha256sum + tar cf + gpg."""
    keys = ensure_keys(s)
    ensure_bundles(s)
    cache = s.work / "artifacts" / "wf-cache"
    cs = [
        Contender("wheelferry", lambda i: _wf_build(s, s.rundir("pack", "wheelferry", i), cache, keys),
                  is_product=True)
        if s.artifacts.get("lock") else _not_yet("wheelferry", "needs `wheelferry lock`"),
        Contender("sha256sum+tar+gpg", lambda i: _peer_pack(s, s.rundir("pack", "peer", i), keys)),
    ]
    alternate(cs, s.reps, s.env(), s.log)
    return _result("pack", "pack (hash + tar + sign, warm cache)", cs, notes=[
        "wheelferry also writes MANIFEST.json, the SBOM and the offline .pyz and signs both files."],
        nbytes=_total(s))


def verify_stage(s: Setup) -> dict[str, object]:
    """wheelferry verify vs gpgv + tar x + sha256sum -c."""
    keys = ensure_keys(s)
    wf_tar, peer_tar = ensure_bundles(s)

    def peer(i: int) -> list[Step]:
        d = s.rundir("verify", "peer", i)
        return [Step(("gpgv", "--quiet", "--keyring", keys["gpg"], str(peer_tar) + ".asc", str(peer_tar))),
                Step(("tar", "-xf", str(peer_tar), "-C", str(d))),
                Step(("sha256sum", "-c", "--quiet", "SHA256SUMS"), cwd=d)]

    wf = (Contender("wheelferry", lambda i: [Step((s.wf, "verify", str(wf_tar), "--keyring", keys["asc"],
                                                   "--trusted-key", keys["fpr"], "--state-dir",
                                                   str(s.rundir("verify", "wheelferry", i)), "--json"))],
                    is_product=True)
          if wf_tar else _not_yet("wheelferry", "needs `wheelferry build`"))
    cs = [wf, Contender("gpgv+sha256sum", peer)]
    alternate(cs, s.reps, s.env(), s.log)
    return _result("verify", "verify (signature + every hash)", cs, notes=[
        "the peers must unpack the tar to check sums; wheelferry checks members while streaming."],
        nbytes=_total(s))


def _unshare() -> list[str]:
    try:
        ok = subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0
    except OSError:
        ok = False
    return ["unshare", "-rn"] if ok else []


def find_uv(s: Setup) -> str | None:
    """uv: the pinned one beside the peers, else the repo's .venv, else PATH."""
    for cand in (s.tools / "uv", s.root / ".venv" / "bin" / "uv"):
        if os.access(cand, os.X_OK):
            return str(cand)
    return shutil.which("uv")


def install_stage(s: Setup, stage: str = "install",
                  title: str = "install (offline, fresh venv)") -> dict[str, object]:
    """wheelferry install vs pip --no-index vs uv pip install --offline, with and without .pyc."""
    keys = ensure_keys(s)
    wf_tar, _ = ensure_bundles(s)
    wheels = ensure_wheels(s)
    req = s.work / "artifacts" / "requirements.txt"
    req.write_text("".join(f"{_name_version(f.filename)} --hash=sha256:{f.sha256}\n"
                           for f in file_list(s)))
    pre = tuple(_unshare())
    base_py = getattr(sys, "_base_executable", sys.executable)
    uv_bin = find_uv(s)

    def wf(i: int) -> list[Step]:
        d = s.rundir(stage, "wheelferry", i)
        return [Step((*pre, s.wf, "install", str(wf_tar), "--keyring", keys["asc"], "--trusted-key",
                      keys["fpr"], "--venv", str(d / "venv"), "--state-dir", str(d / "state"),
                      "--json"))]

    def pip(i: int) -> list[Step]:
        d = s.rundir(stage, "pip", i)
        return [Step((*pre, base_py, "-m", "venv", str(d / "venv"))),
                Step((*pre, str(d / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet",
                      "--no-index", "--find-links", str(wheels), "--require-hashes", "-r", str(req)))]

    def uv(compile_: bool) -> Callable[[int], list[Step]]:
        def steps(i: int) -> list[Step]:
            d = s.rundir(stage, "uv-pyc" if compile_ else "uv", i)
            assert uv_bin is not None
            return [Step((*pre, uv_bin, "venv", "--quiet", "--python", base_py, str(d / "venv"))),
                    Step((*pre, uv_bin, "pip", "install", "--quiet", "--offline", "--no-index",
                          "--find-links", str(wheels), "--require-hashes", "-r", str(req), "--python",
                          str(d / "venv" / "bin" / "python"), "--cache-dir", str(d / "cache"),
                          *(["--compile-bytecode"] if compile_ else [])))]
        return steps

    cs = [Contender("wheelferry", wf, is_product=True) if wf_tar
          else _not_yet("wheelferry", "needs `wheelferry build`"),
          Contender("pip", pip)]
    for compile_, name in ((True, "uv --compile-bytecode"), (False, "uv (no .pyc)")):
        c = Contender(name, uv(compile_))
        if uv_bin is None:
            c.status = "skipped: no uv (benchmarks/.venv, .venv or PATH)"
        cs.append(c)
    alternate(cs, s.reps, s.env(), s.log)
    files = file_list(s)
    total = _total(s)
    notes = [f"{len(files)} wheels, {total / 1e6:.0f} MB; each run installs into a fresh venv; "
             "venv creation is counted for every tool (`python -m venv` brings pip, `uv venv` does not).",
             "wheelferry also checks the bundle's signature and every hash first; pip and uv get the "
             "extracted wheels. wheelferry and pip write bytecode: `uv --compile-bytecode` is the "
             "like-for-like peer, `uv (no .pyc)` the floor."]
    notes.append("run under `unshare -rn` (no network)." if pre else
                 "`unshare -rn` is not permitted here: run with the network present.")
    return _result(stage, title, cs, notes=notes)


def _name_version(filename: str) -> str:
    name, version = filename.split("-")[:2]
    return f"{name}=={version}"


def _result(stage: str, title: str, cs: Sequence[Contender], notes: list[str],
            nbytes: int = 0) -> dict[str, object]:
    rows = [c.summary() for c in cs]
    for c, r in zip(cs, rows):
        moved = c.nbytes or nbytes
        if moved and r.get("median_s"):
            r["mb_per_s"] = moved / 1e6 / float(r["median_s"])  # type: ignore[arg-type]
    product = next((r for r in rows if r["tool"] == "wheelferry" and r.get("median_s")), None)
    for r in rows:
        if product and r is not product and r.get("median_s"):
            r["ratio"] = float(product["median_s"]) / float(r["median_s"])  # type: ignore[arg-type]
    out: dict[str, object] = {"stage": stage, "title": title, "rows": rows, "notes": notes}
    if nbytes:
        out["bytes"] = nbytes
    return out
