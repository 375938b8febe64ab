"""Command-line tools: ``python -m smiletrack_ros.cli.NAME --help``."""
