"""A local job's lifeline to the `scaler run` that started it: when the run ends, so does the job.

submitit's local executor starts each job as a controller process and a task process, meant
to outlive the Python session that submitted them. For a local run that is wrong: a run killed
with kill -9 left its jobs training under PID 1, publishing steps its re-run was running again.
So a local job (one whose StepJob names its run as `owner`) watches that run's process and
cancels itself when it is gone, and it answers SIGTERM (how the run cancels it, through
submitit's controller, which forwards SIGTERM to its task) by raising `Cancelled`, which
`run_step` turns into a clean exit: the half-written step is removed, its claim released.

Slurm jobs have no owner: they outlive the submitting command by design (`--detach`).
This module is imported in job processes: keep it free of heavy imports.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from scaler.run.locks import is_alive

WATCH_EVERY_S = 0.25
GRACE_S = 10.0
"""How long a cancelled step may take to clean up before its process exits regardless."""
EXIT_ORPHANED = 70
RESEND_AFTER_S = 0.05


class Cancelled(BaseException):
    """The run this job belongs to cancelled it or ended. A BaseException, so that a runner's
    `except Exception` does not swallow it."""


@contextmanager
def tied_to(
    owner: dict[str, Any] | None, before_exit: Callable[[], None] = lambda: None
) -> Iterator[None]:
    """While the block runs, end it (raise Cancelled in this, the main, thread) on SIGTERM or
    when the process `owner` describes has ended. `before_exit` runs, in the watching thread,
    if the main thread has not ended within GRACE_S of that and the process exits regardless."""
    if not owner or owner.get("host") != socket.gethostname():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _cancel)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = partial(_cancel_again_if_swallowed, previous_hook)
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(owner, stop, before_exit), daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = previous_hook


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Start job processes inside this block: SIGINT is blocked while it runs, and processes
    inherit their signal mask, so the jobs started here never see the terminal's Ctrl-C (which
    goes to every process of the terminal's group, each printing its own KeyboardInterrupt
    traceback); this process alone gets it, and cancels them (SIGTERM). A Ctrl-C that arrives
    meanwhile is held, not lost: it is raised here as the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are the main thread's
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def signals_deferred(signums: frozenset[int]) -> Iterator[None]:
    """While the block runs, a signal of `signums` only is noted; it is raised again as the
    block ends. For code that must not be cut in two, like starting a process: a SIGTERM
    raised between spawning a child and sending it its start-up data leaves the child printing
    an EOFError traceback on the run's terminal. A signal mask cannot do this in a process with
    threads: the kernel hands the signal to a thread that does not block it, and Python runs
    the handler in the main thread all the same."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: arrived.append(signum)) for s in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(arrived):
            signal.raise_signal(signum)


def _cancel(signum: int, frame: Any) -> None:
    if _importing(frame):
        # Raised inside an import, Cancelled can unwind through C++: torch's pybind11 modules
        # call back into Python as they load, and an exception there aborts the process
        # ("terminate called after throwing an instance of 'pybind11::error_already_set'"),
        # leaving the step's half-written folder and its claim behind. Ask again once the
        # import is over: the step is cancelled the moment its imports are done.
        threading.Timer(RESEND_AFTER_S, os.kill, (os.getpid(), signum)).start()
        return
    raise Cancelled(f"cancelled by signal {signal.Signals(signum).name}")


def _importing(frame: Any) -> bool:
    """Whether `frame` runs inside an import (the import system's frames are on its stack)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _cancel_again_if_swallowed(previous_hook: Callable[[Any], Any], unraisable: Any) -> None:
    """Python ignores an exception raised where it cannot propagate: a SIGTERM that lands while
    the garbage collector runs some `__del__` (regex's, during a tokenizer's work) raises
    Cancelled there, and Python prints "Exception ignored in" and carries on. The step would run
    on until its worker was killed, leaving its half-written folder. So send the signal again:
    its handler raises at the next point where an exception does propagate. From a timer
    thread: sent from here, the handler would run here, inside the hook, and be ignored too."""
    if isinstance(unraisable.exc_value, Cancelled):
        threading.Timer(RESEND_AFTER_S, os.kill, (os.getpid(), signal.SIGTERM)).start()
    else:
        previous_hook(unraisable)


def _watch(owner: dict[str, Any], stop: threading.Event, before_exit: Callable[[], None]) -> None:
    while is_alive(owner):
        if stop.wait(WATCH_EVERY_S):
            return
    # The run is gone: cancel the step as the run would have; exit regardless if the main
    # thread is stuck where no Python signal handler runs.
    os.kill(os.getpid(), signal.SIGTERM)
    if not stop.wait(GRACE_S):
        # A heavy import on a busy machine can outlast the grace: the signal waits for it.
        before_exit()
        os._exit(EXIT_ORPHANED)
