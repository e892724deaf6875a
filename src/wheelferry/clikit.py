"""Command-line plumbing shared by both halves: errors to exit codes, JSON, messages.

Standard library only.  A command handler takes parsed ``args`` and returns a
JSON-ready result dict; it prints human text through :func:`say` (stderr is for
warnings and errors).  ``--json`` prints the result object on stdout instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Callable

from wheelferry.errors import UsageError, WheelferryError
from wheelferry.interrupt import Interrupted, handled_signals
from wheelferry.jsontypes import JSONObject
from wheelferry.urls import redact_text

Handler = Callable[[argparse.Namespace], "JSONObject"]

_quiet = False


def say(text: str = "") -> None:
    """Human output on stdout (suppressed under --json)."""
    if not _quiet:
        print(text, flush=True)


_warn_lock = threading.Lock()


def warn(text: str) -> None:
    """A warning on stderr, credentials redacted; whole lines even from many threads."""
    with _warn_lock:
        sys.stderr.write(f"warning: {redact_text(text)}\n")
        sys.stderr.flush()


def human_size(n: int | None) -> str:
    """Bytes in SI units for people: ``695.1 MB``."""
    if n is None:
        return "? B"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def sizes_text(sizes: Iterable[int | None]) -> str:
    """The total of *sizes* for people; files of unknown size are counted, never taken as 0 B."""
    sizes = list(sizes)
    known = [s for s in sizes if s is not None]
    unknown = len(sizes) - len(known)
    if not unknown:
        return human_size(sum(known))
    if not known:
        return "size unknown"
    return f"{human_size(sum(known))} + {unknown} of unknown size"


def progress_enabled() -> bool:
    """tqdm progress only when stderr is a terminal and not under --json or CI logs."""
    return (not _quiet) and sys.stderr.isatty() and os.environ.get("WHEELFERRY_NO_PROGRESS") != "1"


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UsageError (exit 2, one line) instead of printing usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


def positive_int(text: str) -> int:
    """argparse type: a whole number from 1 to 1000 (--threshold, --approvals)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 1000")
    return value


def add_key_arguments(p: argparse.ArgumentParser) -> None:
    """KEYS = --keyring KEYS.asc --trusted-key FPR [...] | --allow-unsigned."""
    g = p.add_argument_group("trust")
    g.add_argument("--keyring", metavar="KEYS.asc", help="public key(s) to verify with")
    g.add_argument("--trusted-key", metavar="FPR", action="append", default=[],
                   help="fingerprint of a key you trust (repeatable); written down out of band")
    g.add_argument("--threshold", metavar="N", type=positive_int, default=1,
                   help="require good signatures by N distinct pinned keys (the builder's and "
                        "approvals; the bundle's own required approvals still apply)")
    g.add_argument("--allow-unsigned", action="store_true",
                   help="skip the signature check (labs and tests only); hashes are still checked")


def run(handler: Handler, args: argparse.Namespace) -> int:
    """Run *handler*, turning wheelferry errors into a reason, a hint and an exit code."""
    global _quiet
    as_json = bool(getattr(args, "json", False))
    _quiet = as_json
    try:
        with _signals_interrupt():
            result = handler(args)
    except WheelferryError as exc:
        return _fail(exc.exit_code, str(exc), exc.hint, as_json, type(exc).__name__, exc.details)
    except KeyboardInterrupt as exc:  # SIGINT, or a signal turned into one (offline/txn.py)
        return _fail(getattr(exc, "exit_code", 130),
                     str(exc) if str(exc) else "interrupted; nothing half-written was left in place",
                     None, as_json, "Interrupted")
    except OSError as exc:
        return _fail(1, f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""),
                     None, as_json, "OSError")
    finally:
        _quiet = False
    if as_json:
        print(json.dumps({"ok": True, **result}, indent=2, sort_keys=True, default=str))
    return 0


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end a run the way SIGINT does: by an exception, so every cleanup runs.

    The first signal raises; one more during the cleanup is held back (the
    cleanup finishes) and puts the default handlers back, so a third ends the
    process at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = handled_signals()
    saved = {s: signal.getsignal(s) for s in signals}
    fired: list[int] = []

    def handle(signo: int, frame: object) -> None:
        if fired:
            for s in signals:
                signal.signal(s, signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL)
            return
        fired.append(signo)
        raise Interrupted(signo)

    for s in signals:
        signal.signal(s, handle)
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def _fail(code: int, message: str, hint: str | None, as_json: bool, kind: str,
          details: dict[str, object] | None = None) -> int:
    message = redact_text(message)
    if as_json:
        print(json.dumps({**(details or {}), "ok": False, "error": kind, "message": message, "hint": hint,
                          "exit_code": code}, indent=2, sort_keys=True))
    else:
        print(f"error: {message}", file=sys.stderr)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
    return code


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse *argv* and run the chosen subcommand's handler."""
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _fail(2, str(exc), exc.hint, "--json" in (argv or sys.argv[1:]), "UsageError")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return run(handler, args)
