"""Signals as exceptions, and the test pause hook: shared by the transactions, the relocation and the command lines.

Standard library only.  SIGINT, SIGTERM and SIGHUP become :class:`Interrupted`
(a ``KeyboardInterrupt``, so every ``finally`` runs); :class:`SignalGuard` holds
them back inside critical sections.  :func:`checkpoint` is the named pause the
kill tests stop a run at.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

TEST_PAUSE_ENV = "WHEELFERRY_TEST_PAUSE"
SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def handled_signals() -> tuple[int, ...]:
    """The signals of :data:`SIGNALS` this process should turn into :class:`Interrupted`.

    A signal ignored when the run began stays ignored, as a shell and Python
    itself leave it: ``nohup`` ignores SIGHUP so a run outlives its terminal,
    and a non-interactive shell ignores SIGINT for a job started with ``&``.
    """
    return tuple(s for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN)


def checkpoint(phase: str) -> None:
    """TEST HOOK, a no-op in normal use: pause at *phase* so a test can kill us there.

    With ``WHEELFERRY_TEST_PAUSE=PHASE:FILE`` set, reaching PHASE writes this
    process's pid to FILE and sleeps until a signal arrives, so the kill tests hit
    a named phase deterministically.  Phases: ``unpack`` (the biggest wheel is
    being unpacked), ``compile`` (bytecode is being compiled), ``before-switch``,
    ``after-switch``, ``stashed`` (``--python``: the replaced files are aside, nothing
    new is written yet); and in ``build``, ``pack`` (a wheel is in the half-written tar).
    """
    spec = os.environ.get(TEST_PAUSE_ENV)
    if not spec or spec.split(":", 1)[0] != phase or ":" not in spec:
        return
    ready = Path(spec.split(":", 1)[1])
    tmp = ready.with_name(ready.name + ".tmp")
    tmp.write_text(str(os.getpid()), encoding="ascii")
    os.replace(tmp, ready)
    # A signal raises out of the sleep; one held back by a critical section ends the pause.
    while _guard is None or _guard.pending is None:
        time.sleep(0.05)


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived; the transaction was finished or undone first."""

    def __init__(self, signo: int, outcome: str = "") -> None:
        super().__init__(signo)
        self.signo = signo
        self.outcome = outcome

    @property
    def exit_code(self) -> int:
        return 128 + self.signo

    def __str__(self) -> str:
        name = signal.Signals(self.signo).name
        return f"interrupted by {name}; {self.outcome or 'nothing half-written was left in place'}"


_guard: SignalGuard | None = None


class SignalGuard:
    """Turn SIGINT/SIGTERM/SIGHUP into :class:`Interrupted`, held back inside critical sections."""

    def __init__(self) -> None:
        self.critical = 0
        self.pending: int | None = None
        self.fired = False
        self._saved: dict[int, Any] = {}  # signal.signal's own return type (handler, int or None)

    def __enter__(self) -> SignalGuard:
        global _guard
        if threading.current_thread() is threading.main_thread():
            for s in handled_signals():
                self._saved[s] = signal.signal(s, self._handle)
            _guard = self
        return self

    def __exit__(self, *exc: object) -> None:
        global _guard
        for s, handler in self._saved.items():
            signal.signal(s, handler)
        if _guard is self:
            _guard = None

    @property
    def cancelled(self) -> bool:
        """A signal arrived: workers on other threads should stop soon."""
        return self.pending is not None

    def _handle(self, signo: int, frame: FrameType | None) -> None:
        if self.pending is None:
            self.pending = signo
        if self.critical or self.fired:
            return  # finished first (critical) or already being undone
        self.fired = True
        raise Interrupted(signo)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Signals wait until the block is done; then the first one is raised."""
        self.critical += 1
        try:
            yield
        finally:
            self.critical -= 1
        if not self.critical and self.pending is not None and not self.fired:
            self.fired = True
            raise Interrupted(self.pending)
