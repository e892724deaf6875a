"""audit --format html: one self-contained page; every string from a wheel escaped; checked in a real browser."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.support.bundles import host_markers, make_bundle, make_lock
from tests.support.gpgkeys import GpgKeys
from tests.support.wheels import build_wheel
from wheelferry.lockfile import Edge, Lock, LockedPackage, LockedTarget, TrimmedEdge
from wheelferry.offline.cli import main

HOSTILE_LICENCE = "<script>alert('x')</script> & \"Acme\" <img src=x onerror=alert(1)> Kévin 日本語"
HOSTILE_CLASSIFIER = "License :: OSI Approved :: </td></tr></table><iframe src=//evil.example>"
HOSTILE_FILE = "y-1.0.dist-info/licenses/<svg onload=alert(2)>.txt"
HOSTILE_PYTHON = '>=3.9"><style>body{display:none}</style>'
MIT = (b"Permission is hereby granted, free of charge, to any person obtaining a copy of this software.\n"
       b"The above copyright notice and this permission notice shall be included in all copies or "
       b"substantial portions of the Software.\n")
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "span", "b", "br",
                "code", "dl", "dt", "dd", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "div",
                "figure", "figcaption", "svg", "rect", "text"}


class _Page(HTMLParser):
    """Every tag, attribute and piece of text of a page, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    return p


def _wheels(tmp_path: Path) -> list[Path]:
    d = tmp_path / "built"
    return [
        build_wheel(d, "app", "1.0", license_expression="MIT", requires=["x", "lib"], padding=40_000),
        build_wheel(d, "lib", "2.0", license=None, classifiers=["License :: OSI Approved :: BSD License"],
                    extra_members={"lib-2.0.dist-info/LICENSE": b"Redistribution and use in source and binary "
                                   b"forms, with or without modification, are permitted. Neither the name of "
                                   b"the copyright holder nor the names of its contributors may be used to "
                                   b"endorse or promote products derived from this software."}),
        build_wheel(d, "x", "1.0", license=HOSTILE_LICENCE, requires_python=HOSTILE_PYTHON),
        build_wheel(d, "y", "1.0", license=None, extra_metadata=["License-File: <svg onload=alert(2)>.txt"],
                    extra_members={HOSTILE_FILE: MIT}),
        build_wheel(d, "z", "1.0", license=None, classifiers=[HOSTILE_CLASSIFIER]),
    ]


def _lock(wheels: list[Path]) -> Lock:
    base = make_lock(wheels, name="demo", targets={"linux-x86_64-cp311-cpu": host_markers()})
    (t,) = base.targets
    why = {"app": (Edge(None, "app==1.0"),), "lib": (Edge("app", "lib>=2"),), "x": (Edge("app", "x"),),
           "y": (Edge(None, "y"),), "z": (Edge("x", "z"),)}
    pkgs = tuple(LockedPackage(p.name, p.version, p.wheel, why[p.name],
                               ("lib", "x") if p.name == "app" else ()) for p in t.packages)
    trimmed = (TrimmedEdge("app", "<b>tensorboard</b>>=2", "excluded"),)
    return Lock(base.spec, base.indexes, (LockedTarget(t.id, t.spec, {}, t.markers, ("app", "y"), pkgs, trimmed),),
                base.wheels, base.tool)


def _report(tmp_path: Path, capsys: Any, *extra: str, gpg_keys: GpgKeys | None = None) -> tuple[int, str, str]:
    wheels = _wheels(tmp_path)
    tar = make_bundle(tmp_path, wheels, name="demo", lock=_lock(wheels), sequence=42)
    keys = ["--allow-unsigned"]
    if gpg_keys is not None:
        gpg_keys.sign("good", tar)
        keys = ["--keyring", str(gpg_keys.export("good", path=tmp_path / "KEYS.asc")),
                "--trusted-key", gpg_keys.fpr["good"]]
    code = main(["audit", str(tar), *keys, "--format", "html", *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_string_from_the_wheels_is_escaped(tmp_path: Path, capsys: Any) -> None:
    code, page, err = _report(tmp_path, capsys)
    assert code == 0, err
    assert page.isascii()  # the rest as character references: safe through any stdout encoding
    parsed = _parse(page)
    assert set(parsed.tags) <= ALLOWED_TAGS, set(parsed.tags) - ALLOWED_TAGS
    assert parsed.tags.count("style") == 1 and "script" not in parsed.tags
    names = {name for name, _ in parsed.attrs}
    assert not {n for n in names if n.startswith("on")} and not names & {"src", "href"}
    text = "".join(parsed.text)
    # Each hostile value is there as text the reader sees, never as markup.
    assert HOSTILE_LICENCE in text
    assert HOSTILE_CLASSIFIER.rsplit("::", 1)[1].strip() in text
    assert HOSTILE_PYTHON in text
    assert "licenses/<svg onload=alert(2)>.txt: the text of MIT" in text
    assert "<b>tensorboard</b>>=2" in text


def test_the_page_holds_identity_packages_evidence_charts_and_why(tmp_path: Path, gpg_keys: GpgKeys,
                                                                  capsys: Any) -> None:
    code, page, err = _report(tmp_path, capsys, gpg_keys=gpg_keys)
    assert code == 0, err
    parsed = _parse(page)
    text = " ".join(parsed.text)
    assert "Audit of demo #42" in text
    assert gpg_keys.fpr["good"] in text and "good signature" in text
    assert "matches the wheels (files, SHA-256, licences)" in text
    assert parsed.tags.count("svg") == 3  # licences by wheels, licences by size, largest wheels
    assert "License-Expression: MIT" in text
    assert "LICENSE: the text of BSD-3-Clause" in text
    assert "(spec) → app==1.0" in " ".join(text.split())
    assert "app → lib>=2" in " ".join(text.split())
    assert "No policy was applied" in text
    # Nothing outside the page is ever fetched.
    assert ("http-equiv", "Content-Security-Policy") in parsed.attrs
    assert ("content", "default-src 'none'; style-src 'unsafe-inline'; img-src data:") in parsed.attrs


def test_policy_results_are_in_the_page_and_a_violation_exits_1(tmp_path: Path, capsys: Any) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('[licenses]\nallow = ["MIT", "BSD-3-Clause"]\nunknown = "fail"\n')
    code, page, err = _report(tmp_path, capsys, "--policy", str(policy))
    assert code == 1 and "policy violation" in err
    text = " ".join(_parse(page).text)
    assert "2 violation(s)" in text  # x (a licence with no SPDX id) and z (classifier only)
    assert HOSTILE_LICENCE in text  # the violation's detail, escaped like everything else
    assert "Violations" in text


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium here (Debian: apt-get install chromium) to check the page in a browser")


def _browser(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(tmp_path / "home"), "DBUS_SESSION_BUS_ADDRESS": "disabled:"}
    return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_real_browser_renders_the_page(tmp_path: Path, capsys: Any) -> None:
    code, page, err = _report(tmp_path, capsys)
    assert code == 0, err
    html_file = tmp_path / "report.html"
    html_file.write_text(page, encoding="utf-8")
    dom = _browser(["--dump-dom", html_file.as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = _parse(dom.stdout)
    # What the browser built: the same tags (no script ran to add any), the hostile text still text.
    assert "script" not in parsed.tags and set(parsed.tags) <= ALLOWED_TAGS | {"h1"}
    assert parsed.tags.count("tr") == _parse(page).tags.count("tr")
    assert HOSTILE_LICENCE in "".join(parsed.text)
    shot = tmp_path / "shot.png"
    proc = _browser([f"--screenshot={shot}", "--window-size=1280,900", html_file.as_uri()], tmp_path)
    assert proc.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", proc.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
