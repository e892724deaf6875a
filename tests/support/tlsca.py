"""A throwaway private CA (made with the openssl command) and TLS contexts for loopback servers."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# A name that never resolves (RFC 2606 .invalid): a test proxy maps it to a loopback server,
# so a server under this name is reachable through that proxy or not at all.
PROXY_ONLY_NAME = "mirror.invalid"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class PrivateCA:
    """A CA, a server certificate it signed (127.0.0.1 and PROXY_ONLY_NAME), and a client one."""

    ca: Path            # the CA certificate (what a client trusts)
    server_cert: Path
    server_key: Path
    client_pem: Path    # one PEM file: the client's key and certificate, as pip's client-cert wants

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        """A server-side context; optionally demanding a client certificate signed by this CA."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=str(self.ca))
        return ctx


def make_private_ca(d: Path) -> PrivateCA:
    """Create the CA and its certificates under *d* (EC P-256, one day)."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", "1",
             "-subj", "/CN=Test Bank Root CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, ext in (("server", f"subjectAltName=IP:127.0.0.1,DNS:{PROXY_ONLY_NAME}\n"
                               "extendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-new", *ec, "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"),
                 "-subj", f"/CN=test {name}")
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
                 "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / f"{name}.pem"),
                 "-days", "1", "-extfile", str(d / f"{name}.ext"))
    client = d / "client-key-and-cert.pem"
    client.write_bytes((d / "client.key").read_bytes() + (d / "client.pem").read_bytes())
    return PrivateCA(d / "ca.pem", d / "server.pem", d / "server.key", client)


@pytest.fixture(scope="session")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    """One private CA for the whole run (skips without the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a private CA")
    return make_private_ca(tmp_path_factory.mktemp("private-ca"))


__all__ = ["PROXY_ONLY_NAME", "PrivateCA", "make_private_ca", "private_ca"]
