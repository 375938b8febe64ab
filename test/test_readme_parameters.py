"""The README's parameter table stays current with the parameters the node declares."""
from smiletrack_ros.ros.settings import all_param_specs


def test_readme_names_every_node_parameter(repo_dir):
    readme = (repo_dir / "README.md").read_text()
    missing = []
    for spec in all_param_specs():
        tracker_field = spec.name.startswith("tracker.") and spec.name != "tracker.preset"
        name = spec.name.split(".", 1)[1] if tracker_field else spec.name
        if f"`{name}`" not in readme:
            missing.append(spec.name)
    assert not missing, f"README.md does not document: {missing}"
