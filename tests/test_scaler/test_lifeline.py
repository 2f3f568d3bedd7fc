"""scaler.run.lifeline's signal handling in this process: a signal deferred while a block runs
(even when another thread is the one the kernel hands it to) is handled once the block ends, and
a cancel that lands inside an import is raised once the import is over."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time

import pytest

from scaler.run.lifeline import Cancelled, signals_deferred, tied_to
from scaler.run.locks import this_process

SLOW_MODULE = """
import os, signal, time
os.kill(os.getpid(), signal.SIGTERM)  # the run cancels the step while this module loads
time.sleep(0.3)
loaded = True
"""


def test_a_signal_sent_during_a_deferred_block_is_handled_after_it():
    handled: list[str] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: handled.append("after"))
    try:
        with signals_deferred(frozenset({signal.SIGUSR1})):
            # Sent from another thread, which does not block it: a mask would not hold it.
            sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGUSR1))
            sender.start()
            sender.join()
            time.sleep(0.05)  # time for Python to run a handler, were one to run now
            handled.append("inside")
        assert handled == ["inside", "after"]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_cancel_during_an_import_is_raised_once_the_import_is_done(tmp_path, monkeypatch):
    # Raised inside an import it could cross a C++ frame (torch's modules call back into
    # Python as they load) and abort the process instead of stopping the step cleanly.
    (tmp_path / "slow_to_import.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    imported = []
    try:
        with pytest.raises(Cancelled), tied_to(this_process()):
            imported.append(importlib.import_module("slow_to_import").loaded)
            time.sleep(5)  # what the step would go on doing were the cancel lost
        assert imported == [True]
    finally:
        sys.modules.pop("slow_to_import", None)


ORPHAN = """
import importlib, subprocess, sys
from pathlib import Path
import scaler.run.lifeline as lifeline
from scaler.run.locks import this_process

lifeline.GRACE_S = 0.3
run = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
owner = this_process() | {"pid": run.pid, "process_start": None}
sys.path.insert(0, sys.argv[1])
with lifeline.tied_to(owner, lambda: Path(sys.argv[1], "noted").write_text("stopped")):
    run.wait()  # the run ends; its step is then stuck in an import longer than the grace
    importlib.import_module("very_slow_to_import")
"""


def test_a_step_stuck_past_the_grace_exits_and_says_so_first(tmp_path):
    """An import outlasting GRACE_S (torch's, on a busy machine) holds the cancel back; the
    process then exits regardless, and `before_exit` (the job notes its attempt stopped) runs
    first, so the attempts log does not show it running beside the step's next attempt."""
    import subprocess

    from scaler.run.lifeline import EXIT_ORPHANED

    (tmp_path / "very_slow_to_import.py").write_text("import time\ntime.sleep(5)\n")
    done = subprocess.run([sys.executable, "-c", ORPHAN, str(tmp_path)], timeout=30)
    assert done.returncode == EXIT_ORPHANED
    assert (tmp_path / "noted").read_text() == "stopped"
