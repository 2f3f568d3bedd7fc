"""Building a large plan's objects at once: a plan, its step index, its costs.

Python's cycle collector runs a pass each time enough new containers have been made, and each
pass walks every object still alive: building 200,000 steps, or reading their index, spent
about as long in those passes as in the building. None of these objects forms a cycle, so the
collector is paused while they are built. On leaving, what was built is moved to the oldest
generation (gc.freeze then gc.unfreeze, each a list splice): otherwise the first pass after the
block walks every object made in it, a quarter of a large plan's time.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off inside the block (as it was after)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if was_enabled:
            gc.enable()
