"""The evaluation and benchmark suite: ``bench/run`` (``python -m bench.suite``).

Sub-suites (accuracy, speed, memory, scaling) each print a table and write a
markdown report with PNG plots under ``out/bench/<suite>/``. Peers (BoxMOT,
AGPL) run in their own venv through ``peer_worker``; nothing here imports them.
"""
