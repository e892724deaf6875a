"""The `wheelferry` command: thin wiring of every stage.

The stage modules are imported inside the command that needs them ("lazy" below): requests,
resolvelib, python-gnupg and the bundle writer take over a second to load, which
`wheelferry verify`, `cache` and `--help` should not pay.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from wheelferry import __version__
from wheelferry.clikit import (
    ArgumentParser,
    dispatch,
    human_size,
    positive_int,
    progress_enabled,
    say,
    warn,
)
from wheelferry.config import (
    IndexConfig,
    NetSettings,
    merge,
    merge_net,
    pip_index_config,
    pip_net_settings,
)
from wheelferry.errors import TargetError, UsageError
from wheelferry.jsontypes import JSONObject
from wheelferry.offline import cli as offline_cli
from wheelferry.spec import Spec, expand_requirement_args, load_spec, spec_from_requirements
from wheelferry.target import Target, host_target, parse_target, target_from_capture

if TYPE_CHECKING:
    from resolvelib import BaseReporter

    from wheelferry.finder import Candidate, Req
    from wheelferry.lockfile import Lock
    from wheelferry.network import Network


def add_spec_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by `lock` and `build` to say what to lock and from where."""
    p.add_argument("spec", nargs="?", metavar="SPEC.toml", help="spec file (manifests/NAME.toml)")
    p.add_argument("-r", "--requirement", action="append", default=[], metavar="REQ",
                   help="a PEP 508 requirement or a requirements file (repeatable)")
    p.add_argument("--name", help="bundle name when using -r (default: the first requirement's name)")
    p.add_argument("--target", action="append", default=[], metavar="T",
                   help="PLATFORM:PYTHON[:VARIANT], @capture.json, or host[:VARIANT] (repeatable; "
                        "default: the spec's targets, else this host)")
    p.add_argument("--glibc", help="glibc version of linux targets (default 2.28)")
    p.add_argument("--macos", help="macOS version of macos targets (default 12.0)")
    p.add_argument("--index-url", "-i", metavar="URL", help="base URL of the index (default: pip's)")
    p.add_argument("--extra-index-url", action="append", default=[], metavar="URL",
                   help="another index to read as well, as pip does (repeatable; a project "
                        "served by more than one index draws a dependency-confusion warning)")
    p.add_argument("--find-links", "-f", action="append", default=[], metavar="DIR",
                   help="a local folder of wheels to consider too (repeatable)")
    p.add_argument("--no-index", action="store_true", help="use only --find-links locations")
    p.add_argument("--exclude", action="append", default=[], metavar="NAME",
                   help="drop a package and everything only it pulls in (repeatable)")
    p.add_argument("--cache", type=Path, metavar="DIR", help="cache directory (default: the user cache)")
    p.add_argument("--jobs", type=int, default=8, metavar="N", help="parallel network requests (default 8)")
    p.add_argument("--json", action="store_true", help="print a machine-readable result")
    add_network_arguments(p)


def add_network_arguments(p: argparse.ArgumentParser) -> None:
    """pip's network options, with pip's names; unset ones come from pip's configuration."""
    g = p.add_argument_group("network (default: pip's configuration and PIP_* variables)")
    g.add_argument("--cert", metavar="PATH", help="PEM CA bundle to verify HTTPS servers with")
    g.add_argument("--client-cert", metavar="PATH",
                   help="PEM file holding the client's private key and certificate")
    g.add_argument("--proxy", metavar="URL", help="scheme://[user:passwd@]proxy.server:port")
    g.add_argument("--trusted-host", action="append", default=[], metavar="HOST[:PORT]",
                   help="a host whose HTTPS is not verified and that may be read over "
                        "plain HTTP (repeatable)")
    g.add_argument("--timeout", type=float, metavar="SEC", help="socket timeout (pip's default 15)")
    g.add_argument("--retries", type=int, metavar="N", help="retries per request (default 5)")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="say which CA bundle, client certificate and proxy each host gets")


def net_settings(args: argparse.Namespace) -> NetSettings:
    """pip's network settings with this command's options applied."""
    return merge_net(pip_net_settings(warn=warn), cert=args.cert, client_cert=args.client_cert,
                     proxy=args.proxy, trusted_hosts=args.trusted_host, timeout=args.timeout,
                     retries=args.retries)


def read_spec(args: argparse.Namespace) -> Spec:
    """The spec from SPEC.toml or -r, with command-line overrides applied."""
    if args.spec and args.requirement:
        raise UsageError("give either SPEC.toml or -r requirements, not both")
    if args.spec:
        spec = load_spec(Path(args.spec))
    elif args.requirement:
        spec = spec_from_requirements(expand_requirement_args(args.requirement), args.name)
    else:
        raise UsageError("nothing to lock", hint="pass SPEC.toml or -r REQUIREMENT")
    return spec.with_overrides(
        exclude=tuple(sorted(set(spec.exclude) | {str(canonicalize_name(e)) for e in args.exclude})),
        glibc=args.glibc, macos=args.macos,
    )


def resolve_targets(spec: Spec, args: argparse.Namespace) -> list[Target]:
    """Turn target strings (or none: this host) into Targets, once, at the edge."""
    texts = list(args.target) or list(spec.targets)
    if not texts:
        return [host_target(glibc=spec.glibc, macos=spec.macos)]
    out = []
    for text in texts:
        if text == "host" or text.startswith("host:"):
            out.append(host_target(text.partition(":")[2] or "cpu", glibc=spec.glibc, macos=spec.macos))
        elif text.startswith("@"):
            out.append(load_capture(Path(text[1:]) if args.target else (spec.base_dir or Path(".")) / text[1:]))
        else:
            out.append(parse_target(text, glibc=spec.glibc, macos=spec.macos))
    return out


def load_capture(path: Path) -> Target:
    """A target from a probe or pex complete-platform JSON file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TargetError(f"cannot read target capture {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise TargetError(f"target capture {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TargetError(f"target capture {path} is not a JSON object")
    name = data.get("name")
    return target_from_capture(data, name if isinstance(name, str) else path.stem)


def default_cache_root() -> Path:
    """The user cache directory (platformdirs is loaded only when no --cache is given)."""
    from platformdirs import user_cache_dir  # lazy: not needed when --cache is given

    return Path(user_cache_dir("wheelferry"))


def open_network(spec: Spec, args: argparse.Namespace) -> Network:
    """The index, metadata source and session of `lock` (and `build` from a spec)."""
    config = merge(
        pip_index_config(warn=warn),
        index_url=args.index_url or spec.index_url,
        extra=tuple(spec.extra_index_urls) + tuple(args.extra_index_url),
        find_links=tuple(spec.find_links) + tuple(args.find_links),
        no_index=args.no_index,
    )
    from wheelferry.network import Network  # lazy: requests and the index stack, see above

    return Network(config, net_settings(args), args.cache or default_cache_root(), jobs=args.jobs,
                   warn=warn, describe=say if args.verbose else None)


@contextlib.contextmanager
def resolve_progress(label: str) -> Iterator[BaseReporter[Req, Candidate, str] | None]:
    """A resolvelib reporter drawing a tqdm counter of pinned packages (terminal only)."""
    if not progress_enabled():
        yield None
        return
    # lazy: tqdm and resolvelib only when a terminal shows progress
    from resolvelib import BaseReporter
    from tqdm import tqdm

    from wheelferry.finder import Candidate, Req

    bar = tqdm(desc=f"resolving {label}", unit=" pkg", leave=False)

    class Reporter(BaseReporter[Req, Candidate, str]):
        def pinning(self, candidate: Candidate) -> None:
            bar.set_postfix_str(f"{candidate.name} {candidate.version}", refresh=False)
            bar.update(1)

    try:
        yield Reporter()
    finally:
        bar.close()


def do_lock(spec: Spec, args: argparse.Namespace) -> tuple[Lock, Network]:
    """Lock *spec* for its targets and return the Lock (written by the caller) and the network."""
    targets = resolve_targets(spec, args)
    net = open_network(spec, args)
    # The requirements' pages are read while the resolver's modules load.
    excluded = {canonicalize_name(e) for e in spec.exclude}
    net.index.read_ahead(r.name for r in spec.parsed_requirements() if canonicalize_name(r.name) not in excluded)
    from wheelferry.lock import lock_spec  # lazy: resolvelib and the index stack, see above

    return lock_spec(spec, targets, net, jobs=args.jobs, say=say, warn=warn, progress=resolve_progress), net


def cmd_lock(args: argparse.Namespace) -> JSONObject:
    spec = read_spec(args)
    lock, _ = do_lock(spec, args)  # first: it starts reading pages before the resolver's modules load
    from wheelferry.lock import render_lock_files, trim_report, write_lock_dir  # lazy, see above

    out_dir = args.output or Path("wheelhouse") / f"{spec.name}-lock"
    files = render_lock_files(lock)
    write_lock_dir(out_dir, files)
    report = trim_report(lock)
    for entry in report:
        say(f"trimmed for {entry['target']}: saves {entry['saved']}")
        for r in entry["removed"]:
            size = "size unknown" if r["size"] is None else human_size(r["size"])
            say(f"  - {r['name']} {r['version'] or ''} ({size}), declared by "
                f"{', '.join(r['declared-by'])}")
    say(f"lock written to {out_dir}/ ({', '.join(sorted(files))})")
    return {
        "lock_dir": str(out_dir),
        "files": sorted(files),
        "targets": [{"id": t.id, "spec": t.spec, "packages": {p.name: p.version for p in t.packages},
                     "bytes": _total_or_none(lock.wheels[p.wheel].size for p in t.packages),
                     "notes": list(t.notes)} for t in lock.targets],
        "trimmed": report,
    }


def _total_or_none(sizes: Iterable[int | None]) -> int | None:
    """A sum of sizes, or None (JSON null) when any is unknown: never a number that is wrong."""
    sizes = list(sizes)
    return None if None in sizes else sum(s or 0 for s in sizes)


def cmd_build(args: argparse.Namespace) -> JSONObject:
    # lazy: requests, python-gnupg and the bundle writer, see above
    from wheelferry.build import BuildOptions, Signer, build_bundle, check_lock, fetch_sources
    from wheelferry.bundle import check_compression
    from wheelferry.index import IndexClient
    from wheelferry.lock import read_lock_dir
    from wheelferry.network import open_session
    from wheelferry.offline.policy import load_policy
    from wheelferry.offline.volumes import parse_size
    from wheelferry.sign import check_can_sign, check_signing_key, read_passphrase

    if args.sign_key and args.no_sign:
        raise UsageError("--sign-key and --no-sign cannot be used together: choose one")
    if not args.sign_key and not args.no_sign:
        raise UsageError("say how to sign: --sign-key FPR, or --no-sign for an unsigned bundle")
    if args.gnupghome and not Path(args.gnupghome).is_dir():
        raise UsageError(f"--gnupghome {args.gnupghome}: no such directory")
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.expires is not None and args.expires <= 0:
        raise UsageError("--expires takes a positive number of days")
    if args.lock and (args.spec or args.requirement):
        raise UsageError("give either --lock DIR or a spec, not both")
    # Read before anything is fetched: bad input is exit 2.
    policy = load_policy(args.policy) if args.policy else None
    split_size = parse_size(args.split_size) if args.split_size else None
    offline_cli.needs_advisories(policy, args.advisories)
    if args.advisories is not None and not args.advisories.exists():
        raise UsageError(f"advisory database {args.advisories} does not exist")
    check_compression(args.compress)
    signer = None
    if args.sign_key:
        signer = Signer(check_signing_key(args.sign_key, args.gnupghome), args.gnupghome,
                        read_passphrase(args.passphrase_file))
        check_can_sign(signer.key, signer.gnupghome, signer.passphrase)
    else:
        warn("building an UNSIGNED bundle (--no-sign): the isolated host can only check it with "
             "--allow-unsigned, which proves nothing about who made it")
    sources = None
    if args.lock:
        lock = read_lock_dir(args.lock)
        # Where to fetch from: the lock's URLs, after any index or find-links given here;
        # credentials come from these and from pip's configuration, never from the lock.
        given = merge(IndexConfig(None), index_url=args.index_url, extra=args.extra_index_url,
                      find_links=args.find_links)
        config = merge(pip_index_config(warn=warn), index_url=args.index_url,
                       extra=args.extra_index_url, find_links=args.find_links)
        session = open_session(net_settings(args), list(config.all_urls()), given,
                               describe=say if args.verbose else None)
        cache_root = args.cache or default_cache_root()
        if given.all_urls():
            sources = fetch_sources(lock, IndexClient(given, session, jobs=args.jobs,
                                                      cache_dir=cache_root / "pages"), warn)
    else:
        lock, net = do_lock(read_spec(args), args)
        session, cache_root = net.session, net.cache_root
    check_lock(lock, policy, args.advisories)
    opts = BuildOptions(out_dir=args.output or Path("wheelhouse"), name=lock.spec.name, jobs=args.jobs,
                        sequence=args.sequence, expires_days=args.expires, compress=args.compress,
                        split_size=split_size, export_key=args.export_key, progress=progress_enabled(),
                        policy=policy, approvals=args.approvals)
    result = build_bundle(lock, session, cache_root, opts, signer, sources)
    fetched, bundle = result.fetch, result.bundle
    say(f"fetched {fetched['files']} wheels: {human_size(fetched['bytes_downloaded'])} downloaded, "
        f"{human_size(fetched['bytes_from_cache'])} from cache ({result.fetch_seconds:.2f} s)")
    say(f"bundle: {bundle.path} ({human_size(bundle.size)}, {len(lock.wheels)} wheels, "
        f"targets {', '.join(lock.target_ids)})")
    say(f"sha256: {bundle.sha256}  {bundle.path.name}  (give it to the operator with the key fingerprint)")
    if result.volumes is not None:
        first = result.volumes["volumes"][0]["name"]
        say(f"volumes: {len(result.volumes['volumes'])} x <= {human_size(split_size)} ({first} ...), "
            f"list {result.volumes['list']}")
        say(f"on the isolated host pass {first} (or {Path(result.volumes['list']).name}) where NAME.tar would go")
    for sig in result.signatures:
        say(f"signature: {sig}")
    if result.public_key:
        say(f"public key: {result.public_key}")
    say(f"offline kit: {result.kit}")
    return {"bundle": str(bundle.path), "size": bundle.size, "sha256": bundle.sha256,
            "signatures": [str(s) for s in result.signatures],
            "offline_kit": str(result.kit), "targets": lock.target_ids, "wheels": len(lock.wheels),
            "sequence": bundle.manifest.sequence, "fetch": fetched,
            "signed_by": signer.key.fingerprint if signer else None, "volumes": result.volumes}


def cmd_cache(args: argparse.Namespace) -> JSONObject:
    from wheelferry.cacheadmin import render_summary, summary  # lazy, see above

    root = args.cache or default_cache_root()
    parts = summary(root)
    for line in render_summary(root, parts):
        say(line)
    return {"cache": str(root), "parts": [p.to_json() for p in parts]}


def cmd_cache_prune(args: argparse.Namespace) -> JSONObject:
    from wheelferry.cacheadmin import locked_sha256s, prune  # lazy, see above

    if args.older_than is None and not args.keep_lock and not args.all:
        raise UsageError("say what to remove: --older-than DAYS, --keep-lock DIR or --all",
                         hint="--keep-lock DIR keeps the wheels of a lock you will build again")
    if args.older_than is not None and args.older_than < 0:
        raise UsageError(f"--older-than {args.older_than:g}: DAYS cannot be negative")
    root = args.cache or default_cache_root()
    keep = locked_sha256s(args.keep_lock)
    done = prune(root, args.older_than, keep)
    by_part = done.by_part()
    for part, (count, size) in by_part.items():
        say(f"removed {count} {part} entries ({human_size(size)})")
    if done.kept_by_lock:
        say(f"kept {done.kept_by_lock} wheels named by {', '.join(str(d) for d in args.keep_lock)}")
    say(f"freed {human_size(done.bytes)} in {root}")
    return {"cache": str(root), "removed": len(done.removed), "freed-bytes": done.bytes,
            "kept-by-lock": done.kept_by_lock,
            "parts": {p: {"entries": c, "bytes": b} for p, (c, b) in by_part.items()}}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="wheelferry",
        description="Carry a Python dependency set across an air gap.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(
        title="commands", metavar="COMMAND", parser_class=ArgumentParser)
    p = sub.add_parser("lock", help="resolve wheels for target machines and write a lock directory")
    add_spec_arguments(p)
    p.add_argument("-o", "--output", type=Path, metavar="DIR",
                   help="lock directory (default: wheelhouse/NAME-lock)")
    p.set_defaults(handler=cmd_lock)

    p = sub.add_parser("build", help="fetch the locked wheels and write a signed, deterministic bundle")
    add_spec_arguments(p)
    p.add_argument("--lock", type=Path, metavar="DIR", help="build from this lock directory")
    p.add_argument("--sign-key", metavar="FPR", help="fingerprint of the signing key")
    p.add_argument("--no-sign", action="store_true", help="write an unsigned bundle (says so loudly)")
    p.add_argument("--gnupghome", help="GnuPG home holding the signing key (default: gpg's)")
    p.add_argument("--passphrase-file", type=Path, metavar="FILE",
                   help="file holding the key's passphrase (else WHEELFERRY_PASSPHRASE or gpg-agent)")
    p.add_argument("--export-key", action="store_true", help="also write the public key beside the bundle")
    p.add_argument("-o", "--output", type=Path, metavar="DIR", help="output directory (default: wheelhouse)")
    p.add_argument("--expires", type=float, metavar="DAYS", help="the bundle expires DAYS after it was made")
    p.add_argument("--sequence", type=int, metavar="N",
                   help="sequence number (default: the bundle's time); installers refuse older ones")
    p.add_argument("--compress", choices=["gzip", "zstd"], help="compress the tar (default: none)")
    p.add_argument("--policy", type=Path, metavar="POLICY.toml",
                   help="refuse (exit 1) what breaks the policy: package and age rules before "
                        "downloading, licence rules on the fetched wheels, all before anything is signed")
    p.add_argument("--advisories", type=Path, metavar="DB",
                   help="report the lock's known vulnerabilities from an OSV database before downloading; "
                        "with --policy, refuse what its [advisories] rules deny")
    p.add_argument("--approvals", type=positive_int, default=1, metavar="N",
                   help="record that N distinct pinned signers (builder and approvers) are required")
    p.add_argument("--split-size", metavar="SIZE",
                   help="write NAME.tar.000, .001, ... of at most SIZE and a signed list: K, M, G are "
                        "powers of 1000 (4G), Ki, Mi, Gi of 1024 (4Gi); fat32 = 4 GiB - 1 byte")
    p.set_defaults(handler=cmd_build)

    p = sub.add_parser("cache", help="show what the wheel, metadata and page caches hold; `cache prune` trims them")
    p.add_argument("--cache", type=Path, metavar="DIR", help="cache directory (default: the user cache)")
    p.add_argument("--json", action="store_true", help="print a machine-readable result")
    p.set_defaults(handler=cmd_cache)
    csub = p.add_subparsers(title="actions", metavar="ACTION", parser_class=ArgumentParser)
    pp = csub.add_parser("prune", help="remove cache entries (unfinished downloads older than a day always)")
    pp.add_argument("--older-than", type=float, metavar="DAYS",
                    help="remove only what was not read or written for DAYS days")
    pp.add_argument("--keep-lock", type=Path, action="append", default=[], metavar="DIR",
                    help="keep every wheel this lock directory names (repeatable)")
    pp.add_argument("--all", action="store_true", help="remove every entry (what no --keep-lock keeps)")
    pp.add_argument("--cache", type=Path, metavar="DIR", default=argparse.SUPPRESS,
                    help="cache directory (default: the user cache)")
    pp.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                    help="print a machine-readable result")
    pp.set_defaults(handler=cmd_cache_prune)
    offline_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `wheelferry` console script."""
    if argv is None:  # the command line of this process
        # A lock makes millions of small objects and keeps most: collecting the young ones
        # every 7,000 allocations rather than 700 halves the collector's share of its time.
        gc.set_threshold(7000, 10, 10)
    code = dispatch(build_parser(), argv)
    if argv is None:  # the command line of this process: it ends next
        # Its teardown then need not search every object the command made for cycles
        # (a tenth of a TensorFlow lock's time).
        gc.freeze()
    return code
