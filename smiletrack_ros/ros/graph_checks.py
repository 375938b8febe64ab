"""What the ROS graph says about the node itself (no tracking logic)."""
from __future__ import annotations

from typing import Any


def same_name_nodes(node: Any) -> int:
    """How many nodes in the graph carry this node's name and namespace, itself included.
    ROS lets two run side by side; their services and diagnostics then mix silently."""
    me = (node.get_name(), node.get_namespace())
    return sum(1 for entry in node.get_node_names_and_namespaces() if entry == me)
