"""``python -m smiletrack_ros.ros``: the tracker node (what the installed tracker_node runs)."""
from smiletrack_ros.ros.process import run_node

run_node()
