"""Command line of the air-gapped half (also the entry point of wheelferry-offline.pyz)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wheelferry import __version__
from wheelferry.clikit import ArgumentParser, add_key_arguments, dispatch, say
from wheelferry.errors import UsageError


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, metavar="BUNDLE.tar", help="the bundle (its .asc beside it)")
    add_key_arguments(p)
    p.add_argument("--state-dir", type=Path, metavar="DIR",
                   help="where accepted sequence numbers are kept (default: the user state dir)")
    p.add_argument("--force-older", action="store_true",
                   help="accept a bundle older than one already accepted (a deliberate rollback)")
    p.add_argument("--json", action="store_true", help="print a machine-readable result")


def _trust(args: argparse.Namespace) -> dict[str, Any]:
    if not args.bundle.is_file():
        raise UsageError(f"bundle {args.bundle} does not exist", hint="pass the path of NAME.tar")
    if not args.allow_unsigned and (not args.keyring or not args.trusted_key):
        raise UsageError("verifying needs --keyring KEYS.asc and --trusted-key FPR",
                         hint="get both from the bundle's sender out of band; --allow-unsigned is for labs")
    return {"keyring": Path(args.keyring) if args.keyring else None, "trusted": list(args.trusted_key),
            "allow_unsigned": args.allow_unsigned, "state_dir": args.state_dir,
            "force_older": args.force_older}


def cmd_verify(args: argparse.Namespace) -> dict[str, Any]:
    """`verify`: check signature, freshness and every member; remember the sequence."""
    from wheelferry.offline.state import default_state_dir, record_accepted
    from wheelferry.offline.verify import verify_bundle

    trust = _trust(args)
    bundle = verify_bundle(args.bundle, **trust)
    record_accepted(args.state_dir or default_state_dir(), bundle.manifest.name,
                    bundle.manifest.sequence, bundle.manifest_sha256)
    m = bundle.manifest
    signer = (f"signed by {bundle.signature.fingerprint} ({bundle.signature.uid})"
              if bundle.signature else "NOT signature-checked")
    say(f"{args.bundle.name}: bundle {m.name} #{m.sequence}, {len(bundle.files)} files, "
        f"{_human(bundle.bytes)}, {signer}")
    say(f"targets: {', '.join(t.get('id', '?') for t in m.targets)}")
    say(f"verified in {bundle.seconds:.1f} s")
    return bundle.to_json()


def cmd_install(args: argparse.Namespace) -> dict[str, Any]:
    """`install`: verify, pick the lock target of this interpreter, install with no index."""
    from wheelferry.offline.install import install_bundle

    if (args.venv is None) == (args.python is None):
        raise UsageError("say where to install: exactly one of --venv DIR or --python PY",
                         hint="--venv creates or replaces a virtual environment atomically")
    trust = _trust(args)
    report = install_bundle(args.bundle, venv=args.venv, python=args.python, target_id=args.target,
                            **trust)
    where = report.venv or report.python
    say(f"installed {len(report.packages)} packages for target {report.target} into {where} "
        f"({_human(report.bytes)}, {report.seconds:.1f} s)")
    for note in report.trimmed:
        say(f"trimmed on purpose: {note}")
    return report.to_json()


def cmd_probe(args: argparse.Namespace) -> dict[str, Any]:
    """`probe`: capture this (or --python's) interpreter for `lock --target @FILE`."""
    import json
    import sys

    from wheelferry.offline.probe import capture, write_capture

    doc = capture(args.python or sys.executable, args.name)
    doc["variant"] = args.variant
    if args.output:
        write_capture(doc, args.output)
        say(f"captured {doc['name']}: Python {doc['python']}, {len(doc['compatible_tags'])} wheel tags "
            f"-> {args.output}")
        say(f"carry it to the build host and run: wheelferry lock ... --target @{args.output.name}")
    elif not getattr(args, "json", False):
        print(json.dumps(doc, indent=2, sort_keys=True))
    return {"capture": doc, "output": str(args.output) if args.output else None}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the offline commands (verify, install, probe)."""
    p = sub.add_parser("verify", help="check a bundle's signature and every file, install nothing")
    _common(p)
    p.set_defaults(handler=cmd_verify)
    p = sub.add_parser("install", help="verify a bundle and install the lock matching this host")
    _common(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--venv", type=Path, metavar="DIR",
                       help="create (or atomically replace) a virtual environment at DIR")
    where.add_argument("--python", metavar="PY", help="install into this interpreter's environment")
    p.add_argument("--target", metavar="T", help="the lock target id to install (default: the one "
                                                  "that matches the interpreter)")
    p.set_defaults(handler=cmd_install)
    p = sub.add_parser("probe", help="capture this interpreter exactly, for lock --target @FILE")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the capture here (default: stdout)")
    p.add_argument("--python", metavar="PY", help="describe this interpreter instead of the running one")
    p.add_argument("--name", help="the target id the capture gives its lock (default: HOST-cpXY)")
    p.add_argument("--variant", choices=["cpu", "gpu"], default="cpu", help="variant to lock for (default cpu)")
    p.add_argument("--json", action="store_true", help="print a machine-readable result")
    p.set_defaults(handler=cmd_probe)


def build_parser(prog: str = "wheelferry-offline") -> ArgumentParser:
    """The offline zipapp's parser."""
    parser = ArgumentParser(prog=prog, description="Verify, install and audit wheelferry bundles offline.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=ArgumentParser)
    register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the offline zipapp."""
    return dispatch(build_parser(), argv)
