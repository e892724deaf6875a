"""The finder's metadata loading: what the resolver waits for comes first, backtracking in batches."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement

from tests.support.wheels import build_wheel
from wheelferry.config import IndexConfig
from wheelferry.finder import Finder, MarkerEnv, Req, WheelRanker, marker_true, wheels_for
from wheelferry.index import IndexClient
from wheelferry.metadata import MetadataSource
from wheelferry.pages import DistFile
from wheelferry.target import evaluation_environment, parse_target


class _Watched(MetadataSource):
    """Real metadata reads, each noted with the thread that made it; ``hold``'s waits for a gate."""

    def __init__(self) -> None:
        super().__init__(requests.Session(), None)
        self.holding, self.gate = threading.Event(), threading.Event()
        self.loaded: dict[str, str] = {}

    def get(self, dist: DistFile) -> bytes:
        if dist.filename.startswith("hold-"):
            self.holding.set()
            assert self.gate.wait(120)
        self.loaded[dist.filename.split("-")[1]] = threading.current_thread().name
        return super().get(dist)


def test_backtracking_loads_older_versions_in_a_batch_and_a_queued_load_is_done_at_once(
        tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    for v in range(1, 31):
        build_wheel(links, "a", f"{v}.0")
    build_wheel(links, "hold", "1.0")
    metadata = _Watched()
    index = IndexClient(IndexConfig(None, (), (links.as_uri(),)), requests.Session())
    finder = Finder(index, metadata, parse_target("linux-x86_64:3.11"), jobs=1)
    try:
        wheels = {str(v): d for v, (d, _yanked) in finder.best_wheels("a").items()}
        finder.prefetch([Req.from_requirement(Requirement("hold"))])
        assert metadata.holding.wait(120)  # the finder's one worker is busy until the gate opens
        rescue = threading.Timer(120, metadata.gate.set)  # a failing check must not hang the test
        rescue.start()
        # The resolver tries a 30.0, 29.0, ... as it backtracks; each is loaded when asked.
        for v in (30, 29, 28, 27):
            finder.metadata_for(wheels[f"{v}.0"])
        assert len(metadata.loaded) == 4
        # The fifth try queues the next five older versions for the worker at once ...
        finder.metadata_for(wheels["26.0"])
        # ... and one of them asked for while still queued is loaded at once, on this thread.
        assert finder.metadata_for(wheels["25.0"]).requires == ()
        main = threading.current_thread().name
        assert metadata.loaded["25.0"] == main and len(metadata.loaded) == 6
        metadata.gate.set()
        deadline = time.monotonic() + 120  # a bound for a failing run: a passing one ends at the 11th
        while len(metadata.loaded) < 11 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert {v: t for v, t in metadata.loaded.items() if t != main} == dict.fromkeys(
            ["1.0", "24.0", "23.0", "22.0", "21.0"], "wheelferry-meta_0"), metadata.loaded
        for v in (24, 23, 22, 21):
            assert finder.metadata_for(wheels[f"{v}.0"]).requires == ()
        assert "20.0" not in metadata.loaded  # nothing beyond the batch was fetched unasked
        rescue.cancel()
    finally:
        metadata.gate.set()
        finder.close()


_NAMES = st.sampled_from([
    "x-1.0-py3-none-any.whl", "x-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "x-1.0-cp311-cp311-win_amd64.whl", "x-1.0-cp310-abi3-manylinux_2_28_x86_64.whl",
    "x-1.0-1-cp39-abi3-musllinux_1_2_x86_64.whl", "x-1.0-py2.py3-none-any.whl", "x-1.0.tar.gz",
    "x-1.0-cp312-cp312-manylinux_2_34_x86_64.whl", "x-1.0-py3-none-any.zip", "bad.whl"])
_TARGETS = ["linux-x86_64:3.11", "windows-amd64:3.11", "linux-aarch64:3.9"]


@settings(max_examples=200, deadline=None)
@given(names=st.lists(_NAMES, max_size=12))
def test_ranked_names_are_remembered_and_the_index_and_finder_share_them(names: list[str]) -> None:
    targets = [parse_target(t) for t in _TARGETS]
    both = wheels_for(targets[:2])
    for t in targets:
        shared, fresh = WheelRanker.for_target(t), WheelRanker(t)
        assert WheelRanker.for_target(parse_target(t.spec)) is shared  # one per target in use
        for name in names + names:  # asked twice: the second answer is the remembered one
            assert shared.rank(name) == fresh.rank(name)
            assert shared.fits(name) == (name.endswith(".whl") and fresh.rank(name) is not None)
    for name in names:
        assert both(name) == any(WheelRanker(t).fits(name) for t in targets[:2])
        assert wheels_for(targets[:1])(name) == WheelRanker(targets[0]).fits(name)


_MARKERS = st.sampled_from(['sys_platform == "linux"', 'python_version >= "3.10"', 'extra == "fast"',
                            'platform_machine == "x86_64" and extra == "gpu"', 'os_name == "nt"'])


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(st.tuples(st.sampled_from(["a", "b>=1"]), _MARKERS), max_size=8),
       extra=st.sampled_from(["", "fast", "gpu"]))
def test_a_marker_env_remembers_each_marker_with_the_plain_answer(lines: list[tuple[str, str]],
                                                                  extra: str) -> None:
    target = parse_target("linux-x86_64:3.11")
    plain = evaluation_environment(target, extra)
    env = MarkerEnv(plain)
    for req, marker in lines + lines:
        r = Requirement(f"{req}; {marker}")
        assert marker_true(r.marker, env) == r.marker.evaluate(plain) == marker_true(r.marker, plain)
    assert marker_true(None, env)
