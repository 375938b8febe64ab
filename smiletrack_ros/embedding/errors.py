"""Errors the embedding package raises (all ValueErrors, so callers may catch any)."""
from smiletrack_ros.errors import SettingError


class EmbedderConfigError(SettingError):
    """A setting or model-card field is invalid: ``field`` names it, the message says why."""


class WeightsError(ValueError):
    """A weights or model file is unreadable, corrupt, hostile or does not fit the network;
    the message names the file (and the offending keys or fields where there are any)."""


class EmbedderInputError(ValueError):
    """An image or box array the embedder cannot use; the message says what is wrong."""
