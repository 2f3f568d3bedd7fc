"""The library raises these; the CLI turns each into one line and an exit code.

ScalerError is the root. SpecError is bad user input (exit 2, nothing written), naming the file
or the library argument it came from; the CLI re-spells the latter as its flags (`spelled`).
StepFailed carries the step's log path and the tail of its error so the CLI can show where to
look.
"""

from __future__ import annotations

import re
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


class ArgumentError(SpecError):
    """Bad input naming a library call's keyword arguments, as the caller passed them.

    A notebook calls `analyse_csv(path, higher_is_better=True, scale=100)` or
    `run_experiment(spec, layout, parallel=0)`; `scaler fit` and `scaler run` take `--direction
    higher --scale 100` and `--parallel 0`. The library cannot know which, so it speaks in
    keywords: the field is the keyword (`scale`), the message writes one as `scale=` (with its
    value where the value matters: `higher_is_better=True`), and `source` is the function or
    part called (`run_experiment`, `overrides`, `analysis`), or the file the error is in when
    `in_file`. The CLI, which alone knows its flags, re-spells the error with `spelled`.
    """

    def __init__(
        self,
        source: str,
        field: str,
        message: str,
        arguments: tuple[str, ...] = (),
        *,
        in_file: bool = False,
    ):
        self.arguments = tuple(dict.fromkeys((*arguments, field)))
        self.in_file = in_file
        super().__init__(source, field, message)

    def spelled(self, source: str, flags: Mapping[str, str]) -> SpecError:
        """The same error in another caller's words: `flags` maps a keyword (`scale`) or a
        keyword with its value (`higher_is_better=True`) to what that caller wrote (`--scale`,
        `--direction higher`); `source` (the CLI's "command line") replaces a source that named
        no file."""
        names = [name for name in self.arguments if name in flags or _with_value(name, flags)]
        message = self.message
        if names:
            pattern = r"\b(" + "|".join(map(re.escape, names)) + r")=([\w.]*)"
            message = re.sub(pattern, lambda match: _flag(match, flags), message)
        return SpecError(
            self.source if self.in_file else source, flags.get(self.field, self.field), message
        )


def _with_value(name: str, flags: Mapping[str, str]) -> bool:
    return any(key.startswith(f"{name}=") for key in flags)


def _flag(match: re.Match[str], flags: Mapping[str, str]) -> str:
    name, value = match.group(1), match.group(2)
    if f"{name}={value}" in flags:
        return flags[f"{name}={value}"]
    if name not in flags:
        return match.group(0)
    return f"{flags[name]} {value}" if value else flags[name]


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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that both stop a command the same way."""


class RunStopped(ScalerError):
    """A run was stopped by Ctrl-C or SIGTERM; its running steps were cancelled."""

    def __init__(self, terminated: bool, cancelled: list[str]):
        self.cancelled = cancelled
        self.exit_code = 143 if terminated else 130  # 128 + the signal, as shells report
        how = "stopped by SIGTERM" if terminated else "interrupted"
        shown = ", ".join(cancelled[:4]) + (
            f" and {len(cancelled) - 4} more" if len(cancelled) > 4 else ""
        )
        what = f"cancelled {len(cancelled)} running step(s) ({shown}); " if cancelled else ""
        super().__init__(
            f"{how}: {what}every finished step is kept; run the same command again to finish"
        )
