"""Errors that reach the user as one clear paragraph instead of a traceback."""


class UserError(Exception):
    """A problem the user can fix (configuration, data, environment); printed without a traceback."""

    exit_code = 2


class ConfigError(UserError):
    """A config value or key that cannot work."""


class DataError(UserError):
    """A dataset that is missing, partial or corrupt."""
