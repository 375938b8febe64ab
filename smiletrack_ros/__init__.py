"""SMILEtrack multi-object tracking for robots.

Data flows one way: image -> ``detection`` -> ``embedding`` -> ``tracking`` -> ``ros``
messages. ``tracking`` is pure numpy/scipy and imports neither torch nor ROS.
"""

__version__ = "0.1.0"
