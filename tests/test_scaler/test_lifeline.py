"""scaler.run.lifeline's signal handling in this process: a signal deferred while a block runs
(even when another thread is the one the kernel hands it to) is handled once the block ends."""

from __future__ import annotations

import os
import signal
import threading
import time

from scaler.run.lifeline import signals_deferred


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
