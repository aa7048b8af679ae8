"""Errors that fastadapt raises for bad input: the CLI prints them as one line and exits with 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FastAdaptError(Exception):
    """Base class of the errors a user can fix (bad config, missing data); never a bug in fastadapt."""


class ConfigError(FastAdaptError, ValueError):
    """An impossible or unknown setting: a preset, a key, a value, a task size the data cannot give."""


class DataError(FastAdaptError):
    """A dataset or file that is missing, corrupt or not what it claims to be."""


class CheckpointError(FastAdaptError):
    """A checkpoint or run folder that cannot be read or does not fit what it is used for."""


class DivergenceError(FastAdaptError):
    """Meta-training produced a non-finite loss or gradient."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` with the closest of ``choices`` to a misspelt ``word``, or ``""`` if none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
