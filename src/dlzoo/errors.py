"""Errors a user can act on. Entry points print them as one clear message instead of a traceback."""


class DlzooError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class ConfigError(DlzooError, ValueError):
    """A config value is outside what is allowed (raised before any training)."""


class DataError(DlzooError, FileNotFoundError):
    """A data file is missing or unreadable; the message names it and the command that fixes it."""


class TrackingError(DlzooError, ConnectionError):
    """The MLflow tracking store cannot be reached; raised before any training."""
