"""The loopback index used by index, metadata, fetch and end-to-end tests behaves as documented."""

from __future__ import annotations

import hashlib
import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.indexserver import JSON_V1, serve_index
from tests.support.wheels import build_wheel


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    d = tmp_path / "wheels"
    build_wheel(d, "Demo_Pkg", "1.0")
    build_wheel(d, "demo-pkg", "2.0", requires_python=">=3.9")
    build_wheel(d, "other", "0.1")
    return d


def test_json_page_has_hashes_metadata_and_sizes(index_server, wheels: Path) -> None:
    server = index_server(wheels, yanked={"demo_pkg-1.0-py3-none-any.whl": "broken"},
                          requires_python={"demo_pkg-2.0-py3-none-any.whl": ">=3.9"})
    r = requests.get(server.url + "/Demo.Pkg/", timeout=60)
    assert r.headers["Content-Type"] == JSON_V1
    doc = r.json()
    assert doc["name"] == "demo-pkg" and doc["meta"]["api-version"] == "1.1"
    by_name = {f["filename"]: f for f in doc["files"]}
    one = by_name["demo_pkg-1.0-py3-none-any.whl"]
    assert one["yanked"] == "broken" and one["size"] == (wheels / one["filename"]).stat().st_size
    assert one["hashes"]["sha256"] == hashlib.sha256((wheels / one["filename"]).read_bytes()).hexdigest()
    assert by_name["demo_pkg-2.0-py3-none-any.whl"]["requires-python"] == ">=3.9"
    meta = requests.get(one["url"] + ".metadata", timeout=60).content
    assert hashlib.sha256(meta).hexdigest() == one["core-metadata"]["sha256"]
    assert b"Name: Demo_Pkg" in meta


def test_html_page_escapes_and_negotiates(index_server, wheels: Path) -> None:
    server = index_server(wheels, mode="both",
                          requires_python={"demo_pkg-2.0-py3-none-any.whl": ">=3.9"})
    html = requests.get(server.url + "/demo-pkg/", headers={"Accept": "text/html"}, timeout=60)
    assert html.headers["Content-Type"] == "text/html"
    assert 'data-requires-python="&gt;=3.9"' in html.text
    assert 'data-core-metadata="sha256=' in html.text
    js = requests.get(server.url + "/demo-pkg/",
                      headers={"Accept": f"{JSON_V1}, text/html;q=0.1"}, timeout=60)
    assert js.headers["Content-Type"] == JSON_V1
    assert requests.get(server.url + "/missing/", timeout=60).status_code == 404
    server.pep658 = False
    assert "data-core-metadata" not in requests.get(server.url + "/demo-pkg/", timeout=60).text


def test_range_and_faults(index_server, wheels: Path) -> None:
    name = "other-0.1-py3-none-any.whl"
    data = (wheels / name).read_bytes()
    server = index_server(wheels, fail={name: 1}, corrupt={"demo_pkg-1.0-py3-none-any.whl"})
    url = server.file_url(name)
    assert requests.get(url, timeout=60).status_code == 500
    r = requests.get(url, headers={"Range": "bytes=-10"}, timeout=60)
    assert r.status_code == 206 and r.content == data[-10:]
    assert r.headers["Content-Range"] == f"bytes {len(data) - 10}-{len(data) - 1}/{len(data)}"
    server.range = False
    r = requests.get(url, headers={"Range": "bytes=0-3"}, timeout=60)
    assert r.status_code == 200 and r.content == data
    bad = requests.get(server.file_url("demo_pkg-1.0-py3-none-any.whl"), timeout=60).content
    assert len(bad) == (wheels / "demo_pkg-1.0-py3-none-any.whl").stat().st_size
    assert bad != (wheels / "demo_pkg-1.0-py3-none-any.whl").read_bytes()
    assert (("GET", f"/files/{name}", "bytes=-10")) in server.requests


def test_drop_after_and_auth(index_server, wheels: Path) -> None:
    name = "other-0.1-py3-none-any.whl"
    server = index_server(wheels, drop_after={name: 7}, auth=("u", "p"))
    assert requests.get(server.url + "/", timeout=60).status_code == 401
    host = urlsplit(server.url)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
    conn.request("GET", f"/files/{name}", headers={"Authorization": "Basic dTpw"})
    resp = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()
    r = requests.get(server.file_url(name), auth=("u", "p"), timeout=60)
    assert r.content == (wheels / name).read_bytes()


def test_serve_index_context_manager(wheels: Path) -> None:
    with serve_index(wheels, mode="json", hide_size=True) as server:
        doc = requests.get(server.url + "/", timeout=60).json()
        assert [p["name"] for p in doc["projects"]] == ["demo-pkg", "other"]
        r = requests.get(server.file_url("other-0.1-py3-none-any.whl"), timeout=60)
        assert "Content-Length" not in r.headers and r.content[:2] == b"PK"
        page = json.loads(requests.get(server.url + "/other/", timeout=60).content)
        assert "size" not in page["files"][0]
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/", timeout=2)
