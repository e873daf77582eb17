"""Bring up the robot head's emotion perception: `ros2 launch emotion_perception head.launch.py`.

Starts the perception node (a lifecycle node) and, with autostart, configures and activates it
once at start (later transitions are the caller's: reconfigure, a lifecycle manager); optionally
starts the LLM bridge on its output. `--show-args` lists the arguments: the launch's own, then
one per node parameter, made from the node's parameter table (emotion_perception/ros/params.py).
A parameter argument left empty is not passed: params_file's value applies, else the table's
default, and an engine setting nobody sets takes the profile's value.

Launch sends no lifecycle requests of its own: the node's `autostart` parameter has it configure
and activate itself (launch_ros's lifecycle events, waiting on the node's change_state service,
ended `ros2 launch` with exit code 1 on a Ctrl-C in the first seconds).

Fast DDS: the nodes get config/fastdds_large_images.xml (FASTRTPS_DEFAULT_PROFILES_FILE, unless it
is set already): shared-memory segments that hold raw images. The camera driver's process needs
the same (the sender's segment carries the data); docs/ros.md has the measurements.
Examples:
  ros2 launch emotion_perception head.launch.py camera_topic:=/camera/color/image_raw
  ros2 launch emotion_perception head.launch.py image_transport:=compressed device:=cuda llm:=true
  ros2 launch emotion_perception head.launch.py face_margin:=0.3 smoothing:=hysteresis min_hits:=3
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition, LaunchConfigurationNotEquals
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from emotion_perception.ros.params import PARAMETERS

PACKAGE = "emotion_perception"

SHARE = FindPackageShare(PACKAGE)
FASTDDS_PROFILES = "fastdds_large_images.xml"
# Node parameters set by a launch argument of the launch's own, with the launch's default.
PARAMETERS_FROM_OWN_ARGUMENTS = {"autostart"}


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
            description="The perception node configures and activates itself at start (its "
                        "autostart parameter; false: it stays unconfigured for a lifecycle manager)"),
        DeclareLaunchArgument(
            "params_file", default_value=PathJoinSubstitution([SHARE, "config", "head.yaml"]),
            description="Perception node parameters (the parameter arguments below override it)"),
        DeclareLaunchArgument(
            "llm_params_file", default_value=PathJoinSubstitution([SHARE, "config", "llm_bridge.yaml"]),
            description="LLM bridge parameters"),
        DeclareLaunchArgument(
            "fastdds_profiles_file",
            default_value=EnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE",
                                              default_value=PathJoinSubstitution([SHARE, "config", FASTDDS_PROFILES])),
            description="Fast DDS XML profiles for the nodes (FASTRTPS_DEFAULT_PROFILES_FILE; default: that "
                        "variable, else the package's large-image transports); empty: Fast DDS's defaults"),
        DeclareLaunchArgument(
            "log_level", default_value="info", choices=["debug", "info", "warn", "error", "fatal"],
            description="Log level of the nodes"),
    ]


def parameter_arguments():
    """One argument per perception node parameter, empty (= not passed) by default."""
    arguments = []
    for p in PARAMETERS:
        if p.name in PARAMETERS_FROM_OWN_ARGUMENTS:
            continue
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
        if p.name in PARAMETERS_FROM_OWN_ARGUMENTS:
            continue
        text = LaunchConfiguration(p.name).perform(context)
        if text:
            given[p.name] = p.parse(text)
    return [given] if given else []


def generate_launch_description():
    return LaunchDescription([*launch_arguments(), *parameter_arguments(),
                              OpaqueFunction(function=_launch_nodes)])


def _launch_nodes(context):
    arg = LaunchConfiguration
    camera = arg("camera_topic")
    fastdds = SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", arg("fastdds_profiles_file"),
                                     condition=LaunchConfigurationNotEquals("fastdds_profiles_file", ""))

    # a plain Node action: the node is a lifecycle node, but launch drives none of its transitions
    perception = Node(
        package=PACKAGE,
        executable="perception_node",
        name="perception_node",
        namespace=arg("namespace"),
        output="screen",
        parameters=[arg("params_file"), {"autostart": ParameterValue(arg("autostart"), value_type=bool)},
                    *given_parameters(context)],
        # One camera: its topic is remapped onto the node's `image` input (either transport).
        remappings=[
            ("image", camera),
            ("image/compressed", [camera, "/compressed"]),
            ("emotions", arg("emotions_topic")),
        ],
        arguments=["--ros-args", "--log-level", arg("log_level")],
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

    return [fastdds, perception, bridge]
