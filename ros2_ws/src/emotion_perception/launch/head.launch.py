"""Bring up the robot head's emotion perception: `ros2 launch emotion_perception head.launch.py`.

Starts the perception node (a lifecycle node) and, with autostart, configures and activates it
once at start (later transitions are the caller's: reconfigure, a lifecycle manager); optionally
starts the LLM bridge on its output. `--show-args` lists the arguments: the launch's own, then
one per node parameter, made from the node's parameter table (emotion_perception/ros/params.py).
A parameter argument left empty is not passed: params_file's value applies, else the table's
default, and an engine setting nobody sets takes the profile's value.
Examples:
  ros2 launch emotion_perception head.launch.py camera_topic:=/camera/color/image_raw
  ros2 launch emotion_perception head.launch.py image_transport:=compressed device:=cuda llm:=true
  ros2 launch emotion_perception head.launch.py face_margin:=0.3 smoothing:=hysteresis min_hits:=3
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

from emotion_perception.ros.params import PARAMETERS

PACKAGE = "emotion_perception"

SHARE = FindPackageShare(PACKAGE)


def launch_arguments():
    """The launch's own arguments (no node parameter has one of these names)."""
    return [
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="Namespace of the nodes (e.g. head); their topics are relative to it"),
        DeclareLaunchArgument(
            "camera_topic", default_value="image",
            description="Camera image topic (remapped onto the node's 'image' input); with "
                        "image_transport:=compressed the node reads <camera_topic>/compressed"),
        DeclareLaunchArgument(
            "emotions_topic", default_value="emotions",
            description="Topic of the EmotionStateArray output, and of the LLM bridge's input"),
        DeclareLaunchArgument(
            "llm", default_value="false", choices=["true", "false"],
            description="Also start the LLM bridge node on the emotion output"),
        DeclareLaunchArgument(
            "autostart", default_value="true", choices=["true", "false"],
            description="Configure and activate the perception node at launch (false: leave it "
                        "unconfigured for a lifecycle manager)"),
        DeclareLaunchArgument(
            "params_file", default_value=PathJoinSubstitution([SHARE, "config", "head.yaml"]),
            description="Perception node parameters (the parameter arguments below override it)"),
        DeclareLaunchArgument(
            "llm_params_file", default_value=PathJoinSubstitution([SHARE, "config", "llm_bridge.yaml"]),
            description="LLM bridge parameters"),
        DeclareLaunchArgument(
            "log_level", default_value="info", choices=["debug", "info", "warn", "error", "fatal"],
            description="Log level of the nodes"),
    ]


def parameter_arguments():
    """One argument per perception node parameter, empty (= not passed) by default."""
    arguments = []
    for p in PARAMETERS:
        choices = ["true", "false"] if p.kind == "bool" else list(p.choices)
        arguments.append(DeclareLaunchArgument(
            p.name, default_value="", choices=["", *choices] if choices else None,
            description=f"Parameter: {p.summary()}"))
    return arguments


def given_parameters(context) -> list[dict]:
    """[{name: value}] of the parameter arguments that were given, each parsed and checked by its
    table entry ([] when none was)."""
    given = {}
    for p in PARAMETERS:
        text = LaunchConfiguration(p.name).perform(context)
        if text:
            given[p.name] = p.parse(text)
    return [given] if given else []


def _transition(node, transition_id, condition):
    event = ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition_id)
    return EmitEvent(event=event, condition=condition)


def generate_launch_description():
    return LaunchDescription([*launch_arguments(), *parameter_arguments(),
                              OpaqueFunction(function=_launch_nodes)])


def _launch_nodes(context):
    arg = LaunchConfiguration
    camera = arg("camera_topic")
    autostart = IfCondition(arg("autostart"))

    perception = LifecycleNode(
        package=PACKAGE,
        executable="perception_node",
        name="perception_node",
        namespace=arg("namespace"),
        output="screen",
        parameters=[arg("params_file"), *given_parameters(context)],
        # One camera: its topic is remapped onto the node's `image` input (either transport).
        remappings=[
            ("image", camera),
            ("image/compressed", [camera, "/compressed"]),
            ("emotions", arg("emotions_topic")),
        ],
        arguments=["--ros-args", "--log-level", arg("log_level")],
    )

    # configure at start; activate when that first configure has reached inactive (not after a
    # manual deactivate, hence start_state; and only once, so that a later reconfigure —
    # deactivate, cleanup, configure, activate — or a lifecycle manager stays in charge)
    configure = _transition(perception, Transition.TRANSITION_CONFIGURE, autostart)
    activate = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=perception,
            start_state="configuring",
            goal_state="inactive",
            entities=[_transition(perception, Transition.TRANSITION_ACTIVATE, autostart)],
            handle_once=True,
        )
    )

    bridge = Node(
        package=PACKAGE,
        executable="llm_bridge",
        name="llm_bridge",
        namespace=arg("namespace"),
        output="screen",
        parameters=[arg("llm_params_file")],
        remappings=[("emotions", arg("emotions_topic"))],
        arguments=["--ros-args", "--log-level", arg("log_level")],
        condition=IfCondition(arg("llm")),
    )

    # the activate handler is registered before configure is emitted
    return [perception, activate, configure, bridge]
