"""The three nodes' parameters on a real rclpy, as `ros2 param list` / `describe` would show them:
every engine setting on the perception node with its table type, range and description; "not set"
settings declared without a value (read as None) until a params file or override sets them."""
from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy); source /opt/ros/<distro>/setup.bash")
pytest.importorskip("emotion_msgs.msg", reason="needs the built emotion_msgs package (source install/setup.bash)")

from rcl_interfaces.msg import ParameterType  # noqa: E402
from rclpy.exceptions import InvalidParameterValueException, ParameterUninitializedException  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from emotion_perception.evaluation.live import PARAMETERS as EVAL_PARAMETERS  # noqa: E402
from emotion_perception.llm.params import PARAMETERS as LLM_PARAMETERS  # noqa: E402
from emotion_perception.ros.declare import read  # noqa: E402
from emotion_perception.ros.eval_node import EvalNode  # noqa: E402
from emotion_perception.ros.llm_bridge_node import LLMBridgeNode  # noqa: E402
from emotion_perception.ros.params import PARAMETERS  # noqa: E402
from emotion_perception.ros.perception_node import PerceptionNode  # noqa: E402
from emotion_perception.settings import SETTINGS  # noqa: E402
from ros_graph import ros_context  # noqa: E402

TYPES = {"bool": ParameterType.PARAMETER_BOOL, "int": ParameterType.PARAMETER_INTEGER,
         "float": ParameterType.PARAMETER_DOUBLE, "str": ParameterType.PARAMETER_STRING,
         "str_list": ParameterType.PARAMETER_STRING_ARRAY}


def test_every_engine_setting_is_a_typed_ranged_parameter():
    with ros_context() as context:
        node = PerceptionNode(context=context)
        try:
            listed = set(node._parameters)  # what list_parameters answers
            assert {p.name for p in PARAMETERS} <= listed
            for p, d in zip(SETTINGS, node.describe_parameters([p.name for p in SETTINGS])):
                assert d.type == TYPES[p.kind], p.name
                assert d.description.startswith(p.description), p.name
                if p.kind == "float":
                    (r,) = d.floating_point_range
                    assert (r.from_value, r.to_value) == (p.low, p.high), p.name
                if p.kind == "int":
                    (r,) = d.integer_range
                    assert (r.from_value, r.to_value) == (p.low, p.high), p.name
                if p.choices:
                    assert all(repr(c) in d.additional_constraints for c in p.choices), p.name
                if p.default is None:
                    assert "not set: " + p.unset in d.description
                    with pytest.raises(ParameterUninitializedException):
                        node.get_parameter(p.name)
                else:
                    assert node.get_parameter(p.name).value == p.default, p.name
            values = read(node, PARAMETERS)
            assert values["face_margin"] is None and values["window"] is None and values["min_hits"] == 2
            # set at runtime with the declared type and range; a wrong type or an out-of-range value is refused
            assert node.set_parameters([Parameter("face_margin", value=0.4)])[0].successful
            assert read(node, PARAMETERS)["face_margin"] == 0.4
            assert not node.set_parameters([Parameter("window", value=0)])[0].successful
            assert not node.set_parameters([Parameter("face_square", value=1.0)])[0].successful
        finally:
            node.destroy_node()


def test_overrides_set_a_not_set_setting_and_bad_ones_are_refused():
    with ros_context() as context:
        node = PerceptionNode(context=context, parameter_overrides=[
            Parameter("window", value=8), Parameter("smoothing", value="none")])
        try:
            values = read(node, PARAMETERS)
            assert (values["window"], values["smoothing"], values["scene_interval"]) == (8, "none", None)
        finally:
            node.destroy_node()
        with pytest.raises(InvalidParameterValueException):
            PerceptionNode(context=context, parameter_overrides=[Parameter("max_faces", value=0)])


@pytest.mark.parametrize("node_class, table, overrides", [
    (LLMBridgeNode, LLM_PARAMETERS, []),
    (EvalNode, EVAL_PARAMETERS, [Parameter("label_topic", value="label")]),  # it needs something to score by
])
def test_the_other_nodes_declare_typed_read_only_parameters(node_class, table, overrides):
    with ros_context() as context:
        node = node_class(context=context, parameter_overrides=overrides)
        try:
            for p, d in zip(table, node.describe_parameters([p.name for p in table])):
                assert d.type == TYPES[p.kind] and d.read_only and d.description.startswith(p.description), p.name
        finally:
            node.destroy_node()
