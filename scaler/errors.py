"""The library raises these; the CLI turns each into one line and an exit code.

ScalerError is the root. SpecError is bad user input (exit 2, nothing written), naming the file
or the library argument it came from; the CLI re-spells the latter as its flags (`spelled`).
StepFailed carries the step's log path and the tail of its error so the CLI can show where to
look.
"""

from __future__ import annotations

from collections.abc import Mapping


class ScalerError(Exception):
    """Base of every error scaler raises on purpose."""

    exit_code = 1


class SpecError(ScalerError):
    """A spec, an override or a command-line argument is invalid. Nothing was written."""

    exit_code = 2

    def __init__(self, source: str, field: str, message: str):
        self.source, self.field, self.message = source, field, message
        where = f"{source}: {field}: " if field else f"{source}: "
        super().__init__(where + message)

    def spelled(self, source: str, fields: Mapping[str, str]) -> SpecError:
        """The same error in a caller's words: from `source` (the CLI's "command line"), its
        field as `fields` names it (a keyword `parallel` as the flag `--parallel`)."""
        return SpecError(source, fields.get(self.field, self.field), self.message)


class UsageError(ScalerError):
    """A command-line argument names something that does not exist."""

    exit_code = 2


class SubmissionError(ScalerError):
    """Slurm refused or could not be asked; nothing more was submitted."""

    exit_code = 2


class StepFailed(ScalerError):
    """A step raised inside its job; the other steps may have finished."""

    def __init__(self, step_name: str, log_path: str, tail: str):
        self.step_name, self.log_path, self.tail = step_name, log_path, tail
        super().__init__(f"step {step_name} failed (log: {log_path})\n{tail}")


class RunFailed(ScalerError):
    """Some steps of a run failed; everything else that could run has finished."""

    def __init__(self, failures: list[StepFailed]):
        self.failures = failures
        lines = [f"{len(failures)} step(s) failed:"] + [str(f) for f in failures]
        super().__init__("\n".join(lines))
