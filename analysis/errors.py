"""The analysis' input errors name the argument as the caller passed it.

A notebook calls ``analyse_csv(path, higher_is_better=True, scale=100)``; `scaler fit` takes
``--points FILE --direction higher --scale 100``. The library cannot know which, so it speaks
in keywords: the field is the keyword's name (``scale``) and the message writes a keyword as
``scale=`` (``higher_is_better=True``, with its value, where the value matters). The CLI, which
alone knows its flags, re-spells the error with :meth:`ArgumentError.spelled`.

An ArgumentError is a SpecError: bad input, exit 2, nothing written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from scaler.errors import SpecError


class ArgumentError(SpecError):
    """Bad input naming the keyword arguments in ``arguments`` (see the module)."""

    def __init__(self, source: str, field: str, message: str, arguments: tuple[str, ...] = ()):
        self.arguments = tuple(dict.fromkeys((*arguments, field)))
        super().__init__(source, field, message)

    def spelled(self, source: str, flags: Mapping[str, str]) -> SpecError:
        """The same error in another caller's words: ``flags`` maps a keyword (``scale``) or a
        keyword with its value (``higher_is_better=True``) to what that caller wrote
        (``--scale``, ``--direction higher``); ``source`` replaces a source that named no file
        (the notebook's ``analysis`` becomes the CLI's ``command line``)."""
        names = [name for name in self.arguments if name in flags or _with_value(name, flags)]
        message = self.message
        if names:
            pattern = r"\b(" + "|".join(map(re.escape, names)) + r")=([\w.]*)"
            message = re.sub(pattern, lambda match: _flag(match, flags), message)
        return SpecError(
            source if self.source == ANALYSIS else self.source,
            flags.get(self.field, self.field),
            message,
        )


ANALYSIS = "analysis"
"""The source of an error about a setting or keyword rather than a file."""


def _with_value(name: str, flags: Mapping[str, str]) -> bool:
    return any(key.startswith(f"{name}=") for key in flags)


def _flag(match: re.Match[str], flags: Mapping[str, str]) -> str:
    name, value = match.group(1), match.group(2)
    if f"{name}={value}" in flags:
        return flags[f"{name}={value}"]
    if name not in flags:
        return match.group(0)
    return f"{flags[name]} {value}" if value else flags[name]
