"""Command-line tools: ``python -m smiletrack_ros.tools.NAME --help``."""
