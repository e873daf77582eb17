"""The shipped parameter files reach their nodes in a namespace, through rcl's own YAML parser
(issue 11, defect 2: `llm_bridge:` was silently ignored under `namespace:=head`).

Each file is loaded as `--ros-args --params-file` with one value changed from its default, into a
node in the namespace the README's launch example uses; the node must see the changed value.
"""
from __future__ import annotations

import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy); source /opt/ros/<distro>/setup.bash")
pytest.importorskip("emotion_msgs.msg", reason="needs the built emotion_msgs package (source install/setup.bash)")

from conftest import PACKAGE_DIR  # noqa: E402
from emotion_perception.ros.llm_bridge_node import LLMBridgeNode  # noqa: E402
from emotion_perception.ros.perception_node import PerceptionNode  # noqa: E402
from ros_graph import ros_context  # noqa: E402


def changed_copy(tmp_path, name: str, parameter: str, value):
    data = yaml.safe_load((PACKAGE_DIR / "config" / name).read_text())
    (section,) = data.values()
    assert section["ros__parameters"][parameter] != value  # a real change
    section["ros__parameters"][parameter] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("node_class, file, parameter, value", [
    (LLMBridgeNode, "llm_bridge.yaml", "backend", "openai"),
    (PerceptionNode, "head.yaml", "profile", "lite-fer2013"),
])
@pytest.mark.parametrize("namespace", ["", "head", "robot/head"])
def test_params_file_applies_in_a_namespace(tmp_path, node_class, file, parameter, value, namespace):
    params = changed_copy(tmp_path, file, parameter, value)
    with ros_context() as context:
        node = node_class(context=context, namespace=namespace, cli_args=["--ros-args", "--params-file", str(params)])
        try:
            assert node.get_parameter(parameter).value == value, f"{file} ignored in namespace {namespace!r}"
        finally:
            node.destroy_node()
