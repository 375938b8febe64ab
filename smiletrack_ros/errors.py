"""The base of every configuration error: the setting it is about travels as data.

Config dataclasses (tracker, detector, embedder, node) raise a subclass with the field
name in ``field``; callers that map fields to their own names (the node's
``detector.conf_threshold`` parameters) read it instead of parsing the message.
"""
from __future__ import annotations


class SettingError(ValueError):
    """``field``: the setting that is wrong; the message says why (prefixed by ``field``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
