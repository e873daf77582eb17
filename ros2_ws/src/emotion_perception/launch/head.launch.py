"""Bring up the robot head's emotion perception: `ros2 launch emotion_perception head.launch.py`.

Starts the perception node (a lifecycle node) and, with autostart, has it configure and activate
itself once at start (its `autostart` parameter; later transitions are the caller's: reconfigure,
a lifecycle manager); optionally starts the LLM bridge on its output. `--show-args` lists the
arguments. Launch sends no lifecycle requests of its own: launch_ros's, waiting on the node's
change_state service, ended `ros2 launch` with exit code 1 on a Ctrl-C in the first seconds.

Fast DDS: the nodes get config/fastdds_large_images.xml (FASTRTPS_DEFAULT_PROFILES_FILE, unless it
is set already): shared-memory segments that hold raw images. The camera driver's process needs
the same (the sender's segment carries the data); docs/ros.md has the measurements.
Examples:
  ros2 launch emotion_perception head.launch.py camera_topic:=/camera/color/image_raw
  ros2 launch emotion_perception head.launch.py image_transport:=compressed device:=cuda llm:=true
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition, LaunchConfigurationNotEquals
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "emotion_perception"

SHARE = FindPackageShare(PACKAGE)
FASTDDS_PROFILES = "fastdds_large_images.xml"


def declare_arguments():
    """The launch arguments; `ros2 launch emotion_perception head.launch.py --show-args` lists them."""
    return [
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="Namespace of the nodes (e.g. head); their topics are relative to it"),
        DeclareLaunchArgument(
            "camera_topic", default_value="image",
            description="Camera image topic (sensor_msgs/Image); with image_transport:=compressed "
                        "the node reads <camera_topic>/compressed"),
        DeclareLaunchArgument(
            "image_transport", default_value="raw", choices=["raw", "compressed"],
            description="raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage, jpeg/png)"),
        DeclareLaunchArgument(
            "profile", default_value="auto",
            description="Model profile (a models/*.yaml name), or auto: the best one whose weights "
                        "are present for the device"),
        DeclareLaunchArgument(
            "device", default_value="auto", description="Inference device: auto, cpu, cuda or cuda:N"),
        DeclareLaunchArgument(
            "threads", default_value="0",
            description="CPU threads for torch and OpenCV in the perception node; 0 = the profile's "
                        "default for the device (lite-fer2013 on CPU: 1)"),
        DeclareLaunchArgument(
            "debug_image", default_value="true", choices=["true", "false"],
            description="Offer debug_image with boxes, labels and scene polarity (drawn only while "
                        "someone subscribes)"),
        DeclareLaunchArgument(
            "emotions_topic", default_value="emotions",
            description="Topic of the EmotionStateArray output, and of the LLM bridge's input"),
        DeclareLaunchArgument(
            "llm", default_value="false", choices=["true", "false"],
            description="Also start the LLM bridge node on the emotion output"),
        DeclareLaunchArgument(
            "autostart", default_value="true", choices=["true", "false"],
            description="The perception node configures and activates itself at start (false: it "
                        "stays unconfigured for a lifecycle manager)"),
        DeclareLaunchArgument(
            "params_file", default_value=PathJoinSubstitution([SHARE, "config", "head.yaml"]),
            description="Perception node parameters (the arguments above override it)"),
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


def generate_launch_description():
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
        parameters=[
            arg("params_file"),
            {
                "profile": ParameterValue(arg("profile"), value_type=str),
                "device": ParameterValue(arg("device"), value_type=str),
                "threads": ParameterValue(arg("threads"), value_type=int),
                "image_transport": ParameterValue(arg("image_transport"), value_type=str),
                "publish_debug_image": ParameterValue(arg("debug_image"), value_type=bool),
                "autostart": ParameterValue(arg("autostart"), value_type=bool),
            },
        ],
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

    return LaunchDescription([*declare_arguments(), fastdds, perception, bridge])
