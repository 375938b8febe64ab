"""Errors the embedding package raises (both ValueErrors, so callers may catch either)."""


class EmbedderConfigError(ValueError):
    """A setting or model-card field is invalid; the message names the field."""


class WeightsError(ValueError):
    """A weights file is unreadable, corrupt, hostile or does not fit the network;
    the message names the file (and the offending keys where there are any)."""


class EmbedderInputError(ValueError):
    """An image or box array the embedder cannot use; the message says what is wrong."""
