"""config/tracker.yaml, launch/tracker.launch.py and the node's parameter list agree; validation names
the parameter. launch/launch_ros cannot be installed here, so the launch file is checked by its AST."""
import ast
import re
from pathlib import Path

import pytest
import yaml

from smiletrack_ros.ros.settings import NodeSettings, ParameterError, all_param_specs

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "tracker.yaml"
LAUNCH = REPO / "launch" / "tracker.launch.py"
SPECS = {s.name: s for s in all_param_specs()}
_PY_TYPES = {"bool": bool, "int": int, "double": float, "string": str, "string_array": list, "integer_array": list}


def _config_params() -> dict:
    doc = yaml.safe_load(CONFIG.read_text())
    assert list(doc) == ["/**"], "the shipped config must apply to any node name / namespace"
    return doc["/**"]["ros__parameters"]


def _documented_overrides() -> dict:
    """'# tracker.<field>: value  # comment' lines: overrides documented but left to the preset."""
    found = {}
    for line in CONFIG.read_text().splitlines():
        m = re.match(r"^\s*#\s*(tracker\.\w+):\s*(\S+)", line)
        if m:
            found[m.group(1)] = yaml.safe_load(m.group(2))
    return found


def test_every_config_parameter_is_declared_and_vice_versa():
    active = _config_params()
    documented = _documented_overrides()
    assert set(active) <= set(SPECS), f"undeclared in the node: {sorted(set(active) - set(SPECS))}"
    missing = set(SPECS) - set(active) - set(documented)
    assert not missing, f"declared but not documented in config/tracker.yaml: {sorted(missing)}"
    assert set(documented) <= set(SPECS), f"documented but not declared: {sorted(set(documented) - set(SPECS))}"
    for name, value in {**active, **documented}.items():
        assert isinstance(value, _PY_TYPES[SPECS[name].type]) and not (
            SPECS[name].type in ("int", "double") and isinstance(value, bool)), (name, value)


def test_shipped_config_and_documented_overrides_validate():
    values = {name: spec.default for name, spec in SPECS.items()}
    values.update(_config_params())
    with pytest.raises(ParameterError) as info:          # the shipped prb backend needs the user's weights
        NodeSettings.from_values(values)
    assert info.value.name == "detector.weights"
    values["detector.weights"] = "/models/prb.safetensors"
    settings = NodeSettings.from_values(values)
    assert settings.tracker.preset == "reid" and settings.input_reliability == "best_effort"
    assert settings.input_depth == 1
    documented = {k: v for k, v in _documented_overrides().items()}
    settings = NodeSettings.from_values(values | documented)
    assert settings.tracker.high_threshold == documented["tracker.high_threshold"]


@pytest.mark.parametrize("name, value", [
    ("input_qos.reliability", "sometimes"), ("input_qos.depth", 0), ("image_topic", "bad topic"),
    ("frame_rate", 0.0), ("embedder.device", "tpu"), ("tracker.preset", "fastest"),
    ("tracker.alpha", 1.5), ("tracker.track_buffer", 0), ("detector.score_threshold", 1.5),
    ("detector.backend", "yolo"), ("detector.nms_iou", 0.0), ("class_names", ["a", "a"]),
])
def test_invalid_values_name_their_parameter(name, value):
    values = {n: s.default for n, s in SPECS.items()} | {"detector.backend": "external", name: value}
    with pytest.raises(ParameterError) as info:
        NodeSettings.from_values(values)
    assert info.value.name == name
    assert f"'{name}'" in str(info.value)


def test_runtime_parameters_are_thresholds_only():
    runtime = {n for n, s in SPECS.items() if s.runtime}
    assert {"tracker.appearance_gate", "tracker.stage1_match_threshold", "detector.score_threshold"} <= runtime
    assert not runtime & {"tracker.preset", "tracker.bank_size", "tracker.track_buffer", "image_topic",
                          "detector.backend", "embedder.weights"}


def _launch_tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))



def _constants(tree: ast.Module) -> dict:
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            out[node.targets[0].id] = node.value.value
    return out


def test_launch_file_runs_the_installed_node_with_the_shipped_config():
    """Without the ROS 2 launch tools (test_launch_tracker.py runs the file for real when they are
    built): the names the launch file uses are the ones CMake installs."""
    tree = _launch_tree()
    consts = _constants(tree)
    assert consts["PACKAGE"] == "smiletrack_ros" and consts["EXECUTABLE"] == "tracker_node"
    assert consts["NODE_NAME"] == "smiletrack_tracker"
    assert "generate_launch_description" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    # the executable is the script CMake configures and installs to lib/<package>, where launch_ros looks
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert "install(PROGRAMS ${CMAKE_CURRENT_BINARY_DIR}/tracker_node DESTINATION lib/${PROJECT_NAME})" in cmake
    assert (REPO / "scripts" / "tracker_node.in").read_text().startswith("#!@Python3_EXECUTABLE@\n")
    # the default config and DDS profile are share/smiletrack_ros/config/..., which CMake installs
    joins = [c for c in ast.walk(tree) if isinstance(c, ast.Call) and getattr(c.func, "attr", None) == "join"]
    installed = {tuple(a.value for a in c.args[1:]) for c in joins}
    assert {("config", "tracker.yaml"), ("config", "fastdds_large_images.xml")} <= installed
    assert all((REPO / Path(*parts)).is_file() for parts in installed)
    assert "install(DIRECTORY launch config DESTINATION share/${PROJECT_NAME})" in cmake


def test_every_class_is_minus_one_since_ros_files_cannot_hold_empty_lists():
    values = {n: s.default for n, s in SPECS.items()} | {"detector.backend": "external"}
    assert NodeSettings.from_values(values).detector.classes == (0,)
    assert NodeSettings.from_values(values | {"detector.classes": [-1]}).detector.classes is None
    with pytest.raises(ParameterError) as info:
        NodeSettings.from_values(values | {"detector.classes": [-2]})
    assert info.value.name == "detector.classes"
