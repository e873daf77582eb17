"""head.launch.py without ROS: valid Python, the documented arguments with descriptions, and the
lifecycle bring-up wired as launch_ros expects (checked on the syntax tree; `launch` is not
installable here — tests/ros/ runs `ros2 launch --show-args` for real)."""
from __future__ import annotations

import ast

import pytest
import yaml

from conftest import PACKAGE_DIR
from emotion_perception.ros.params import BY_NAME

LAUNCH_FILE = PACKAGE_DIR / "launch" / "head.launch.py"
LAUNCH_OWN = {  # the launch's own arguments; every node parameter has one more (its own name)
    "namespace", "camera_topic", "llm", "autostart", "emotions_topic", "params_file", "llm_params_file",
    "log_level",
}


@pytest.fixture(scope="module")
def tree():
    source = LAUNCH_FILE.read_text()
    compile(source, str(LAUNCH_FILE), "exec")
    return ast.parse(source)


def calls(node, name):
    return [n for n in ast.walk(node) if isinstance(n, ast.Call)
            and (getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)]


def kwarg(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def literal(node):
    return ast.literal_eval(node) if node is not None else None


def test_generate_launch_description_is_defined(tree):
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {"launch", "launch_ros.actions", "launch_ros.events.lifecycle", "launch_ros.event_handlers"} <= imported


def test_own_arguments_with_descriptions(tree):
    declared = {}
    for call in calls(tree, "DeclareLaunchArgument"):
        if not isinstance(call.args[0], ast.Constant):
            continue  # the generated parameter arguments: test_parameter_arguments_come_from_the_table
        name = literal(call.args[0])
        description = literal(kwarg(call, "description"))
        assert isinstance(description, str) and len(description) > 15, f"{name} needs a description"
        assert kwarg(call, "default_value") is not None, f"{name} needs a default"
        declared[name] = call
    assert set(declared) == LAUNCH_OWN
    assert not LAUNCH_OWN & set(BY_NAME), "a launch argument never shadows a node parameter"
    for flag in ("llm", "autostart"):
        assert literal(kwarg(declared[flag], "choices")) == ["true", "false"]
    assert literal(kwarg(declared["llm"], "default_value")) == "false"
    assert literal(kwarg(declared["camera_topic"], "default_value")) == "image"


def test_parameter_arguments_come_from_the_table(tree):
    """One launch argument per node parameter: declared in a loop over params.PARAMETERS, empty by
    default (not passed), and passed to the node parsed by the same table."""
    (generated,) = [c for c in calls(tree, "DeclareLaunchArgument") if not isinstance(c.args[0], ast.Constant)]
    assert ast.unparse(generated.args[0]) == "p.name"
    assert literal(kwarg(generated, "default_value")) == ""
    loops = [n for n in ast.walk(tree) if isinstance(n, ast.For) and ast.unparse(n.iter) == "PARAMETERS"]
    assert any(generated in ast.walk(loop) for loop in loops)
    assert any("p.parse(" in ast.unparse(loop) for loop in loops), "given values are parsed by the table"
    imports = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("emotion_perception.ros.params", "PARAMETERS") in imports


def test_arguments_used_equal_arguments_declared(tree):
    used = {literal(c.args[0]) for c in calls(tree, "LaunchConfiguration") if isinstance(c.args[0], ast.Constant)}
    used |= {literal(c.args[0]) for c in calls(tree, "arg") if c.args and isinstance(c.args[0], ast.Constant)}
    assert used == LAUNCH_OWN, "every own argument is declared, and every declared one does something"


def test_perception_node_is_a_lifecycle_node_brought_to_active(tree):
    (node,) = calls(tree, "LifecycleNode")
    assert literal(kwarg(node, "executable")) == "perception_node"
    assert literal(kwarg(node, "name")) == "perception_node"
    assert kwarg(node, "namespace") is not None
    assert ast.unparse(kwarg(node, "parameters")) == "[arg('params_file'), *given_parameters(context)]"
    remapped = {literal(t.elts[0]) for t in kwarg(node, "remappings").elts}
    assert remapped == {"image", "image/compressed", "emotions"}

    transitions = [ast.unparse(kwarg(c, "transition_id")) for c in calls(tree, "ChangeState")]
    assert transitions == ["transition_id"], "ChangeState is built by one helper"
    emitted = {ast.unparse(c.args[1]) for c in calls(tree, "_transition")}
    assert emitted == {"Transition.TRANSITION_CONFIGURE", "Transition.TRANSITION_ACTIVATE"}
    (handler,) = calls(tree, "OnStateTransition")
    assert literal(kwarg(handler, "start_state")) == "configuring"
    assert literal(kwarg(handler, "goal_state")) == "inactive"
    # only the first configure activates: a later reconfigure (deactivate, cleanup, configure,
    # activate) must not find the node activated behind its back
    assert literal(kwarg(handler, "handle_once")) is True
    assert "TRANSITION_ACTIVATE" in ast.unparse(kwarg(handler, "entities"))


def test_llm_bridge_behind_its_argument(tree):
    (bridge,) = calls(tree, "Node")
    assert literal(kwarg(bridge, "executable")) == "llm_bridge"
    assert literal(kwarg(bridge, "name")) == "llm_bridge"
    assert ast.unparse(kwarg(bridge, "condition")) == "IfCondition(arg('llm'))"
    assert "llm_params_file" in ast.unparse(kwarg(bridge, "parameters"))
    assert ast.unparse(kwarg(bridge, "remappings")) == "[('emotions', arg('emotions_topic'))]"
    # the section must match the node under any namespace (namespace:=head), as head.yaml's does
    for name, node in (("llm_bridge.yaml", "llm_bridge"), ("head.yaml", "perception_node")):
        assert list(yaml.safe_load((PACKAGE_DIR / "config" / name).read_text())) == [f"/**/{node}"], name


def test_launch_and_config_are_installed():
    setup = (PACKAGE_DIR / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in setup and 'glob("config/*.yaml")' in setup
    assert (PACKAGE_DIR / "config" / "head.yaml").is_file()
