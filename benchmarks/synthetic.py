"""Synthetic indexes: generated wheels shaped like a real TF tree, served on loopback.

Wheels are real PEP 427 files with incompressible padding, listed in a PEP 503
tree with sha256 fragments and PEP 658 ``.metadata`` files beside them, so every
tool can resolve from metadata alone and must download the full files to fetch.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

MB = 1_000_000
FIXED_DATE = (2024, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class SynthPackage:
    """One wheel to generate: name, version, dependencies, size in bytes, wheel tag."""

    name: str
    version: str
    requires: tuple[str, ...] = ()
    size: int = 4_000
    tag: str = "py3-none-any"
    modules: int = 0  # generated Python modules (bytecode to compile), beside __init__.py
    members: int = 1  # files the padding is split into (what an installer unpacks one by one)
    script: bool = False  # a console script entry point (a launcher to write)

    @property
    def filename(self) -> str:
        return f"{_dist(self.name)}-{self.version}-{self.tag}.whl"


def _dist(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def tf_like_set(python: tuple[int, int], *, quick: bool, gpu: bool) -> tuple[str, list[SynthPackage]]:
    """A root requirement and a wheel set sized like TensorFlow's tree (scaled down in quick)."""
    rng = random.Random(2020)
    cp = f"cp{python[0]}{python[1]}"
    native = f"{cp}-{cp}-manylinux_2_17_x86_64"
    scale_big, scale_mid = (20, 4) if quick else (1, 1)
    # Like tensorflow / a CUDA-free jaxlib / numpy: a few 50-200 MB native wheels.
    large = [("ferry-core", 200), ("ferry-xla", 120), ("ferry-kernels", 60)]
    # Like numpy, grpcio, h5py, ml-dtypes, tensorboard: a handful of 4-16 MB wheels.
    medium = [("ferry-arrays", 16), ("ferry-rpc", 6), ("ferry-h5", 4.5), ("ferry-dtypes", 4.7),
              ("ferry-board", 5.5)]
    small_names = [f"ferry-lib{i:02d}" for i in range(26 if not quick else 20)]
    pkgs: list[SynthPackage] = []
    for name, mb in large:
        pkgs.append(SynthPackage(name, "2.20.0", size=int(mb * MB / scale_big), tag=native))
    for name, mb in medium:
        pkgs.append(SynthPackage(name, "1.4.0", size=int(mb * MB / scale_mid), tag=native))
    for name in small_names:
        # Log-uniform 20 KB .. 1.5 MB, like the pure-Python tail of a TF tree.
        size = int(math.exp(rng.uniform(math.log(20_000), math.log(1_500_000))))
        pkgs.append(SynthPackage(name, f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.0", size=size))
    if gpu:
        cuda = [("ferry-cudnn", 660), ("ferry-cublas", 390), ("ferry-cusparse", 200),
                ("ferry-nccl", 200), ("ferry-cufft", 190), ("ferry-cusolver", 150),
                ("ferry-nvrtc", 50), ("ferry-curand", 55)]
        for name, mb in cuda:
            pkgs.append(SynthPackage(name, "12.5.0", size=int(mb * MB / scale_big),
                                     tag="py3-none-manylinux_2_17_x86_64"))
    # A shallow DAG: each package needs up to three later ones; the root needs the rest.
    names = [p.name for p in pkgs]
    deps: dict[str, list[str]] = {n: [] for n in names}
    needed: set[str] = set()
    for i, n in enumerate(names[:-1]):
        for j in sorted(rng.sample(range(i + 1, len(names)), min(3, len(names) - i - 1))):
            if rng.random() < 0.5:
                deps[n].append(names[j])
                needed.add(names[j])
    by_name = {p.name: p for p in pkgs}
    out = [SynthPackage(p.name, p.version, tuple(f"{d}>={by_name[d].version}" for d in deps[p.name]),
                        p.size, p.tag) for p in pkgs]
    root_deps = tuple(f"{n}=={by_name[n].version}" for n in names if n not in needed or n in
                      {x for x, _ in large})
    out.append(SynthPackage("ferrytf", "2.20.0", root_deps, size=40_000, tag="py3-none-any"))
    # Older releases the resolver must see past (never downloaded).
    out += [SynthPackage(p.name, "0.9.0", size=2_000) for p in out[::3]]
    return "ferrytf==2.20.0", out


def install_set(python: tuple[int, int], *, quick: bool) -> tuple[str, list[SynthPackage]]:
    """Many small pure-Python wheels and one big native one: what an installer spends its time on.

    150 (quick: 60) wheels of 6-40 generated modules each, every fourth with a console
    script, and one 250 MB (quick: 25 MB) wheel of 2,000 (quick: 400) members, 600
    (quick: 150) of them modules.  Its payload compresses about 2:1, like a native library.
    """
    rng = random.Random(2613)
    cp = f"cp{python[0]}{python[1]}"
    n_small, big_mb, big_members, big_modules = (60, 25, 400, 150) if quick else (150, 250, 2_000, 600)
    pkgs = [SynthPackage("ferry-big", "3.1.0", size=big_mb * MB, tag=f"{cp}-{cp}-manylinux_2_17_x86_64",
                         modules=big_modules, members=big_members, script=True)]
    for i in range(n_small):
        modules = int(math.exp(rng.uniform(math.log(6), math.log(40))))
        pkgs.append(SynthPackage(f"ferry-small{i:03d}", f"1.{rng.randint(0, 30)}.0", size=20_000,
                                 modules=modules, script=i % 4 == 0))
    root = SynthPackage("ferrymany", "1.0.0", tuple(f"{p.name}=={p.version}" for p in pkgs), size=2_000)
    return "ferrymany==1.0.0", [*pkgs, root]


def _module_source(seed: str, k: int) -> bytes:
    """A few KB of ordinary Python (functions, a class, constants): something to compile."""
    rng = random.Random(f"{seed}-{k}")
    out = [f'"""Generated module {k} of {seed}."""', "", "import math", ""]
    for f in range(rng.randint(4, 16)):
        out += [f"def func_{f}(x, y={rng.randint(0, 99)}):",
                "    total = 0",
                "    for i in range(x):",
                f"        if i % {rng.randint(2, 9)} == 0:",
                f"            total += math.sqrt(i + y) * {rng.random():.6f}",
                "        else:",
                f"            total -= i ^ {rng.randint(0, 4096)}",
                f"    return {{'name': 'func_{f}', 'total': total, 'k': {k}}}", ""]
    out += [f"class Thing{k}:", "    def __init__(self, value):", "        self.value = value", "",
            "    def __repr__(self):", f"        return f'Thing{k}({{self.value!r}})'", "",
            f"TABLE = {[rng.randint(0, 10**6) for _ in range(rng.randint(10, 60))]!r}", ""]
    return "\n".join(out).encode()


def _payload_chunk(rng: random.Random, n: int) -> bytes:
    """*n* bytes that deflate about 2:1: random halves and runs of a repeated word, alternating."""
    out = bytearray()
    while len(out) < n:
        out += rng.randbytes(2048)
        out += rng.randbytes(8) * 256
    return bytes(out[:n])


def scale_set(n: int, *, chain: bool = False) -> tuple[str, list[SynthPackage]]:
    """*n* tiny packages: a random DAG of fan-out <= 3, or (chain) p0 -> p1 -> ... -> p(n-1)."""
    rng = random.Random(n)
    names = [f"scale-p{i:04d}" for i in range(n)]
    deps: dict[str, list[str]] = {x: [] for x in names}
    if chain:
        for i in range(n - 1):
            deps[names[i]].append(names[i + 1])
        roots = [names[0]]
    else:
        reached: set[str] = set()
        for i in range(n - 1):
            for j in sorted(rng.sample(range(i + 1, n), min(3, n - i - 1))):
                if rng.random() < 0.4:
                    deps[names[i]].append(names[j])
                    reached.add(names[j])
        roots = [x for x in names if x not in reached]
    pkgs = [SynthPackage(x, "1.0.0", tuple(f"{d}>=1" for d in deps[x]), size=1_000) for x in names]
    root = "scale-chain" if chain else "scale-root"
    pkgs.append(SynthPackage(root, "1.0.0", tuple(f"{r}>=1" for r in roots), size=1_000))
    return f"{root}==1.0.0", pkgs


def backtrack_set(n: int) -> tuple[str, list[SynthPackage], dict[str, str]]:
    """About *n* packages in groups of ten whose newest releases fail deep in the tree.

    Group k: ``scale-bt{k}-a`` 1.0-3.0 (release v needs ``-b>=v`` and a chain of seven
    ``-c1``..``-c7``), ``-b`` 1.0-3.0, and the chain's end ``-z``, which needs ``-b<2``.
    A resolver that takes the newest releases first pins ``a`` 3.0 and ``b`` 3.0 and only
    learns seven levels down that ``b`` must stay below 2: it has to go back twice per
    group, to ``a`` 1.0 and ``b`` 1.0.  Returns the root requirement, the wheels, and the
    versions every correct resolution picks.
    """
    groups = max(1, n // 10)
    pkgs: list[SynthPackage] = []
    expect: dict[str, str] = {}
    for k in range(groups):
        g = f"scale-bt{k:03d}"
        chain = [f"{g}-c{i}" for i in range(1, 8)]
        for v in (1, 2, 3):
            pkgs.append(SynthPackage(f"{g}-a", f"{v}.0.0", (f"{g}-b>={v}", f"{chain[0]}>=1"), size=1_000))
            pkgs.append(SynthPackage(f"{g}-b", f"{v}.0.0", size=1_000))
        for here, nxt in zip(chain, chain[1:] + [f"{g}-z"]):
            pkgs.append(SynthPackage(here, "1.0.0", (f"{nxt}>=1",), size=1_000))
        pkgs.append(SynthPackage(f"{g}-z", "1.0.0", (f"{g}-b<2",), size=1_000))
        expect.update({_norm(f"{g}-a"): "1.0.0", _norm(f"{g}-b"): "1.0.0", _norm(f"{g}-z"): "1.0.0"})
        expect.update({_norm(c): "1.0.0" for c in chain})
    pkgs.append(SynthPackage("scale-backtrack", "1.0.0",
                             tuple(f"scale-bt{k:03d}-a>=1" for k in range(groups)), size=1_000))
    expect["scale-backtrack"] = "1.0.0"
    return "scale-backtrack==1.0.0", pkgs, expect


def _metadata(p: SynthPackage) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {p.name}", f"Version: {p.version}",
             "Requires-Python: >=3.9", "License: Apache-2.0"]
    lines += [f"Requires-Dist: {r}" for r in p.requires]
    return ("\n".join(lines) + "\n").encode()


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(directory: Path, p: SynthPackage) -> Path:
    """Write one wheel whose size is about ``p.size`` bytes of incompressible padding."""
    dist = _dist(p.name)
    info_dir = f"{dist}-{p.version}.dist-info"
    small = {
        f"{dist}/__init__.py": f"__version__ = {p.version!r}\n".encode(),
        f"{info_dir}/METADATA": _metadata(p),
        f"{info_dir}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: wheelferry-bench\nRoot-Is-Purelib: "
                              f"{'true' if p.tag.endswith('-any') else 'false'}\nTag: {p.tag}\n").encode(),
    }
    for k in range(p.modules):
        small[f"{dist}/mod{k:04d}.py"] = _module_source(p.name, k)
    if p.script:
        small[f"{dist}/__init__.py"] += b"\n\ndef main():\n    print(__version__)\n"
        small[f"{info_dir}/entry_points.txt"] = f"[console_scripts]\n{p.name}-cli = {dist}:main\n".encode()
    path = directory / p.filename
    tmp = path.with_suffix(".part")
    rng = random.Random(f"{p.name}-{p.version}")
    pad_name = f"{dist}/_payload.bin"
    record = [f"{k},{_record_hash(v)},{len(v)}" for k, v in small.items()]
    with zipfile.ZipFile(tmp, "w") as zf:
        for rel, data in small.items():
            zi = zipfile.ZipInfo(rel, date_time=FIXED_DATE)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
        pad_total = max(p.size - 1_500 - sum(len(v) for k, v in small.items() if "/mod" in k), 0)
        if p.members <= 1:
            parts = [(pad_name, pad_total)]
        else:
            parts = [(f"{dist}/_lib/part{k:05d}.so", pad_total // p.members) for k in range(p.members)]
        for member, left in parts:
            zi = zipfile.ZipInfo(member, date_time=FIXED_DATE)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED if p.members > 1 else zipfile.ZIP_STORED
            h, size = hashlib.sha256(), left
            with zf.open(zi, "w", force_zip64=left > 2**31) as out:
                while left:
                    n = min(left, 4 << 20)
                    chunk = rng.randbytes(n) if p.members <= 1 else _payload_chunk(rng, n)
                    h.update(chunk)
                    out.write(chunk)
                    left -= len(chunk)
            digest = base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{size}")
        record.append(f"{info_dir}/RECORD,,")
        zi = zipfile.ZipInfo(f"{info_dir}/RECORD", date_time=FIXED_DATE)
        zi.external_attr = 0o644 << 16
        zf.writestr(zi, "\n".join(record) + "\n")
    os.replace(tmp, path)
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_index(root: Path, packages: Sequence[SynthPackage]) -> Path:
    """Generate (or reuse) wheels and a PEP 503 + PEP 658 tree under *root*; return it."""
    stamp = root / "stamp.json"
    want = json.dumps([[p.name, p.version, list(p.requires), p.size, p.tag, p.modules, p.members,
                        p.script] for p in packages])
    if stamp.is_file() and stamp.read_text() == want:
        return root
    if root.exists():
        shutil.rmtree(root)
    files, simple = root / "files", root / "simple"
    files.mkdir(parents=True)
    by_project: dict[str, list[SynthPackage]] = {}
    for p in packages:
        by_project.setdefault(_norm(p.name), []).append(p)
    for project, items in sorted(by_project.items()):
        anchors = []
        for p in items:
            whl = write_wheel(files, p)
            meta = _metadata(p)
            (files / (whl.name + ".metadata")).write_bytes(meta)
            mhash = hashlib.sha256(meta).hexdigest()
            # PEP 658 (data-dist-info-metadata) and its PEP 714 rename (data-core-metadata).
            anchors.append(
                f'<a href="../../files/{whl.name}#sha256={_sha256(whl)}" '
                f'data-requires-python="{html.escape(">=3.9")}" '
                f'data-dist-info-metadata="sha256={mhash}" data-core-metadata="sha256={mhash}">'
                f"{whl.name}</a><br>")
        d = simple / project
        d.mkdir(parents=True)
        (d / "index.html").write_text(
            "<!DOCTYPE html><html><body>\n" + "\n".join(anchors) + "\n</body></html>\n")
    (simple / "index.html").write_text(
        "<!DOCTYPE html><html><body>\n"
        + "\n".join(f'<a href="{p}/">{p}</a><br>' for p in sorted(by_project))
        + "\n</body></html>\n")
    stamp.write_text(want)
    return root


@dataclass(frozen=True)
class Served:
    """A running loopback index: its URL and which server it is."""

    url: str
    server: str


@contextlib.contextmanager
def serve(root: Path, *, repo_python: Path | None = None) -> Iterator[Served]:
    """Serve *root* on loopback; yield the index URL (``.../simple``) and the server's name.

    With *repo_python*, the project's own index server (PEP 691 JSON and PEP 503
    HTML, PEP 658, range requests) serves ``root/files`` from a child process;
    without it, or when that server cannot start (a fresh clone without the test
    dependencies), ``staticd.py`` serves the static PEP 503 tree.
    """
    if repo_python is not None and repo_python.exists():
        proc = subprocess.Popen([str(repo_python), str(Path(__file__).with_name("indexd.py")),
                                 str(root / "files")], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        url = proc.stdout.readline().strip() if proc.stdout else ""
        if url.startswith("http"):
            try:
                yield Served(url, "the project's index server (PEP 691 + 503, 658, ranges)")
            finally:
                _stop(proc)
            return
        _stop(proc)
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("staticd.py")), str(root)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    base = proc.stdout.readline().strip() if proc.stdout else ""
    try:
        if not base.startswith("http"):
            raise RuntimeError("the loopback index server did not start")
        yield Served(f"{base}/simple", "a static HTTP/1.1 server over a PEP 503 + 658 tree")
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    if proc.stdin:
        proc.stdin.close()
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def resolved_files(packages: Sequence[SynthPackage], root_req: str) -> list[SynthPackage]:
    """The wheels a correct resolver picks: the newest version of everything the root reaches."""
    newest: dict[str, SynthPackage] = {}
    for p in packages:
        cur = newest.get(_norm(p.name))
        if cur is None or _vkey(p.version) > _vkey(cur.version):
            newest[_norm(p.name)] = p
    seen: list[SynthPackage] = []
    todo = [_norm(root_req.split("==")[0])]
    done: set[str] = set()
    while todo:
        n = todo.pop()
        if n in done:
            continue
        done.add(n)
        seen.append(newest[n])
        todo += [_norm(re.split(r"[<>=!~;\s\[]", r, maxsplit=1)[0]) for r in newest[n].requires]
    return sorted(seen, key=lambda p: _norm(p.name))


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))
