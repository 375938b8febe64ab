"""The package's import graph points one way: data types at the bottom, the ROS edge and the tools on top.

Every import statement in every module (lazy ones inside functions too) is read
with ``ast``; an edge to a higher layer, or between two packages of the same
middle layer, fails. docs/ARCHITECTURE.md describes the layers.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "smiletrack_ros"

# Top-level modules and subpackages of smiletrack_ros, by layer (0 = bottom).
LAYERS = {
    # data types and formats: numpy only, no models
    "__init__": 0, "boxes": 0, "detections": 0, "image_check": 0, "image_codec": 0, "devices": 0, "errors": 0,
    "labels": 0, "mot": 0, "msg": 0, "cdr": 0,
    # the models: each stands alone
    "tracking": 1, "detection": 1, "embedding": 1,
    # one frame through detector -> embedder -> tracker; tracks lifted to the floor
    "pipeline": 2, "ground": 2,
    # the edges: the ROS node, rosbags, command-line tools, synthetic scenes (they may use each
    # other, except as FORBIDDEN says)
    "ros": 3, "bags": 3, "cli": 3, "scene": 3,
}
TOP = max(LAYERS.values())
# Edges between parts of the top layer that must not exist, and why.
FORBIDDEN = {
    ("bags", "ros"): "bags/ reads and writes rosbag2 files without ROS 2 (rosbags): it shares code with the "
                     "node through the lower layers (cdr, image_codec), not through ros/",
    ("scene", "ros"): "scene/ makes synthetic data without ROS 2",
    ("ros", "cli"): "the command-line tools are leaves",
    ("bags", "cli"): "the command-line tools are leaves",
    ("scene", "cli"): "the command-line tools are leaves",
}


def _module_name(path: Path) -> list[str]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in the file."""
    name = _module_name(path)
    return _imports_in(path.read_text(), name if path.name == "__init__.py" else name[:-1])


def _imports_in(source: str, package: list[str]) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from smiletrack_ros import cli` names a subpackage, not an attribute
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def _group(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "smiletrack_ros":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _edges():
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _group(".".join(_module_name(path))) or "__init__"
        for line, target in _imported(path):
            group = _group(target)
            if group is not None and group != source:
                yield path, line, source, group


def test_every_part_of_the_package_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert parts - set(LAYERS) == set(), "give each new module or subpackage a layer here and in docs/ARCHITECTURE.md"


def test_imports_point_down_the_layers():
    back = []
    for path, line, source, target in _edges():
        if target not in LAYERS:  # e.g. `from smiletrack_ros import __version__`
            continue
        up = LAYERS[target] > LAYERS[source]
        sideways = LAYERS[target] == LAYERS[source] and LAYERS[source] not in (0, TOP)
        if up or sideways:
            back.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {source} (layer {LAYERS[source]}) imports "
                        f"{target} (layer {LAYERS[target]})")
    assert back == [], "imports that run back up the layers:\n" + "\n".join(back)


def test_the_edges_do_not_use_each_other_where_forbidden():
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {source} imports {target}: {FORBIDDEN[source, target]}"
             for path, line, source, target in _edges() if (source, target) in FORBIDDEN]
    assert found == [], "\n".join(found)


def test_the_reader_resolves_relative_and_lazy_imports():
    """The check itself, on a module written for it (as if it were smiletrack_ros/tracking/x.py)."""
    source = (
        "import numpy as np\n"
        "from . import kalman\n"
        "from .config import TrackerConfig\n"
        "from ..ros import node\n"
        "def later():\n"
        "    import smiletrack_ros.pipeline\n"
        "    from smiletrack_ros import cli\n")
    found = [t for _, t in _imports_in(source, ["smiletrack_ros", "tracking"])]
    assert found == ["numpy", "smiletrack_ros.tracking.kalman", "smiletrack_ros.tracking.config.TrackerConfig",
                     "smiletrack_ros.ros.node", "smiletrack_ros.pipeline", "smiletrack_ros.cli"]
    assert [_group(t) for t in found] == [None, "tracking", "tracking", "ros", "pipeline", "cli"]


@pytest.mark.parametrize(("module", "extra"), [
    ("boxes", set()), ("detections", set()), ("errors", set()), ("image_check", set()), ("labels", set()),
    ("devices", {"torch"}),  # resolve_device imports torch when called; DEVICE_SYNTAX does not
    ("image_codec", {"cv2"}),  # compressed_to_bgr imports OpenCV when called
])
def test_bottom_modules_import_only_numpy_and_the_standard_library(module, extra):
    import sys

    allowed = set(sys.stdlib_module_names) | {"numpy", "smiletrack_ros"} | extra
    outside = {t.split(".")[0] for _, t in _imported(PACKAGE / f"{module}.py")} - allowed
    assert outside == set(), f"smiletrack_ros.{module} imports {outside}"


REPO = PACKAGE.parent
def _python_files():
    for folder in ("smiletrack_ros", "test", "bench", "launch"):
        yield from sorted((REPO / folder).rglob("*.py"))


def _is_sys_path(node) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
            and node.value.id == "sys")


def _path_patches(source: str) -> list[int]:
    """Lines that change sys.path: sys.path.insert/append/extend(...), sys.path = / [...] = / += ..."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _is_sys_path(node.func.value):
            lines.append(node.lineno)
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_is_sys_path(t) or (isinstance(t, ast.Subscript) and _is_sys_path(t.value)) for t in targets):
                lines.append(node.lineno)
    return sorted(lines)


def test_the_path_patch_finder():
    assert _path_patches("import sys\nsys.path.insert(0, 'x')\nsys.path[:0] = ['y']\nsys.path += ['z']\n"
                         "for p in sys.path:\n    print(p)\n") == [2, 3, 4]


def test_no_file_patches_sys_path():
    patched = [f"{path.relative_to(REPO).as_posix()}:{line}" for path in _python_files()
               for line in _path_patches(path.read_text())]
    assert patched == [], "run as a module from the repository root instead: " + ", ".join(patched)


def test_the_bench_suite_imports_no_stand_alone_bench_script():
    loose = []
    for path in sorted((REPO / "bench" / "suite").glob("*.py")):
        for line, target in _imports_in(path.read_text(), ["bench", "suite"]):
            if target.startswith("bench.") and not target.startswith("bench.suite"):
                loose.append(f"{path.relative_to(REPO)}:{line}: {target}")
    assert loose == [], "move what the suite shares into bench/suite:\n" + "\n".join(loose)
