"""Shared test setup: isolation from this machine's pip configuration, opt-in live tests."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# One hypothesis profile for the suite: a loaded machine makes examples slow, never wrong, so
# no per-example deadline and no "too slow" / "filter too much" health-check failures.
settings.register_profile(
    "wheelferry",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "wheelferry"))

# Every module in tests/support is a pytest plugin (fixtures shared across test files).
pytest_plugins = sorted(
    f"tests.support.{p.stem}"
    for p in (Path(__file__).parent / "support").glob("*.py")
    if p.stem != "__init__"
)

# A suite started from a script with `&` (SIGINT ignored) or under nohup (SIGHUP ignored) would
# pass that on to every child, and wheelferry rightly keeps an inherited "ignore": the tests that
# interrupt a child need the signals a terminal delivers.  Set here, before the workers start.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)

for _name in [k for k in os.environ if k.startswith("PIP_")]:
    del os.environ[_name]
os.environ["PIP_CONFIG_FILE"] = os.devnull
os.environ["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
os.environ.pop("SOURCE_DATE_EPOCH", None)


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run with no --state-dir keeps its replay marks in the test's own folder, never the host's."""
    monkeypatch.setenv("WHEELFERRY_STATE_DIR", str(tmp_path_factory.mktemp("default-state")))


@pytest.fixture(autouse=True)
def _offline_unless_marked(request: pytest.FixtureRequest) -> None:
    """Every test runs under the socket guard (loopback only) unless marked ``live`` or ``network``."""
    if "live" in request.keywords or "network" in request.keywords:
        return
    request.getfixturevalue("no_network")


# The files whose tests take longest, longest first (per-file totals of
# `scripts/test --junitxml=out.xml`).  scripts/test hands whole files to the xdist workers in
# collection order (--no-loadscope-reorder), so these start first and the short files fill in
# behind them: no worker is left running a long file alone at the end.  The order changes only
# when a file's tests run, never what they check.
LONGEST_FIRST = (
    "test_exportindex.py", "test_hostile.py", "test_approvals.py", "test_sitetxn.py", "test_mirrors.py",
    "test_corpus.py", "test_engine.py", "test_install.py", "test_txn.py", "test_fetch.py",
    "test_recordings.py", "test_lockfile.py", "test_network.py", "test_licences.py", "test_sign.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept within
    if os.environ.get("WHEELFERRY_LIVE") == "1":
        return
    skip = pytest.mark.skip(reason="uses the live package index: run scripts/test --live")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)
