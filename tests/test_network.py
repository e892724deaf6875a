"""pip's network settings (cert, client-cert, proxy, trusted-host, timeout, retries), end to end.

Real loopback HTTPS indexes signed by a throwaway private CA, one demanding a client
certificate, and a real CONNECT proxy that can demand credentials.  Servers named
PROXY_ONLY_NAME (a name that never resolves) are reachable through that proxy or not at all.  Metadata comes from
HTTP range reads (no PEP 658 files), so those go through the same settings as pages and
downloads.  Only the configuration-reading tests write a pip config file on purpose.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.tlsca import PROXY_ONLY_NAME, PrivateCA
from tests.support.wheels import build_wheel
from wheelferry.cli import main
from wheelferry.config import NetSettings, is_secure_origin, merge_net, pip_net_settings
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


def build_lock(lock_dir: Path, tmp_path: Path, capsys: Any, *args: str) -> tuple[int, dict[str, Any]]:
    """build --lock LOCK_DIR with a fresh cache under *tmp_path*: (exit code, --json result)."""
    code = main(["build", "--lock", str(lock_dir), "--no-sign", "--cache", str(tmp_path / "build-cache"),
                 "-o", str(tmp_path / "out"), *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


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
    code, res = build_lock(tmp_path / "lock", tmp_path / "b1", capsys, "--cert", str(private_ca.ca))
    assert code == 0 and res["fetch"]["files"] == 2, res
    monkeypatch.setenv("PIP_CERT", str(private_ca.ca))
    code, res, _ = lock(https_index, tmp_path / "again", capsys)
    assert code == 0, res
    code, res = build_lock(tmp_path / "lock", tmp_path / "b2", capsys)
    assert code == 0 and res["fetch"]["files"] == 2, res


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
    code, res = build_lock(tmp_path / "lock", tmp_path / "b1", capsys, "--retries", "0")
    assert code == 1 and "certificate verify failed" in res["message"], res
    code, res = build_lock(tmp_path / "lock", tmp_path / "b2", capsys, "--trusted-host", "127.0.0.1")
    assert code == 0 and res["fetch"]["files"] == 2, res


def test_timeout_and_retries_apply_to_every_request(index_server: Callable[..., Any], wheels: Path,
                                                    tmp_path: Path, capsys: Any) -> None:
    server = index_server(wheels, pep658=False)
    code, res, _ = lock(server, tmp_path, capsys)
    assert code == 0, res
    server.slow = 0.5
    tries = []
    for retries in ("0", "2"):
        before = server.count("GET", "/simple/app/")
        code, res, _ = lock(server, tmp_path / retries, capsys, "--timeout", "0.1", "--retries", retries)
        assert code == 1 and "timed out" in res["message"], res
        tries.append(server.count("GET", "/simple/app/") - before)
    assert tries[0] >= 1 and tries[1] == 3 * tries[0], tries  # each read: 1 + retries attempts
    code, res = build_lock(tmp_path / "lock", tmp_path, capsys, "--timeout", "0.1", "--retries", "0")
    assert code == 1 and res["error"] == "FetchError", res


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
    key = (private_ca.client_pem).read_text().split("-----END PRIVATE KEY-----")[0].strip()
    written = b"".join(p.read_bytes() for p in sorted((tmp_path / "out").rglob("*")) if p.is_file())
    for secret in (key, str(private_ca.client_pem)):
        assert secret not in lock_text(tmp_path / "again")
        assert secret.encode() not in written


# -- a proxy ----------------------------------------------------------------------------------

def named_index(index_server: Callable[..., Any], wheels: Path, **kw: Any) -> Any:
    """An index whose URLs (pages, range reads, downloads) all name PROXY_ONLY_NAME."""
    return index_server(wheels, name=PROXY_ONLY_NAME, pep658=False, **kw)


def through(http_proxy: Callable[..., Any], server: Any, **kw: Any) -> Any:
    """A proxy that resolves PROXY_ONLY_NAME to *server*."""
    return http_proxy(hosts={PROXY_ONLY_NAME: ("127.0.0.1", server.port)}, **kw)


def test_index_reached_only_through_the_proxy_from_pip_config_also_for_build_lock(
        index_server: Callable[..., Any], http_proxy: Callable[..., Any], private_ca: PrivateCA,
        wheels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any,
        no_network: None) -> None:
    # The name does not resolve, and no_network fails any lookup of it here: a lock that
    # works went through the proxy.
    server = named_index(index_server, wheels, tls=private_ca.server_context())
    proxy = through(http_proxy, server)
    pip_conf(tmp_path, monkeypatch, f"[global]\ncert = {private_ca.ca}\nproxy = {proxy.url}\n")
    # A proxy in the environment does not override pip's (this one refuses every connection).
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    code, res, _ = lock(server, tmp_path, capsys)
    assert code == 0, res
    assert ("CONNECT", f"{PROXY_ONLY_NAME}:{server.port}") in proxy.seen
    assert server.count("GET", ".whl") >= 1  # metadata by range reads, through the tunnel
    assert f"https://{PROXY_ONLY_NAME}:{server.port}/files/" in lock_text(tmp_path)
    # build --lock fetches the lock's URLs, which only the proxy can reach.
    tunnels, downloads = len(proxy.seen), server.count("GET", ".whl")
    code, res = build_lock(tmp_path / "lock", tmp_path, capsys)
    assert code == 0, res
    assert res["wheels"] == 2 and res["fetch"]["files"] == 2
    assert len(proxy.seen) > tunnels and server.count("GET", ".whl") > downloads


def test_client_cert_and_ca_through_the_proxy_option_for_lock_and_build_lock(
        index_server: Callable[..., Any], http_proxy: Callable[..., Any], private_ca: PrivateCA,
        wheels: Path, tmp_path: Path, capsys: Any, no_network: None) -> None:
    server = named_index(index_server, wheels,
                         tls=private_ca.server_context(require_client_cert=True))
    proxy = through(http_proxy, server)
    opts = ("--proxy", proxy.url, "--cert", str(private_ca.ca), "--client-cert",
            str(private_ca.client_pem))
    code, res, _ = lock(server, tmp_path, capsys, *opts)
    assert code == 0, res
    code, res = build_lock(tmp_path / "lock", tmp_path, capsys, "--proxy", proxy.url,
                           "--cert", str(private_ca.ca), "--retries", "0")
    assert code == 1 and "client-cert" in res["message"], res  # the proxy alone is not enough
    code, res = build_lock(tmp_path / "lock", tmp_path, capsys, *opts)
    assert code == 0, res
    assert res["fetch"]["files"] == 2
    assert all(target == f"{PROXY_ONLY_NAME}:{server.port}" for _m, target in proxy.seen)


@pytest.mark.network  # the NO_PROXY case resolves a name directly (and must fail to)
def test_https_proxy_and_no_proxy_from_the_environment_as_pip_reads_them(
        index_server: Callable[..., Any], http_proxy: Callable[..., Any], private_ca: PrivateCA,
        wheels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    server = named_index(index_server, wheels, tls=private_ca.server_context())
    proxy = through(http_proxy, server)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    code, res, _ = lock(server, tmp_path / "a", capsys, "--cert", str(private_ca.ca))
    assert code == 0, res
    seen = len(proxy.seen)
    assert seen >= 1
    # NO_PROXY sends the request direct, where the name does not resolve.
    monkeypatch.setenv("NO_PROXY", PROXY_ONLY_NAME)
    code, res, _ = lock(server, tmp_path / "b", capsys, "--cert", str(private_ca.ca), "--retries", "0")
    assert code == 1 and len(proxy.seen) == seen, res
    # pip's own proxy setting means the environment is not read, NO_PROXY included.
    monkeypatch.setenv("PIP_PROXY", proxy.url)
    code, res, _ = lock(server, tmp_path / "c", capsys, "--cert", str(private_ca.ca))
    assert code == 0 and len(proxy.seen) > seen, res
    # A loopback index named in NO_PROXY is read direct: the proxy sees nothing of it.
    monkeypatch.delenv("PIP_PROXY")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    loopback = index_server(wheels, tls=private_ca.server_context(), pep658=False)
    seen = len(proxy.seen)
    code, res, _ = lock(loopback, tmp_path / "d", capsys, "--cert", str(private_ca.ca))
    assert code == 0 and len(proxy.seen) == seen and loopback.count() > 0, res


def test_proxy_wanting_credentials_and_none_in_lock_bundle_or_output(
        index_server: Callable[..., Any], http_proxy: Callable[..., Any], private_ca: PrivateCA,
        wheels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    server = named_index(index_server, wheels, tls=private_ca.server_context())
    proxy = through(http_proxy, server, auth=("alice", "s3cret-pw"))
    code, res, _ = lock(server, tmp_path, capsys, "--cert", str(private_ca.ca), "--proxy", proxy.url)
    assert code == 1
    assert "wants credentials" in res["message"] and "407" in res["message"], res
    wrong = proxy.url.replace("http://", "http://alice:wrong-pw@")
    code = main(["lock", "-r", "app", "--target", LINUX, "--index-url", server.url, "--cert",
                 str(private_ca.ca), "--proxy", wrong, "-o", str(tmp_path / "lock"),
                 "--cache", str(tmp_path / "cache")])
    out, err = capsys.readouterr()
    assert code == 1 and "wants credentials" in err
    assert "wrong-pw" not in out + err and "http://***@127.0.0.1" in err
    assert proxy.refused >= 2 and not proxy.seen
    with_creds = proxy.url.replace("http://", "http://alice:s3cret-pw@")
    pip_conf(tmp_path, monkeypatch, f"[global]\ncert = {private_ca.ca}\nproxy = {with_creds}\n")
    code = main(["lock", "-r", "app", "--target", LINUX, "--index-url", server.url, "-v",
                 "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "lock")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert proxy.seen and all(method == "CONNECT" for method, _ in proxy.seen)
    assert f"proxy http://***@127.0.0.1:{proxy.port} (pip's configuration)" in out
    code = main(["build", "--lock", str(tmp_path / "lock"), "--no-sign", "-v",
                 "--cache", str(tmp_path / "build-cache"), "-o", str(tmp_path / "out")])
    bout, berr = capsys.readouterr()
    assert code == 0, berr
    written = b"".join(p.read_bytes() for p in sorted((tmp_path / "out").rglob("*")) if p.is_file())
    assert written and b"s3cret-pw" not in written
    assert "s3cret-pw" not in out + err + bout + berr + lock_text(tmp_path)


# -- plain HTTP: pip's secure-origin rule ----------------------------------------------------

ORIGINS = [  # (url, trusted hosts, what pip decides)
    ("http://mirror.invalid/simple", (), False),
    ("http://mirror.invalid:8080/simple", ("mirror.invalid",), True),  # no port: any port
    ("http://mirror.invalid:8080/simple", ("mirror.invalid:8080",), True),
    ("http://mirror.invalid:8081/simple", ("mirror.invalid:8080",), False),
    ("http://mirror.invalid/simple", ("mirror.invalid:80",), False),  # pip compares the URL's port
    ("http://MIRROR.invalid/simple", ("mirror.INVALID",), True),
    ("http://10.1.2.3/simple", ("10.1.2.3",), True),
    ("http://10.1.2.3/simple", ("10.1.2.4",), False),
    ("http://[fd00::1]:81/simple", ("fd00::1",), True),
    ("http://[fd00::1]:81/simple", ("[fd00::1]:81",), True),
    ("http://user:pw@mirror.invalid/simple", ("mirror.invalid",), True),
    ("http://127.9.9.9:1/simple", (), True), ("http://localhost/simple", (), True),
    ("http://[::1]:8000/simple", (), True), ("https://mirror.invalid/simple", (), True),
    ("file:///srv/wheels", (), True), ("http://localhost.invalid/simple", (), False),
    ("http://128.0.0.1/simple", (), False),
]


def pip_decides(url: str, trusted: tuple[str, ...]) -> bool:
    from pip._internal.models.link import Link
    from pip._internal.network.session import PipSession

    session = PipSession()
    for host in trusted:
        session.add_trusted_host(host, suppress_logging=True)
    return bool(session.is_secure_origin(Link(url)))


@pytest.mark.parametrize(("url", "trusted", "secure"), ORIGINS)
def test_secure_origin_is_decided_as_pip_decides_it(url: str, trusted: tuple[str, ...],
                                                   secure: bool) -> None:
    assert is_secure_origin(url, trusted) is secure
    assert pip_decides(url, trusted) is secure


_HOSTS = st.sampled_from(["mirror.invalid", "Mirror.Invalid", "10.1.2.3", "127.0.0.2", "localhost",
                          "fd00::1", "::1", "other.invalid"])


@given(scheme=st.sampled_from(["http", "https", "git+http", "git+ssh"]), host=_HOSTS,
       port=st.sampled_from([None, 80, 8080]),
       trusted=st.lists(st.tuples(_HOSTS, st.sampled_from([None, 80, 8080])), max_size=2))
def test_secure_origin_matches_pip_on_generated_cases(scheme: str, host: str, port: int | None,
                                                      trusted: list[tuple[str, int | None]]) -> None:
    netloc = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{netloc}{'' if port is None else f':{port}'}/simple"
    hosts = tuple(h if p is None else (f"[{h}]:{p}" if ":" in h else f"{h}:{p}") for h, p in trusted)
    assert is_secure_origin(url, hosts) == pip_decides(url, hosts)


@pytest.fixture
def plain_named(index_server: Callable[..., Any], http_proxy: Callable[..., Any],
                wheels: Path) -> tuple[Any, Any]:
    """A plain-HTTP index named PROXY_ONLY_NAME, and the proxy that reaches it."""
    server = named_index(index_server, wheels)
    return server, through(http_proxy, server)


def test_plain_http_to_a_host_not_loopback_is_refused_unless_trusted(
        plain_named: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: Any) -> None:
    server, proxy = plain_named
    code = main(["lock", "-r", "app", "--target", LINUX, "--index-url", server.url, "--proxy", proxy.url,
                 "-o", str(tmp_path / "lock"), "--cache", str(tmp_path / "cache")])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: refusing the index "), err
    assert f"plain HTTP to {PROXY_ONLY_NAME}" in err and f"--trusted-host {PROXY_ONLY_NAME}" in err
    assert "PIP_TRUSTED_HOST" in err and "`trusted-host` in pip's configuration" in err
    assert not proxy.seen and server.count() == 0 and not (tmp_path / "lock").exists()
    # A trusted host with another port does not cover this one (pip compares ports).
    pip_conf(tmp_path, monkeypatch, f"[global]\ntrusted-host = {PROXY_ONLY_NAME}:{server.port + 1}\n")
    code, res, _ = lock(server, tmp_path, capsys, "--proxy", proxy.url)
    assert code == 1 and res["error"] == "InsecureOriginError", res
    code, res, _ = lock(server, tmp_path, capsys, "--proxy", proxy.url,
                        "--trusted-host", PROXY_ONLY_NAME)
    assert code == 0, res
    assert ("GET", f"http://{PROXY_ONLY_NAME}:{server.port}/simple/app/") in proxy.seen
    assert server.count("GET", ".whl") >= 1  # range reads over plain HTTP through the proxy
    pip_conf(tmp_path, monkeypatch, f"[global]\ntrusted-host = {PROXY_ONLY_NAME}:{server.port}\n")
    code, res, _ = lock(server, tmp_path / "conf", capsys, "--proxy", proxy.url)
    assert code == 0, res
    pip_conf(tmp_path, monkeypatch, "")
    monkeypatch.setenv("PIP_TRUSTED_HOST", f"other.invalid {PROXY_ONLY_NAME}")
    code, res, _ = lock(server, tmp_path / "env", capsys, "--proxy", proxy.url)
    assert code == 0, res


def test_plain_http_find_links_and_build_lock_follow_the_same_rule(
        plain_named: tuple[Any, Any], tmp_path: Path, capsys: Any) -> None:
    server, proxy = plain_named
    links = f"http://{PROXY_ONLY_NAME}:{server.port}/simple/dep/"
    code, res, _ = lock(server, tmp_path, capsys, "--proxy", proxy.url, "--find-links", links)
    assert code == 1 and "the find-links location" in res["message"] and server.count() == 0, res
    code, res, _ = lock(server, tmp_path, capsys, "--proxy", proxy.url, "--trusted-host", PROXY_ONLY_NAME)
    assert code == 0, res
    # The lock's own URLs are pinned by sha256 and fetched as pip fetches hashed URLs ...
    code, res = build_lock(tmp_path / "lock", tmp_path, capsys, "--proxy", proxy.url)
    assert code == 0 and res["fetch"]["files"] == 2, res
    # ... while an index given to build --lock is read only under the rule.
    code, res = build_lock(tmp_path / "lock", tmp_path / "again", capsys, "--proxy", proxy.url,
                           "--index-url", server.url)
    assert code == 1 and f"--trusted-host {PROXY_ONLY_NAME}" in res["message"], res
    code, res = build_lock(tmp_path / "lock", tmp_path / "again", capsys, "--proxy", proxy.url,
                           "--index-url", server.url, "--trusted-host", PROXY_ONLY_NAME)
    assert code == 0, res


def _non_loopback_ipv4() -> str | None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # UDP: picks the outgoing address, sends nothing
        address = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.mark.network  # connects to this machine's own non-loopback address
def test_plain_http_to_this_machines_own_address_needs_trusted_host(
        index_server: Callable[..., Any], wheels: Path, tmp_path: Path, capsys: Any) -> None:
    address = _non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to serve on")
    server = index_server(wheels, bind=address, pep658=False)
    code, res, _ = lock(server, tmp_path, capsys)
    assert code == 1 and f"--trusted-host {address}" in res["message"] and server.count() == 0, res
    code, res, _ = lock(server, tmp_path, capsys, "--trusted-host", address)
    assert code == 0, res
    assert server.count("GET", ".whl") >= 1
