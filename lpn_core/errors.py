"""Errors a user can fix. ``str(err)`` is always one line: what went wrong and what to do."""


class LpnError(Exception):
    """Base class for every error the user can act on; entry points print it and exit 2."""


class ModelError(LpnError):
    """Unknown model name or an inconsistent model request."""


class WeightsError(LpnError):
    """A weights file is missing, corrupt, or belongs to another architecture."""


class SourceError(LpnError):
    """A camera, video, image or folder cannot be opened or read."""


class OutputError(LpnError):
    """An output file or folder cannot be written."""


class DetectorError(LpnError):
    """A person detector cannot be found or loaded."""


class DataError(LpnError):
    """Annotations or results files are malformed."""
