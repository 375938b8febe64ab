"""Benchmarks and the evaluation suite (not installed): run from the repository root as
modules, ``.venv/bin/python -m bench.NAME`` (``bench/run`` is ``-m bench.suite``), so that
``bench`` and the source tree's ``smiletrack_ros`` import without any path set-up."""
