"""SMILEtrack multi-object tracking for robots.

Data flows one way: image -> ``detection`` -> ``embedding`` -> ``tracking`` -> ``ros``
messages. ``tracking`` is pure numpy/scipy and imports neither torch nor ROS.
"""
import sys as _sys
from pathlib import Path as _Path

__version__ = "0.1.0"


def _find_generated_messages() -> None:
    """Let a source checkout import the rosidl-generated ``smiletrack_ros.msg``.

    rosidl installs ``msg/`` into the installed copy of this package only. When this
    package is imported from a checkout (``python -m pytest`` at the repository root),
    the installed copy's directory is appended to ``__path__`` so that ``.msg`` (and only
    what the checkout lacks) is found there; the checkout's own modules always come first.
    """
    here = _Path(__file__).resolve().parent
    if (here / "msg").is_dir():
        return
    for entry in _sys.path:
        candidate = _Path(entry or ".").resolve() / __name__
        if candidate != here and (candidate / "msg" / "__init__.py").is_file():
            __path__.append(str(candidate))
            return


_find_generated_messages()
