"""Command line of the air-gapped half (also the entry point of wheelferry-offline.pyz).

Each command imports its stage modules when it runs ("lazy" below): the build-side
`wheelferry` imports this module to register these commands, and `wheelferry lock`
should not load the verifier, the installer and the policy's packaging modules.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wheelferry import __version__
from wheelferry.clikit import ArgumentParser, add_key_arguments, dispatch, human_size, say, warn
from wheelferry.errors import UsageError, VerificationError
from wheelferry.jsontypes import JSONObject

if TYPE_CHECKING:
    from wheelferry.offline.policy import Policy


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, metavar="BUNDLE.tar", help="the bundle (its .asc beside it)")
    _trust_arguments(p)


def _trust_arguments(p: argparse.ArgumentParser) -> None:
    """KEYS, the replay state and --json: what every command that accepts a bundle takes."""
    add_key_arguments(p)
    p.add_argument("--state-dir", type=Path, metavar="DIR",
                   help="where accepted sequence numbers are kept (default: $WHEELFERRY_STATE_DIR, "
                        "/var/lib/wheelferry as root, else the user state dir)")
    p.add_argument("--force-older", action="store_true",
                   help="accept a bundle older than one already accepted (a deliberate rollback)")
    p.add_argument("--json", action="store_true", help="print a machine-readable result")


def _trust(args: argparse.Namespace) -> JSONObject:
    if not args.bundle.is_file():
        raise UsageError(f"bundle {args.bundle} does not exist", hint="pass the path of NAME.tar")
    if not args.allow_unsigned and (not args.keyring or not args.trusted_key):
        raise UsageError("verifying needs --keyring KEYS.asc and --trusted-key FPR",
                         hint="get both from the bundle's sender out of band; --allow-unsigned is for labs")
    return {"keyring": Path(args.keyring) if args.keyring else None, "trusted": list(args.trusted_key),
            "allow_unsigned": args.allow_unsigned, "state_dir": args.state_dir,
            "force_older": args.force_older, "threshold": args.threshold}


def cmd_verify(args: argparse.Namespace) -> JSONObject:
    """`verify`: check signature, freshness and every member; remember the sequence."""
    # lazy, see above
    from wheelferry.offline.state import default_state_dir
    from wheelferry.offline.verify import verify_bundle
    from wheelferry.offline.volumes import joined_bundle

    trust = _trust(args)
    with joined_bundle(args.bundle, keyring=trust["keyring"], trusted=trust["trusted"],
                       allow_unsigned=trust["allow_unsigned"]) as tar:
        bundle = verify_bundle(tar, **trust)
    bundle.accept(args.state_dir or default_state_dir(), args.force_older)
    m = bundle.manifest
    signer = bundle.signed_by()
    say(f"{args.bundle.name}: bundle {m.name} #{m.sequence}, {len(bundle.files)} files, "
        f"{human_size(bundle.bytes)}, {signer}")
    say(f"targets: {', '.join(t.get('id', '?') for t in m.targets)}")
    say(f"verified in {bundle.seconds:.1f} s")
    return bundle.to_json()


def cmd_install(args: argparse.Namespace) -> JSONObject:
    """`install`: verify, pick the lock target of this interpreter, install with no index."""
    # lazy, see above
    from wheelferry.offline.install import install_bundle
    from wheelferry.offline.volumes import joined_bundle

    if (args.venv is None) == (args.python is None):
        raise UsageError("say where to install: exactly one of --venv DIR or --python PY",
                         hint="--venv creates or replaces a virtual environment atomically")
    for command in args.smoke:
        try:
            if not shlex.split(command):
                raise ValueError("it is empty")
        except ValueError as exc:
            raise UsageError(f"--smoke {command!r}: not a command line ({exc})",
                             hint="give a command and its arguments, quoted as a shell would") from None
    trust = _trust(args)
    with joined_bundle(args.bundle, keyring=trust["keyring"], trusted=trust["trusted"],
                       allow_unsigned=trust["allow_unsigned"]) as tar:
        report = install_bundle(tar, venv=args.venv, python=args.python, target_id=args.target,
                                allow_downgrade=args.allow_downgrade, compile=not args.no_compile,
                                smoke=args.smoke, **trust)
    where = report.venv or report.python
    say(f"installed {len(report.packages)} packages for target {report.target} into {where} "
        f"({human_size(report.bytes)}, {report.seconds:.1f} s)")
    say(report.signed_by)
    say(f"changes: {report.changes.summary()}")
    for line in report.changes.lines():
        say(f"  {line}")
    for gone in report.leftovers:
        say(f"removed a leftover of an earlier run: {gone}")
    for note in report.trimmed:
        say(f"trimmed on purpose: {note}")
    for line in report.smoke:
        say(f"smoke: {line}")
    return report.to_json()


def cmd_probe(args: argparse.Namespace) -> JSONObject:
    """`probe`: capture this (or --python's) interpreter for `lock --target @FILE`."""
    from wheelferry.offline.probe import capture, write_capture  # lazy, see above

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


def _keys(args: argparse.Namespace, *bundles: Path) -> JSONObject:
    for path in bundles:
        if not path.is_file():
            raise UsageError(f"bundle {path} does not exist",
                             hint="pass the path of NAME.tar (or NAME.tar.000 / NAME.volumes.json)")
    if not args.allow_unsigned and (not args.keyring or not args.trusted_key):
        raise UsageError("verifying needs --keyring KEYS.asc and --trusted-key FPR",
                         hint="get both from the bundle's sender out of band; --allow-unsigned is for labs")
    return {"keyring": Path(args.keyring) if args.keyring else None, "trusted": list(args.trusted_key),
            "allow_unsigned": args.allow_unsigned, "threshold": args.threshold}


def _print_json(doc: Any) -> None:  # Any: a JSON document
    print(json.dumps(doc, indent=2, sort_keys=True))


def needs_advisories(policy: Policy | None, db: Path | None) -> None:
    """A policy with ``[advisories]`` cannot be judged without a database: usage error (exit 2)."""
    if policy is not None and policy.advisories is not None and db is None:
        raise UsageError(f"policy {policy.source} has [advisories] rules: pass --advisories DB",
                         hint="DB: osv.dev's PyPI all.zip, a directory of OSV files or an advisory-database checkout")


def cmd_audit(args: argparse.Namespace) -> JSONObject:
    """`audit`: verify, then report every wheel (licence, why, trims), an SBOM, advisories and the policy."""
    # lazy, see above
    from wheelferry.offline import advisories as adv
    from wheelferry.offline import audit
    from wheelferry.offline.policy import load_policy

    policy = load_policy(args.policy) if args.policy else None
    needs_advisories(policy, args.advisories)
    with audit.checked_bundle(args.bundle, **_keys(args, args.bundle), extract=True) as bundle:
        assert bundle.extracted is not None
        rows = audit.audit_rows(bundle, bundle.extracted)
        sbom_problems = audit.check_sbom(audit.sbom_bytes(bundle.extracted), rows)
    done = audit.audit_report(bundle, rows, sbom_problems, advisories=args.advisories, policy=policy,
                              with_cyclonedx=args.format == "cyclonedx")
    result, scan, found, report = done.result, done.scan, done.found, done.policy
    if not getattr(args, "json", False):
        # A terminal gets a table that fits it; a file or pipe gets every cell whole.
        width = shutil.get_terminal_size((120, 24)).columns if sys.stdout.isatty() else None
        if args.format == "table":
            say(audit.render_table(rows, width))
            for line in audit.trim_lines(result["trimmed"], verbose=args.verbose):
                say(line)
            for line in bundle.signers.lines() if bundle.signers else ["NOT signature-checked"]:
                say(line if width is None or len(line) <= width else line[:width - 1] + "…")
            if scan is not None:
                say()
                say(adv.render_table(found, width) if found else "no known vulnerabilities")
                for line in adv.summary_lines(scan, found):
                    say(line)
        elif args.format == "html":
            from wheelferry.offline.htmlreport import render_html  # lazy, see above

            sys.stdout.write(render_html(result))
        else:
            _print_json(result["cyclonedx"] if args.format == "cyclonedx" else result)
        if scan is not None and args.format != "table":
            for line in adv.summary_lines(scan, found):
                sys.stderr.write(line + "\n")
    if sbom_problems:
        raise VerificationError(f"the bundle's SBOM does not match its wheels: {'; '.join(sbom_problems)}",
                                hint="the SBOM was edited or the bundle was repacked; do not rely on it")
    if policy is not None and report is not None:
        for w in report.warnings:
            warn(f"policy: {w}")
        for note in report.ignored:
            say(f"policy: {note}")
        report.raise_if_failed()
        if args.format == "table":
            say(f"policy {policy.source}: passed ({len(rows)} wheels)")
    return result


def cmd_advisories(args: argparse.Namespace) -> JSONObject:
    """`advisories DB`: read every record; print the identity and what was skipped (bad DB: exit 1)."""
    from wheelferry.offline.osv import scan, write_zip  # lazy, see above

    result = scan(args.db)
    live = len(result.advisories)
    names = {n for a in result.advisories for n in a.names()}
    say(result.identity.line())
    say(f"{live} live records about {len(names)} PyPI packages, {len(result.withdrawn)} withdrawn, "
        f"{len(result.malformed)} malformed (skipped)")
    for src, why in result.malformed:
        say(f"skipped malformed record {src}: {why}")
    written = None
    if args.write_zip is not None:
        count = write_zip(args.db, args.write_zip)
        written = scan(args.write_zip).identity
        say(f"wrote {count} records as OSV JSON: {written.line()}")
    return {"database": result.identity.to_json(), "live": live, "packages": len(names),
            "written": written.to_json() if written else None,
            "withdrawn": list(result.withdrawn),
            "malformed": [{"record": s, "problem": w} for s, w in result.malformed]}


def cmd_diff(args: argparse.Namespace) -> JSONObject:
    """`diff`: verify both bundles, then per target what was added, removed, up- or downgraded."""
    # lazy, see above
    from wheelferry.offline.audit import checked_bundle
    from wheelferry.offline.diff import backwards, diff_locks, render_diff

    keys = _keys(args, args.old, args.new)
    with checked_bundle(args.old, **keys) as old:
        pass
    with checked_bundle(args.new, **keys) as new:
        pass
    d = diff_locks(old.lock, new.lock, f"{old.manifest.name} #{old.manifest.sequence}",
                   f"{new.manifest.name} #{new.manifest.sequence}")
    notes = backwards(d, old.manifest.sequence, new.manifest.sequence)
    result = {**d.to_json(), "old-sequence": old.manifest.sequence, "new-sequence": new.manifest.sequence,
              "backwards": notes}
    if not getattr(args, "json", False):
        if args.format == "json":
            _print_json(result)
        else:
            say(render_diff(d))
            say(f"old: {old.signed_by()}")
            say(f"new: {new.signed_by()}")
    for note in notes:
        warn(note)
    if d.republished:
        files = ", ".join(r.file for r in d.republished)
        raise VerificationError(f"ALARM: {files} appear in both bundles with different sha256 "
                                f"(re-published or tampered)",
                                hint="find out which copy is genuine before installing either bundle")
    return result


def cmd_export_index(args: argparse.Namespace) -> JSONObject:
    """`export-index`: verify, then add the bundle's wheels to a static PEP 503/691/658 index."""
    # lazy, see above
    from wheelferry.offline.audit import checked_bundle
    from wheelferry.offline.exportindex import export_index
    from wheelferry.offline.state import default_state_dir

    keys = _keys(args, args.bundle)
    state = args.state_dir or default_state_dir()
    parent = args.dir.resolve().parent
    with checked_bundle(args.bundle, **keys, extract=True, state_dir=state, force_older=args.force_older,
                        work_parent=parent if parent.is_dir() else None) as bundle:
        assert bundle.extracted is not None
        report = export_index(bundle, bundle.extracted, args.dir)
    bundle.accept(state, args.force_older)
    say(f"{args.dir}: {len(report.added)} wheels added, {len(report.kept)} already there, "
        f"projects {', '.join(report.projects)}")
    say(bundle.signed_by())
    say(f"serve it with a static web server; pip install --index-url <URL of {args.dir}/simple/> ...")
    return report.to_json()


_POLICY_HELP = """policy file (TOML; every key optional, unknown keys are an error):
  [licenses]
  allow = ["MIT", "BSD-3-Clause", "Apache-2.0"]   # SPDX ids
  deny = ["GPL-3.0-only"]
  unknown = "fail"                                # or "warn"
  [packages]
  deny = ["leftpad", "urllib3<1.26.18"]           # ==, !=, <, <=, >, >=, ~=
  [releases]
  max-age-days = 730
  [advisories]                                    # needs --advisories DB
  deny = "any"                                    # or "low", "medium", "high", "critical"
  ignore = [{ id = "PYSEC-2023-62", reason = "why it is accepted", until = 2027-01-01 }]
"""


def _register_audit(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="verify a bundle and report every wheel: licence, why, trims, SBOM",
                       epilog=_POLICY_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, metavar="BUNDLE.tar", help="the bundle, its first volume or volume list")
    add_key_arguments(p)
    p.add_argument("--format", choices=["table", "json", "cyclonedx", "html"], default="table",
                   help="table (default), complete JSON, a CycloneDX 1.6 JSON SBOM, or one self-contained "
                        "HTML report")
    p.add_argument("--policy", type=Path, metavar="POLICY.toml", help="fail (exit 1) on any violation")
    p.add_argument("--verbose", action="store_true", help="list every trimmed optional extra, not only their count")
    p.add_argument("--advisories", type=Path, metavar="DB",
                   help="report known vulnerabilities from an OSV database: osv.dev's all.zip, a directory "
                        "of OSV JSON/YAML files or an advisory-database checkout")
    p.add_argument("--json", action="store_true", help="print a machine-readable result")
    p.set_defaults(handler=cmd_audit)
    p = sub.add_parser("advisories", help="read an OSV advisory database: its sha256, records, newest change")
    p.add_argument("db", type=Path, metavar="DB", help="osv.dev's all.zip, a directory of OSV files or a checkout")
    p.add_argument("--write-zip", type=Path, metavar="OUT.zip",
                   help="also write the records as a zip of OSV JSON (quicker to read offline than YAML)")
    p.add_argument("--json", action="store_true", help="print a machine-readable result")
    p.set_defaults(handler=cmd_advisories)
    p = sub.add_parser("diff", help="verify two bundles and show what changed per target")
    p.add_argument("old", type=Path, metavar="OLD.tar")
    p.add_argument("new", type=Path, metavar="NEW.tar")
    add_key_arguments(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--json", action="store_true", help="print a machine-readable result")
    p.set_defaults(handler=cmd_diff)
    p = sub.add_parser("export-index", help="verify a bundle and add it to a static index directory")
    p.add_argument("bundle", type=Path, metavar="BUNDLE.tar", help="the bundle, its first volume or volume list")
    p.add_argument("dir", type=Path, metavar="DIR", help="index directory (created or merged into)")
    _trust_arguments(p)
    p.set_defaults(handler=cmd_export_index)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the offline commands (verify, install, probe, audit, diff, export-index, approve)."""
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
    p.add_argument("--allow-downgrade", action="store_true",
                   help="install even if a package would go to an older version than installed")
    p.add_argument("--no-compile", action="store_true",
                   help="do not compile bytecode (--venv; Python compiles on first import if it may write)")
    p.add_argument("--smoke", action="append", default=[], metavar="CMD",
                   help="run CMD (no shell; `python` is the new environment's) before the switch; "
                        "failure: exit 1, nothing changed (repeatable; after the spec's smoke commands)")
    p.set_defaults(handler=cmd_install)
    p = sub.add_parser("probe", help="capture this interpreter exactly, for lock --target @FILE")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the capture here (default: stdout)")
    p.add_argument("--python", metavar="PY", help="describe this interpreter instead of the running one")
    p.add_argument("--name", help="the target id the capture gives its lock (default: HOST-cpXY)")
    p.add_argument("--variant", choices=["cpu", "gpu"], default="cpu", help="variant to lock for (default cpu)")
    p.add_argument("--json", action="store_true", help="print a machine-readable result")
    p.set_defaults(handler=cmd_probe)
    _register_audit(sub)
    _register_approve(sub)


def cmd_approve(args: argparse.Namespace) -> JSONObject:
    """`approve`: verify, show what is approved, then sign it with the approver's key."""
    from wheelferry.offline.approve import approve_bundle  # lazy, see above

    keys = _keys(args, args.bundle)
    done = approve_bundle(args.bundle, sign_key=args.sign_key, gnupghome=args.gnupghome,
                          passphrase_file=args.passphrase_file, **keys)
    licences = ", ".join(f"{n} {text}" for text, n in done.licences.items()) or "none"
    say(f"approving bundle {done.name} #{done.sequence}: {done.data.name} sha256 {done.sha256}")
    say(f"{done.packages} packages; licences: {licences}")
    for line in done.signers.get("signatures", []):
        say(f"already signed by {line['fingerprint']} ({line['uid']})")
    say(f"approval written: {done.signature}")
    return done.to_json()


def _register_approve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("approve", help="verify a bundle, then add your approval signature beside it")
    p.add_argument("bundle", type=Path, metavar="BUNDLE.tar", help="the bundle, its first volume or volume list")
    p.add_argument("--sign-key", required=True, metavar="FPR", help="fingerprint of the approver's key")
    p.add_argument("--gnupghome", help="GnuPG home holding the approver's key (default: gpg's)")
    p.add_argument("--passphrase-file", type=Path, metavar="FILE", help="file holding the key's passphrase")
    _trust_arguments(p)
    p.set_defaults(handler=cmd_approve)


def build_parser(prog: str = "wheelferry-offline") -> ArgumentParser:
    """The offline zipapp's parser."""
    parser = ArgumentParser(prog=prog, description="Verify, install and audit wheelferry bundles offline.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(
        title="commands", metavar="COMMAND", parser_class=ArgumentParser)
    register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the offline zipapp."""
    return dispatch(build_parser(), argv)
