"""How a running step tells the world how far it is: one small JSON file, rewritten.

    from runners.progress import report
    report(120, 700, "steps", loss=1.93, val_accuracy=0.41)

The file is the one named by the environment variable SCALER_PROGRESS_FILE, which the job sets
for each step (scaler.run.job: `<work_dir>/progress.json`); without it `report` does nothing,
so a runner called from a test or a notebook pays nothing. The file is replaced atomically (a
temporary file, then os.replace), so a reader (scaler.run.progress_view), also on another
machine sharing the results folder, sees the old record or the new one, never half of one. It
is rewritten at most every MIN_INTERVAL_S (a trainer reports every optimiser step), except for
the last report (done == total), which is always written.

This module is imported by runners in job processes: standard library only.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ENVIRONMENT_VARIABLE = "SCALER_PROGRESS_FILE"
MIN_INTERVAL_S = 0.5
"""At most two writes a second: a display refreshing twice a second sees every one."""

_last_write: dict[str, float] = {}
"""Path -> when it was last written (time.monotonic), for the throttle; keyed by path, so a
worker process that runs step after step throttles each step's file on its own."""


def report(done: int, total: int | None, unit: str, **fields: Any) -> bool:
    """Record that `done` of `total` `unit`s (steps, problems) are done, with `fields` (loss,
    val_accuracy, phase); return whether the file was written."""
    path = os.environ.get(ENVIRONMENT_VARIABLE)
    if not path:
        return False
    now = time.monotonic()
    last = _last_write.get(path)
    final = total is not None and done >= total
    if last is not None and now - last < MIN_INTERVAL_S and not final:
        return False
    # A diverged loss is NaN, which JSON has no word for: shown as unknown.
    fields = {k: None if isinstance(v, float) and not math.isfinite(v) else v
              for k, v in fields.items()}  # fmt: skip
    record = {"done": done, "total": total, "unit": unit, "at": time.time(), **fields}
    try:
        _write_atomically(Path(path), json.dumps(record, allow_nan=False, default=str))
    except (OSError, ValueError):  # progress is a courtesy: it never fails a step
        return False
    _last_write[path] = now
    return True


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    os.replace(partial, path)


@contextmanager
def counting_prompts(
    loaded: dict[str, Any], total: int, unit: str, **fields: Any
) -> Iterator[None]:
    """Report `done of total` prompts while runners.decoding.sample decodes them with `loaded`
    (what load_sampler gave): after each batch of the transformers backend, by counting the
    rows each `generate` call of the model is given; vLLM decodes all at once, so at the end.

    The model's `generate` is wrapped on the instance for the block only: decoding is
    unchanged, and nothing is wrapped when no progress file is set.
    """
    model = loaded.get("model")
    report(0, total, unit, **fields)
    if not os.environ.get(ENVIRONMENT_VARIABLE) or model is None:
        yield
        report(total, total, unit, **fields)
        return
    generate, done = model.generate, 0

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal done
        output = generate(*args, **kwargs)
        prompts = kwargs.get("input_ids", args[0] if args else None)
        done = min(done + (len(prompts) if prompts is not None else 0), total)
        report(done, total, unit, **fields)
        return output

    model.generate = counted
    try:
        yield
    finally:
        del model.generate  # the class's method again
