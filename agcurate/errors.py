"""One family of errors: the CLI turns any of these into a one-line message and an exit code."""

from __future__ import annotations


class AgcurateError(Exception):
    """Base of every error agcurate raises on purpose; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class NoUsableInputError(AgcurateError):
    """Nothing that could be embedded was found (empty folder, only unreadable files...)."""

    exit_code = 2


class UsageError(AgcurateError):
    """An option or argument is invalid (found before any work starts); exit code 2."""

    exit_code = 2


class UnknownModelError(AgcurateError):
    """The ``--model`` name matches no registered encoder."""

    exit_code = 2


class WeightsUnavailableError(AgcurateError):
    """An encoder's weights are neither on disk nor downloadable right now."""

    exit_code = 2


class SourceError(AgcurateError):
    """A file could not be read as an item (corrupt, truncated, unsupported)."""


class StoreError(AgcurateError):
    """The embedding store is missing, unreadable or has nothing for the request."""

    exit_code = 2
