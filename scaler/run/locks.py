"""One run per experiment, one attempt per step: locks that die with their holder.

Both are `flock`s on a file, so the operating system releases them when the holder exits, by any
means (a kill -9 included): a lock is never stale in the sense of being held by nobody. What a
dead holder can leave is its note in the file (who it was); finding a note under a free lock is
how a run that ended without releasing is detected and reported.

- The experiment lock, `results/<exp>/run.lock`, is held by `scaler run` (every executor) for
  as long as it runs. A second run says who holds it and exits 2, or waits with `--wait`.
- A step claim, `steps/<stage>/.claim-<name>`, is held by the process running that step, so two
  processes can never run one step at once, even two machines sharing a results folder (Linux
  NFS clients carry flocks to the server) or a job that outlived its run: the second waits for
  the first and then finds the step done (or runs it, if the first failed).

This module is imported in job processes: keep it free of heavy imports.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from scaler.errors import ScalerError
from scaler.layout import CLAIM_PREFIX, Layout

WAIT_POLL_S = 1.0


class ExperimentBusy(ScalerError):
    """Another `scaler run` of the same experiment holds it."""

    exit_code = 2


def this_process() -> dict[str, Any]:
    """Who holds a lock: host, pid, when the process started (to tell a reused pid apart)."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process_start": process_start(os.getpid()),
        "since": time.time(),
    }


def process_start(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot (Linux), None where unknown."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def is_alive(owner: dict[str, Any]) -> bool:
    """Whether the process `owner` (from this_process) still runs; on this host only."""
    pid = owner["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) has ended; so has a pid reused by another start
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        started = owner.get("process_start")
        return fields[0] != "Z" and (started is None or int(fields[19]) == started)
    except (OSError, IndexError, ValueError):
        return True


@contextmanager
def experiment_lock(
    layout: Layout, *, wait: bool = False, say: Callable[[str], None] = print
) -> Iterator[None]:
    """Hold the experiment's run.lock while the block runs; see the module. Raises
    ExperimentBusy when another run holds it, unless `wait`, which waits for it (saying so)."""
    root, path = layout.root, layout.run_lock
    waiting: list[str] = []

    def when_held(fd: int) -> None:
        holder = _describe(_read_note(fd))
        if not wait:
            raise ExperimentBusy(
                f"experiment {root.name} is being run by {holder}; wait for it to end "
                "(scaler run --wait), or stop that run, then run again"
            )
        if not waiting:
            say(f"waiting for {holder} to finish")
            waiting.append(holder)

    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, when_held)
    try:
        left = _read_note(fd)
        if left:  # the lock was free and its file still there: that run died holding it
            say(f"a previous run of {root.name} ended without releasing it ({_describe(left)})")
        _write_note(fd, this_process() | {"command": "scaler run"})
        yield
    finally:
        path.unlink(missing_ok=True)  # under the lock; see _acquire
        if created:  # a run refused before it wrote anything leaves nothing behind
            with suppress(OSError):
                root.rmdir()
        os.close(fd)  # releases the flock


@contextmanager
def step_claim(final: Path) -> Iterator[dict[str, Any] | None]:
    """Hold the claim on the step to be published at `final` while the block runs; wait while
    another process holds it. Yields the note of a holder that died holding it (its file is
    still there, as kill -9 leaves it), else None: only such a holder can have left attempts."""
    path = final.parent / f"{CLAIM_PREFIX}{final.name}"
    fd = _acquire(path, when_held=lambda fd: None)
    try:
        died_holding = _read_note(fd)
        _write_note(fd, this_process())
        yield died_holding
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def _acquire(path: Path, when_held: Callable[[int], None]) -> int:
    """Open and flock `path`, first calling `when_held(fd)` if another process holds it (which
    raises, or returns to wait for it); return the descriptor. Holders remove the file as they
    release it, so that nothing is left behind: a lock won on a file no longer at `path` is let
    go and the path's new file locked instead."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                when_held(fd)
                _lock_blocking(fd)
            if _same_file(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _lock_blocking(fd: int) -> None:
    # Polled rather than one blocking flock, so Ctrl-C and SIGTERM are answered at once.
    while not _try_lock(fd):
        time.sleep(WAIT_POLL_S)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read_note(fd: int) -> dict[str, Any] | None:
    raw = os.pread(fd, 1 << 16, 0)
    try:
        note = json.loads(raw) if raw.strip() else None
    except ValueError:
        return None
    return note if isinstance(note, dict) else None


def _write_note(fd: int, note: dict[str, Any] | None) -> None:
    os.ftruncate(fd, 0)
    if note is not None:
        os.pwrite(fd, json.dumps(note).encode(), 0)


def _describe(note: dict[str, Any] | None) -> str:
    if not note:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(note.get("since", 0)))
    return f"pid {note.get('pid')} on {note.get('host')} (since {since})"
