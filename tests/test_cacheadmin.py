"""`wheelferry cache` and `cache prune`: what a real lock and build left in the cache, and trimming it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support.wheels import build_wheel
from wheelferry.cli import main

LINUX = "linux-x86_64:3.11"


def _json(capsys: Any, *argv: str) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.fixture
def filled(index_server: Callable[..., Any], tmp_path: Path, capsys: Any) -> dict[str, Path]:
    """A cache that a real lock + build of two trees filled."""
    d = tmp_path / "wheels"
    build_wheel(d, "app", "1.0", requires=["dep"], padding=50_000)
    build_wheel(d, "dep", "1.0", padding=40_000)
    build_wheel(d, "other", "1.0", padding=30_000)
    server = index_server(d)
    cache = tmp_path / "cache"
    for root, lock in (("app", "lock-app"), ("other", "lock-other")):
        assert main(["lock", "-r", root, "--target", LINUX, "--index-url", server.url, "--cache", str(cache),
                     "-o", str(tmp_path / lock)]) == 0
        assert main(["build", "--lock", str(tmp_path / lock), "--no-sign", "--cache", str(cache),
                     "-o", str(tmp_path / f"out-{root}")]) == 0
    capsys.readouterr()
    return {"cache": cache, "app": tmp_path / "lock-app", "other": tmp_path / "lock-other"}


def _wheel_files(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "wheels" / "sha256").rglob("*.whl"))


def test_cache_shows_each_part(filled: dict[str, Path], capsys: Any) -> None:
    code, res = _json(capsys, "cache", "--cache", str(filled["cache"]))
    assert code == 0
    parts = {p["part"]: p for p in res["parts"]}
    wheels = list((filled["cache"] / "wheels" / "sha256").rglob("*.whl"))
    assert parts["wheels"]["entries"] == len(wheels) == 3
    assert parts["wheels"]["bytes"] == sum(w.stat().st_size for w in wheels)
    assert main(["cache", "--cache", str(filled["cache"])]) == 0
    out = capsys.readouterr().out
    assert "wheels: 3 entries" in out and "total:" in out


def test_prune_keeps_what_a_lock_names(filled: dict[str, Path], capsys: Any) -> None:
    code, res = _json(capsys, "cache", "prune", "--keep-lock", str(filled["app"]), "--cache", str(filled["cache"]))
    assert code == 0, res
    assert [n.split("-")[0] for n in _wheel_files(filled["cache"])] == ["app", "dep"]
    assert res["kept-by-lock"] == 2 and res["parts"]["wheels"]["entries"] == 1
    # The kept lock still builds from the cache alone: nothing to download.
    code, built = _json(capsys, "build", "--lock", str(filled["app"]), "--no-sign", "--cache", str(filled["cache"]),
                        "-o", str(filled["cache"].parent / "again"))
    assert code == 0 and built["fetch"]["bytes_downloaded"] == 0


def test_prune_by_age(filled: dict[str, Path], capsys: Any) -> None:
    old = time.time() - 40 * 86400
    dep = next((filled["cache"] / "wheels" / "sha256").rglob("dep-*.whl"))
    os.utime(dep, (old, old))
    code, res = _json(capsys, "cache", "prune", "--older-than", "30", "--cache", str(filled["cache"]))
    assert code == 0
    assert [n.split("-")[0] for n in _wheel_files(filled["cache"])] == ["app", "other"]
    assert res["parts"]["wheels"]["entries"] == 1


def test_prune_all_and_bad_options(filled: dict[str, Path], capsys: Any, tmp_path: Path) -> None:
    assert main(["cache", "prune", "--cache", str(filled["cache"])]) == 2
    err = capsys.readouterr().err
    assert "say what to remove" in err and len(err.strip().splitlines()) <= 2
    assert main(["cache", "prune", "--keep-lock", str(tmp_path / "nope"), "--cache", str(filled["cache"])]) == 2
    assert "no such lock directory" in capsys.readouterr().err
    assert _wheel_files(filled["cache"])  # a refused prune removed nothing
    code, res = _json(capsys, "cache", "prune", "--all", "--cache", str(filled["cache"]))
    assert code == 0 and res["freed-bytes"] > 0
    assert _wheel_files(filled["cache"]) == []
    assert not [p for p in (filled["cache"] / "metadata").rglob("*") if p.is_file()]
