"""Class indices <-> the ``class_id`` strings of vision_msgs hypotheses (no ROS needed)."""
from __future__ import annotations

from collections.abc import Sequence


class LabelError(ValueError):
    """A class_id string that is neither a configured class name nor an integer."""


def class_label(class_id: int, class_names: Sequence[str]) -> str:
    """The class name when names are configured and the id is in range, else the id as text."""
    if class_names and 0 <= class_id < len(class_names):
        return class_names[class_id]
    return str(class_id)


def class_index(label: str, class_names: Sequence[str]) -> int:
    """Inverse of ``class_label``: a configured name or an integer string."""
    if label in class_names:
        return list(class_names).index(label)
    try:
        return int(label)
    except ValueError:
        raise LabelError(f"unknown class_id {label!r}: not an integer and not in class_names "
                         f"{list(class_names)}") from None
