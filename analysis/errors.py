"""The analysis' input errors name the argument as the caller passed it (see
scaler.errors.ArgumentError): the field is the keyword's name (`scale`), a message writes a keyword
as `scale=`, and the source is the file the error is in or `ANALYSIS` for a setting or keyword.
The CLI re-spells them as its flags. An ArgumentError is a SpecError: bad input, exit 2, nothing
written.
"""

from __future__ import annotations

from scaler.errors import ArgumentError

ANALYSIS = "analysis"
"""The source of an error about a setting or keyword rather than a file."""

__all__ = ["ANALYSIS", "ArgumentError"]
