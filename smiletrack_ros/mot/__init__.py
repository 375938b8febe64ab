"""MOTChallenge I/O, TrackEval evaluation and offline post-processing.

Import the submodules directly (``smiletrack_ros.mot.io``, ``.evaluate``,
``.interpolate``); ``evaluate`` pulls in trackeval only when used.
"""
