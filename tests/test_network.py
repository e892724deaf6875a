"""pip's network settings (cert, client-cert, proxy, trusted-host, timeout, retries), end to end.

Real loopback HTTPS indexes signed by a throwaway private CA, one demanding a client
certificate, and a real CONNECT proxy that can demand credentials.  Metadata comes from
HTTP range reads (no PEP 658 files), so those go through the same settings as pages and
downloads.  Only the configuration-reading tests write a pip config file on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support.tlsca import PrivateCA
from tests.support.wheels import build_wheel
from wheelferry.cli import main
from wheelferry.config import NetSettings, merge_net, pip_net_settings
from wheelferry.errors import UsageError

LINUX = "linux-x86_64:3.11"


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    d = tmp_path / "wheels"
    build_wheel(d, "app", "1.0", requires=["dep"])
    build_wheel(d, "dep", "1.0", padding=30_000)
    return d


@pytest.fixture(autouse=True)
def _no_env_network(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY",
                 "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def pip_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    conf = tmp_path / "pip.conf"
    conf.write_text(text)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    return conf


def lock(server: Any, tmp_path: Path, capsys: Any, *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(["lock", "-r", "app", "--target", LINUX, "--index-url", server.url,
                 "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "lock"), *args, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def lock_text(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in sorted((tmp_path / "lock").iterdir()))


# -- reading pip's configuration --------------------------------------------------------------

def test_settings_come_from_pip_files_then_pip_variables(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pip_conf(tmp_path, monkeypatch, "[global]\ncert = /etc/bank/ca.pem\ntimeout = 30\n"
             "trusted-host = a.example\n  b.example:8443\nproxy = http://proxy.example:3128\n"
             "[install]\ntimeout = 45\nretries = 2\nclient-cert = ~/client.pem\n")
    net = pip_net_settings()
    assert net.cert == "/etc/bank/ca.pem"
    assert net.timeout == 45.0  # the command's section outranks [global], as in pip
    assert net.retries == 2
    assert net.trusted_hosts == ("a.example", "b.example:8443")
    assert net.proxy == "http://proxy.example:3128"
    assert net.client_cert == str(Path.home() / "client.pem")
    assert net.source("cert") == "pip's configuration"
    monkeypatch.setenv("PIP_CERT", "/opt/other.pem")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "7")
    net = pip_net_settings()
    assert (net.cert, net.source("cert"), net.timeout) == ("/opt/other.pem", "PIP_CERT", 7.0)


def test_command_line_replaces_values_and_adds_trusted_hosts() -> None:
    base = NetSettings(cert="/a.pem", trusted_hosts=("a.example",), retries=3,
                       sources=(("cert", "PIP_CERT"), ("trusted_hosts", "pip's configuration")))
    net = merge_net(base, cert="/b.pem", trusted_hosts=["b.example"], timeout=5.0)
    assert (net.cert, net.source("cert")) == ("/b.pem", "--cert")
    assert net.trusted_hosts == ("a.example", "b.example")
    assert (net.retries, net.timeout) == (3, 5.0)


def test_a_bad_number_in_pip_config_is_a_usage_error(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pip_conf(tmp_path, monkeypatch, "[global]\ntimeout = soon\n")
    with pytest.raises(UsageError, match="timeout"):
        pip_net_settings()


def test_a_missing_ca_file_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: Any) -> None:
    monkeypatch.setenv("PIP_CERT", str(tmp_path / "nope.pem"))
    code = main(["lock", "-r", "app", "--index-url", "https://127.0.0.1:9/simple"])
    err = capsys.readouterr().err
    assert code == 2
    assert "nope.pem (PIP_CERT) does not exist" in err and "--cert" in err


# -- a private CA ---------------------------------------------------------------------------

@pytest.fixture
def https_index(index_server: Callable[..., Any], private_ca: PrivateCA, wheels: Path) -> Any:
    return index_server(wheels, tls=private_ca.server_context(), pep658=False)


def test_tls_failure_names_the_ca_bundle_and_how_to_give_another(https_index: Any, tmp_path: Path,
                                                                  capsys: Any) -> None:
    code, res, _ = lock(https_index, tmp_path, capsys)
    assert code == 1
    assert "certificate verify failed" in res["message"]
    assert "checked against the CA bundle" in res["message"]
    assert "`cert` in pip's configuration" in res["message"] and "--cert" in res["message"]


def test_ca_from_pip_config_is_used_and_outranks_requests_ca_bundle(
        https_index: Any, private_ca: PrivateCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: Any) -> None:
    pip_conf(tmp_path, monkeypatch, f"[global]\ncert = {private_ca.ca}\n")
    # A variable naming another bundle does not silently override pip's setting.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(private_ca.server_cert))
    code, res, _ = lock(https_index, tmp_path, capsys)
    assert code == 0, res
    assert res["targets"][0]["packages"] == {"app": "1.0", "dep": "1.0"}
    assert https_index.count("GET", ".whl") >= 1  # metadata by range reads, over the same TLS


def test_ca_from_cert_option_and_from_pip_cert(https_index: Any, private_ca: PrivateCA, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    code, res, _ = lock(https_index, tmp_path, capsys, "--cert", str(private_ca.ca))
    assert code == 0, res
    monkeypatch.setenv("PIP_CERT", str(private_ca.ca))
    code, res, _ = lock(https_index, tmp_path / "again", capsys)
    assert code == 0, res


def test_requests_ca_bundle_still_works_as_for_pip(https_index: Any, private_ca: PrivateCA,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: Any) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(private_ca.ca))
    code, res, _ = lock(https_index, tmp_path, capsys)
    assert code == 0, res


def test_verbose_says_which_bundle_each_host_got(https_index: Any, private_ca: PrivateCA,
                                                 tmp_path: Path, capsys: Any) -> None:
    code = main(["lock", "-r", "app", "--target", LINUX, "--index-url", https_index.url, "-v",
                 "--cert", str(private_ca.ca), "--cache", str(tmp_path / "c"), "-o", str(tmp_path / "l")])
    out = capsys.readouterr().out
    assert code == 0
    assert f"network: https://127.0.0.1:{https_index.port}: CA bundle {private_ca.ca} (--cert), " \
           "no client certificate, no proxy" in out


def test_trusted_host_skips_verification_for_that_host_only(https_index: Any, tmp_path: Path,
                                                             capsys: Any) -> None:
    code, res, _ = lock(https_index, tmp_path, capsys, "--trusted-host", "127.0.0.2")
    assert code == 1 and "certificate verify failed" in res["message"]
    code, res, _ = lock(https_index, tmp_path, capsys, "--trusted-host",
                        f"127.0.0.1:{https_index.port}")
    assert code == 0, res


def test_build_from_a_lock_fetches_with_the_ca_from_pip_config(
        https_index: Any, private_ca: PrivateCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: Any) -> None:
    code, res, _ = lock(https_index, tmp_path, capsys, "--cert", str(private_ca.ca))
    assert code == 0, res
    fetched_before = https_index.count("GET", ".whl")
    code = main(["build", "--lock", str(tmp_path / "lock"), "--no-sign", "--cache", str(tmp_path / "c2"),
                 "-o", str(tmp_path / "out"), "--json"])
    assert code == 1 and "--cert" in capsys.readouterr().out
    pip_conf(tmp_path, monkeypatch, f"[global]\ncert = {private_ca.ca}\n")
    code = main(["build", "--lock", str(tmp_path / "lock"), "--no-sign", "--cache", str(tmp_path / "c2"),
                 "-o", str(tmp_path / "out"), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0, res
    assert res["wheels"] == 2 and https_index.count("GET", ".whl") > fetched_before


# -- a client certificate --------------------------------------------------------------------

@pytest.fixture
def mtls_index(index_server: Callable[..., Any], private_ca: PrivateCA, wheels: Path) -> Any:
    return index_server(wheels, tls=private_ca.server_context(require_client_cert=True), pep658=False)


def test_client_cert_required_names_the_setting(mtls_index: Any, private_ca: PrivateCA, tmp_path: Path,
                                                capsys: Any) -> None:
    code, res, _ = lock(mtls_index, tmp_path, capsys, "--cert", str(private_ca.ca), "--retries", "0")
    assert code == 1
    assert "client-cert" in res["message"] and "--client-cert" in res["message"], res


def test_client_cert_from_pip_config_and_option(mtls_index: Any, private_ca: PrivateCA, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    code, res, _ = lock(mtls_index, tmp_path, capsys, "--cert", str(private_ca.ca),
                        "--client-cert", str(private_ca.client_pem))
    assert code == 0, res
    pip_conf(tmp_path, monkeypatch, f"[global]\ncert = {private_ca.ca}\n"
             f"client-cert = {private_ca.client_pem}\n")
    code, res, _ = lock(mtls_index, tmp_path / "again", capsys)
    assert code == 0, res
    code = main(["build", "--lock", str(tmp_path / "again" / "lock"), "--no-sign",
                 "--cache", str(tmp_path / "c2"), "-o", str(tmp_path / "out"), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0, res
    key = (private_ca.client_pem).read_text().split("-----END PRIVATE KEY-----")[0]
    assert key.strip() not in lock_text(tmp_path / "again")


# -- a proxy ----------------------------------------------------------------------------------

def test_index_reached_only_through_the_proxy_from_pip_config(
        index_server: Callable[..., Any], http_proxy: Callable[..., Any], private_ca: PrivateCA,
        wheels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    server = index_server(wheels, tls=private_ca.server_context(), pep658=False)
    # A name only the proxy can resolve: the index is reachable through it or not at all.
    proxy = http_proxy(hosts={"127.0.0.1": ("127.0.0.1", server.port)})
    pip_conf(tmp_path, monkeypatch, f"[global]\ncert = {private_ca.ca}\nproxy = {proxy.url}\n")
    code, res, _ = lock(server, tmp_path, capsys)
    assert code == 0, res
    assert ("CONNECT", f"127.0.0.1:{server.port}") in proxy.seen


def test_proxy_option_and_407_without_credentials(
        index_server: Callable[..., Any], http_proxy: Callable[..., Any], private_ca: PrivateCA,
        wheels: Path, tmp_path: Path, capsys: Any) -> None:
    server = index_server(wheels, tls=private_ca.server_context(), pep658=False)
    proxy = http_proxy(auth=("alice", "s3cret-pw"))
    code, res, _ = lock(server, tmp_path, capsys, "--cert", str(private_ca.ca), "--proxy", proxy.url)
    assert code == 1
    assert "wants credentials" in res["message"] and "407" in res["message"], res
    assert proxy.refused >= 1 and not proxy.seen
    with_creds = proxy.url.replace("http://", "http://alice:s3cret-pw@")
    code = main(["lock", "-r", "app", "--target", LINUX, "--index-url", server.url, "-v",
                 "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "lock"),
                 "--cert", str(private_ca.ca), "--proxy", with_creds])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert proxy.seen and all(method == "CONNECT" for method, _ in proxy.seen)
    assert "s3cret-pw" not in out + err + lock_text(tmp_path)
    assert f"proxy http://***@127.0.0.1:{proxy.port} (--proxy)" in out
