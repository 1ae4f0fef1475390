"""Errors caused by the user (bad path, bad value, malformed data).

The CLI turns these into one clear line and exit status 2 instead of a traceback, so every
module raises ``UserError`` (or a subclass) for anything the user can fix.
"""


class UserError(Exception):
    """A mistake the user can fix; its message must say what is wrong and where."""


class DatasetError(UserError):
    """A dataset file or folder is missing or malformed; the message names the file."""


class ConfigError(UserError):
    """A configuration key or value is invalid."""
