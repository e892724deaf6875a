"""Index settings come from pip's own configuration and environment, read at run time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wheelferry.config import (
    IndexConfig,
    merge,
    pip_config_files,
    pip_index_config,
    read_pip_config_files,
    read_pip_config_list,
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(extra)
    return env


def test_config_file_values_are_read(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nindex-url = https://u:p%40ss@mirror.example/simple\n"
        "extra-index-url =\n    https://a.mirror.example/simple\n    https://b.mirror.example/simple\n"
        f"[install]\nfind-links = {links}\n"
    )
    cfg = pip_index_config(_env(PIP_CONFIG_FILE=str(conf)))
    assert cfg == IndexConfig(
        "https://u:p%40ss@mirror.example/simple",
        ("https://a.mirror.example/simple", "https://b.mirror.example/simple"),
        (links.resolve().as_uri(),),
    )


def test_environment_overrides_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\n")
    links = tmp_path / "w"
    links.mkdir()
    cfg = pip_index_config(_env(
        PIP_CONFIG_FILE=str(conf), PIP_INDEX_URL="http://127.0.0.1:1/simple",
        PIP_EXTRA_INDEX_URL="http://127.0.0.1:2/simple http://127.0.0.1:3/simple",
        PIP_FIND_LINKS=str(links)))
    assert cfg.index_url == "http://127.0.0.1:1/simple"
    assert cfg.extra_index_urls == ("http://127.0.0.1:2/simple", "http://127.0.0.1:3/simple")
    assert cfg.find_links == (links.resolve().as_uri(),)
    no_index = pip_index_config(_env(PIP_CONFIG_FILE=str(conf), PIP_NO_INDEX="1"))
    assert no_index.index_url is None and no_index.index_urls() == ()


def test_default_index_is_pips_own() -> None:
    from pip._internal.models.index import PyPI

    cfg = pip_index_config(_env(PIP_CONFIG_FILE=os.devnull))
    assert cfg == IndexConfig(PyPI.simple_url, (), ())


def test_missing_local_locations_warn_and_are_dropped(tmp_path: Path) -> None:
    warnings: list[str] = []
    missing = tmp_path / "gone"
    cfg = pip_index_config(_env(PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS=str(missing),
                                PIP_INDEX_URL=missing.as_uri(),
                                PIP_EXTRA_INDEX_URL="https://mirror.example/simple"),
                           warn=warnings.append)
    assert cfg == IndexConfig(None, ("https://mirror.example/simple",), ())
    assert len(warnings) == 2 and all(str(missing) in w for w in warnings)


def test_pip_config_list_sections_and_env_entries() -> None:
    text = (":env:.index-url='http://ignored/simple'\n"
            "global.index-url='https://mirror.example/simple'\n"
            "install.index-url='https://install.mirror.example/simple'\n"
            "global.extra_index_url='\\nhttps://x.example/simple'\n"
            "freeze.index-url='https://other.example/simple'\n")
    values = read_pip_config_list(text)
    assert values == {"index-url": "https://install.mirror.example/simple",
                      "extra-index-url": "\nhttps://x.example/simple"}


@pytest.mark.parametrize("no_index", [False, True])
def test_merge_cli_replaces_index_and_adds_extras(tmp_path: Path, no_index: bool) -> None:
    base = IndexConfig("https://mirror.example/simple", ("https://a.example/simple",), ())
    merged = merge(base, index_url="https://cli.example/simple",
                   extra=("https://a.example/simple", "https://b.example/simple"),
                   find_links=(str(tmp_path),), no_index=no_index)
    assert merged.find_links == (tmp_path.resolve().as_uri(),)
    if no_index:
        assert merged.index_urls() == ()
    else:
        assert merged.index_urls() == ("https://cli.example/simple", "https://a.example/simple",
                                       "https://b.example/simple")
    assert merge(base) == base


def _pip_says(environ: dict[str, str]) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], env=environ,
                         capture_output=True, text=True, check=True).stdout
    return read_pip_config_list(out)


@pytest.mark.parametrize("case", ["env-file", "user-file", "env-file-missing"])
def test_in_process_reading_agrees_with_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            case: str) -> None:
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    (xdg / "pip").mkdir(parents=True)
    home.mkdir()
    (xdg / "pip" / "pip.conf").write_text(
        "[global]\nindex-url = https://user.mirror.example/simple\n"
        "[install]\nextra_index_url =\n    https://x.example/simple\n    https://y.example/simple\n")
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://env.mirror.example/simple\nno-index = false\n"
                    "[download]\nfind-links = /srv/wheels\n[freeze]\nindex-url = https://no.example/\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    env = _env(HOME=str(home), XDG_CONFIG_HOME=str(xdg))
    if case == "env-file":
        env["PIP_CONFIG_FILE"] = str(conf)
    elif case == "env-file-missing":
        env["PIP_CONFIG_FILE"] = str(tmp_path / "absent.conf")
    paths = pip_config_files(env)
    assert paths is not None
    ours = read_pip_config_files(paths)
    assert ours == _pip_says(env)
    if case == "env-file":
        assert ours["index-url"] == "https://env.mirror.example/simple"
        assert str(xdg) not in " ".join(paths)  # pip skips user files when PIP_CONFIG_FILE exists
    else:
        assert ours["extra-index-url"].split() == ["https://x.example/simple", "https://y.example/simple"]


def test_devnull_reads_no_file_and_sections_outrank_files(tmp_path: Path) -> None:
    assert pip_config_files(_env(PIP_CONFIG_FILE=os.devnull)) == []
    low, high = tmp_path / "low.conf", tmp_path / "high.conf"
    low.write_text("[install]\nindex-url = https://install.example/simple\n")
    high.write_text("[global]\nindex-url = https://global.example/simple\ntimeout = 5\n")
    assert read_pip_config_files([str(low), str(high)]) == {
        "index-url": "https://install.example/simple", "timeout": "5"}
    broken = tmp_path / "broken.conf"
    broken.write_text("index-url = no section\n")
    warnings: list[str] = []
    assert read_pip_config_files([str(broken), str(high)], warn=warnings.append)["timeout"] == "5"
    assert len(warnings) == 1 and str(broken) in warnings[0]


def test_another_interpreter_is_asked_in_a_subprocess(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\n")
    python = str(tmp_path / "python")
    os.symlink(sys.executable, python)
    cfg = pip_index_config(_env(PIP_CONFIG_FILE=str(conf)), python=python)
    assert cfg.index_url == "https://mirror.example/simple"
