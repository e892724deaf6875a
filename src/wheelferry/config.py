"""Which indexes and find-links locations to use: pip's own configuration, read at run time."""

from __future__ import annotations

import ast
import configparser
import ipaddress
import locale
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import unquote, urlsplit

from wheelferry.errors import InsecureOriginError, UsageError
from wheelferry.jsontypes import JSONObject
from wheelferry.urls import redact_url

Warn = Callable[[str], None]

# pip reads [global] first, then the section of the running command overrides it.
_SECTIONS = ("global", "download", "install")
_TRUE = {"1", "true", "yes", "on", "y"}
# Asked of pip in a subprocess, so the default index is whatever that pip ships with.
_DEFAULT_INDEX_SCRIPT = "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"


@dataclass(frozen=True)
class IndexConfig:
    """Where packages come from: one main index (None = no index), extra indexes, find-links."""

    index_url: str | None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()

    def index_urls(self) -> tuple[str, ...]:
        """The main index (if any) followed by the extra indexes."""
        return ((self.index_url,) if self.index_url else ()) + self.extra_index_urls

    def all_urls(self) -> tuple[str, ...]:
        """Every configured location, for the session's credential table."""
        return self.index_urls() + self.find_links


def _dedup(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def _split(value: str) -> tuple[str, ...]:
    """pip splits list-valued options (extra-index-url, find-links) on whitespace."""
    return tuple(value.split())


def _run_python(python: str, args: list[str], environ: Mapping[str, str]) -> str | None:
    try:
        proc = subprocess.run([python, *args], capture_output=True, text=True,
                              env=dict(environ), check=False, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def read_pip_config_list(text: str) -> dict[str, str]:
    """Parse ``pip config list`` output (``section.key='value'``) into ``{key: value}``.

    Environment entries (``:env:.``) are skipped: the caller applies its own environment.
    """
    by_section: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or section not in _SECTIONS:
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw.strip("'\"")
        by_section.setdefault(section, {})[name.replace("_", "-")] = str(value)
    merged: dict[str, str] = {}
    for section in _SECTIONS:
        merged.update(by_section.get(section, {}))
    return merged


def _local_path(location: str) -> Path | None:
    """The filesystem path of a local location (``file://`` URL or plain path), else None."""
    parts = urlsplit(location)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme in ("http", "https"):
        return None
    if len(parts.scheme) == 1:  # a Windows drive letter, not a scheme
        return Path(location)
    return Path(location) if not parts.scheme else None


def _as_url(location: str) -> str:
    """Plain paths become absolute ``file://`` URLs; URLs are kept as written."""
    parts = urlsplit(location)
    if parts.scheme and len(parts.scheme) > 1:
        return location
    return Path(location).expanduser().resolve().as_uri()


def _drop_missing(locations: Iterable[str], what: str, warn: Warn) -> tuple[str, ...]:
    kept = []
    for loc in locations:
        path = _local_path(loc)
        if path is not None and not path.expanduser().exists():
            warn(f"pip's configured {what} {redact_url(loc)} does not exist; ignoring it")
            continue
        kept.append(_as_url(loc) if path is not None else loc)
    return tuple(kept)


def pip_config_files(environ: Mapping[str, str] = os.environ) -> list[str] | None:
    """The files pip reads, lowest priority first, as this interpreter's pip lists them.

    Mirrors ``pip._internal.configuration``: global, user (skipped when
    PIP_CONFIG_FILE names an existing file), site, then PIP_CONFIG_FILE; none at
    all when PIP_CONFIG_FILE is os.devnull.  None when pip is not importable here.
    """
    try:
        from pip._internal.utils import appdirs
    except ImportError:
        return None
    env_file = environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    basename = "pip.ini" if sys.platform == "win32" else "pip.conf"
    files = [os.path.join(d, basename) for d in appdirs.site_config_dirs("pip")]
    if not (env_file and os.path.exists(env_file)):
        legacy = os.path.join(os.path.expanduser("~"), "pip" if sys.platform == "win32" else ".pip",
                              basename)
        files += [legacy, os.path.join(appdirs.user_config_dir("pip"), basename)]
    files.append(os.path.join(sys.prefix, basename))
    return files + ([env_file] if env_file else [])


def read_pip_config_files(paths: Iterable[str], *, warn: Warn = lambda _msg: None) -> dict[str, str]:
    """``{key: value}`` from pip config files, later files and sections winning, as pip merges them."""
    by_section: dict[str, dict[str, str]] = {}
    for path in paths:
        if not os.path.exists(path):
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding=locale.getpreferredencoding(False))
        except (configparser.Error, UnicodeDecodeError, OSError) as exc:
            warn(f"could not read pip configuration {path}: {str(exc).splitlines()[0]}; ignoring it")
            continue
        for section in _SECTIONS:
            if parser.has_section(section):
                by_section.setdefault(section, {}).update(
                    {k.lower().replace("_", "-"): v for k, v in parser.items(section)})
    # The section outranks the file: [install] anywhere beats [global] anywhere.
    merged: dict[str, str] = {}
    for section in _SECTIONS:
        merged.update(by_section.get(section, {}))
    return merged


def pip_default_index(python: str = sys.executable,
                      environ: Mapping[str, str] = os.environ) -> str | None:
    """The index pip uses when nothing is configured, as that pip defines it."""
    if python == sys.executable:
        try:
            from pip._internal.models.index import PyPI
        except ImportError:
            pass
        else:
            return str(PyPI.simple_url) or None
    out = _run_python(python, ["-c", _DEFAULT_INDEX_SCRIPT], environ)
    return out.strip() or None if out else None


def _configured_values(environ: Mapping[str, str], python: str, warn: Warn) -> dict[str, str]:
    """pip's file settings: read in this process when it is that pip's interpreter, else asked."""
    paths = pip_config_files(environ) if python == sys.executable else None
    if paths is not None:
        return read_pip_config_files(paths, warn=warn)
    out = _run_python(python, ["-m", "pip", "config", "list"], environ)
    if out is None:
        warn("could not run `pip config list`; using only PIP_* environment variables")
    return read_pip_config_list(out or "")


def pip_index_config(environ: Mapping[str, str] = os.environ, python: str = sys.executable,
                     *, warn: Warn = lambda _msg: None) -> IndexConfig:
    """What pip on this machine is configured to use: config files, then PIP_* variables."""
    values = _configured_values(environ, python, warn)
    env_map = {"PIP_INDEX_URL": "index-url", "PIP_EXTRA_INDEX_URL": "extra-index-url",
               "PIP_FIND_LINKS": "find-links", "PIP_NO_INDEX": "no-index"}
    for env_name, key in env_map.items():
        if environ.get(env_name):
            values[key] = environ[env_name]
    no_index = values.get("no-index", "").strip().lower() in _TRUE
    index_url = values.get("index-url", "").strip() or None
    extras = _split(values.get("extra-index-url", ""))
    if no_index:
        index_url, extras = None, ()
    elif index_url is None:
        index_url = pip_default_index(python, environ)
        if index_url is None:
            warn("could not ask pip for its default index; set --index-url or PIP_INDEX_URL")
    main = _drop_missing((index_url,), "index", warn) if index_url else ()
    extras = _drop_missing(extras, "extra index", warn)
    find_links = _drop_missing(_split(values.get("find-links", "")), "find-links location", warn)
    return IndexConfig(main[0] if main else None, _dedup(extras), _dedup(find_links))


def merge(base: IndexConfig, index_url: str | None = None, extra: Iterable[str] = (),
          find_links: Iterable[str] = (), no_index: bool = False) -> IndexConfig:
    """Apply CLI or spec settings: an index URL replaces pip's; extras and find-links add."""
    main = base.index_url if index_url is None else _as_url(index_url)
    extras = _dedup(base.extra_index_urls + tuple(_as_url(e) for e in extra))
    links = _dedup(base.find_links + tuple(_as_url(f) for f in find_links))
    if no_index:
        main, extras = None, ()
    return replace(base, index_url=main, extra_index_urls=extras, find_links=links)


@dataclass(frozen=True)
class NetSettings:
    """pip's network settings, each with where it came from (for messages, never its value)."""

    cert: str | None = None
    client_cert: str | None = None
    proxy: str | None = None  # None: not set (environment proxies apply); "": no proxy at all
    trusted_hosts: tuple[str, ...] = ()
    timeout: float | None = None
    retries: int | None = None
    sources: tuple[tuple[str, str], ...] = ()  # (setting, where it was given)

    def check(self) -> None:
        """A CA bundle or client certificate that is not a file: one line naming the setting."""
        for field, what in (("cert", "CA bundle"), ("client_cert", "client certificate")):
            path = getattr(self, field)
            if path and not os.path.exists(path):
                raise UsageError(f"the {what} {path} ({self.source(field)}) does not exist",
                                 hint=f"fix `{field.replace('_', '-')}` in pip's configuration, "
                                      f"PIP_{field.upper()} or --{field.replace('_', '-')}")

    def source(self, key: str) -> str | None:
        """Where *key* (``cert``, ``proxy``, ...) was given, or None."""
        return dict(self.sources).get(key)


# pip's option names as config keys / PIP_* variables; timeout also answers to default-timeout.
_NET_KEYS = {"cert": "cert", "client-cert": "client_cert", "proxy": "proxy",
             "trusted-host": "trusted_hosts", "timeout": "timeout", "default-timeout": "timeout",
             "retries": "retries"}


def _net_values(environ: Mapping[str, str], python: str,
                warn: Warn) -> dict[str, tuple[str, str]]:
    """``{field: (value, where)}``: files ([global], then the command's section), then PIP_*."""
    found: dict[str, tuple[str, str]] = {}
    for key, value in _configured_values(environ, python, warn).items():
        if key in _NET_KEYS and value.strip():
            found[_NET_KEYS[key]] = (value.strip(), "pip's configuration")
    for key, field in _NET_KEYS.items():
        env_name = "PIP_" + key.upper().replace("-", "_")
        if environ.get(env_name, "").strip():
            found[field] = (environ[env_name].strip(), env_name)
    return found


_N = TypeVar("_N", int, float)


def _number(text: str, what: str, kind: Callable[[str], _N]) -> _N:
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or value < 0:
        raise UsageError(f"{what} must be a non-negative number, not {text!r}")
    return value


def pip_net_settings(environ: Mapping[str, str] = os.environ, python: str = sys.executable,
                     *, warn: Warn = lambda _msg: None) -> NetSettings:
    """cert, client-cert, proxy, trusted-host, timeout and retries as pip on this machine reads them."""
    found = _net_values(environ, python, warn)

    def text(field: str) -> str | None:
        return found[field][0] if field in found else None

    timeout, retries = text("timeout"), text("retries")
    return NetSettings(
        cert=_path(text("cert")), client_cert=_path(text("client_cert")), proxy=text("proxy"),
        trusted_hosts=_split(text("trusted_hosts") or ""),
        timeout=None if timeout is None else _number(timeout, f"timeout ({found['timeout'][1]})", float),
        retries=None if retries is None else _number(retries, f"retries ({found['retries'][1]})", int),
        sources=tuple((f, where) for f, (_v, where) in sorted(found.items())))


def _path(value: str | None) -> str | None:
    return None if value is None else os.path.expanduser(value)


def merge_net(base: NetSettings, *, cert: str | None = None, client_cert: str | None = None,
              proxy: str | None = None, trusted_hosts: Iterable[str] = (),
              timeout: float | None = None, retries: int | None = None) -> NetSettings:
    """Apply command-line options as pip does: each replaces pip's value; trusted hosts add."""
    given = {"cert": cert, "client_cert": client_cert, "proxy": proxy, "timeout": timeout,
             "retries": retries}
    hosts = tuple(trusted_hosts)
    sources = dict(base.sources)
    changes: JSONObject = {}
    for field, value in given.items():
        if value is not None:
            changes[field] = _path(str(value)) if field in ("cert", "client_cert") else value
            sources[field] = "--" + field.replace("_", "-")
    if hosts:
        changes["trusted_hosts"] = _dedup(base.trusted_hosts + hosts)
        sources["trusted_hosts"] = f"{sources['trusted_hosts']} and --trusted-host" \
            if base.trusted_hosts else "--trusted-host"
    return replace(base, **changes, sources=tuple(sorted(sources.items())))


# pip's SECURE_ORIGINS (pip/_internal/network/session.py), from Chrome's list: (scheme, host, port).
_SECURE_ORIGINS: tuple[tuple[str, str, str | int | None], ...] = (
    ("https", "*", "*"), ("*", "localhost", "*"), ("*", "127.0.0.0/8", "*"), ("*", "::1/128", "*"),
    ("file", "*", None), ("ssh", "*", "*"),
)


def _trusted_origin(host: str) -> tuple[str, str, str | int | None]:
    """pip's ``parse_netloc`` of a trusted-host entry, as a secure origin (no port: any port)."""
    netloc = f"[{host}]" if host.count(":") >= 2 and "[" not in host else host
    try:
        parts = urlsplit(f"https://{netloc}")
        name, port = parts.hostname or "", parts.port
    except ValueError:
        name, port = "", None
    return ("*", name, "*" if port is None else port)


def is_secure_origin(url: str, trusted_hosts: Iterable[str] = ()) -> bool:
    """pip's ``is_secure_origin``: HTTPS, loopback, a local file, or a trusted host (and port)."""
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.rsplit("+", 1)[-1], parts.hostname, parts.port
    except ValueError:
        return False
    for want_scheme, want_host, want_port in (*_SECURE_ORIGINS, *map(_trusted_origin, trusted_hosts)):
        if scheme != want_scheme and want_scheme != "*":
            continue
        try:
            addr, network = ipaddress.ip_address(host or ""), ipaddress.ip_network(want_host)
        except ValueError:
            if host and host.lower() != want_host.lower() and want_host != "*":
                continue
        else:
            if addr not in network:
                continue
        if port != want_port and want_port != "*" and want_port is not None:
            continue
        return True
    return False


def check_secure_origins(config: IndexConfig, trusted_hosts: Iterable[str]) -> None:
    """Refuse the plain-HTTP indexes and find-links that pip would not read.

    pip skips such a location with a warning and carries on without it; a lock made without
    one of its sources is not the lock that was asked for, so this stops instead.
    """
    trusted = tuple(trusted_hosts)
    bad = [(what, url) for what, urls in (("index", config.index_urls()),
                                          ("find-links location", config.find_links))
           for url in urls if not is_secure_origin(url, trusted)]
    if not bad:
        return
    hosts = list(dict.fromkeys(urlsplit(url).hostname or "?" for _what, url in bad))
    where = ", ".join(f"the {what} {redact_url(url)}" for what, url in bad)
    allow = " ".join(f"--trusted-host {h}" for h in hosts)
    raise InsecureOriginError(
        f"refusing {where}: plain HTTP to {' and '.join(hosts)}, which is neither loopback nor a "
        f"trusted host; use HTTPS, or allow it as pip does with {allow}, `trusted-host` in pip's "
        "configuration or PIP_TRUSTED_HOST")
