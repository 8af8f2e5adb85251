"""Errors that reach the user as one clear paragraph instead of a traceback."""

from __future__ import annotations

import sys
from typing import NoReturn


class UserError(Exception):
    """A problem the user can fix (configuration, data, environment); printed without a traceback."""

    exit_code = 2


class ConfigError(UserError):
    """A config value or key that cannot work."""


class DataError(UserError):
    """A dataset that is missing, partial or corrupt."""


class UnsafeFileError(DataError):
    """A data file or checkpoint that names code to run while it loads; refused before anything in it runs."""


def report(error: UserError) -> None:
    """Print `error` as one paragraph on stderr."""
    print(f"\nerror: {error}\n", file=sys.stderr)


def exit_with(error: UserError) -> NoReturn:
    report(error)
    sys.exit(error.exit_code)
