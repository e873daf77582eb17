"""head.launch.py loaded with `launch` and `launch_ros`, its OpaqueFunction run as `ros2 launch`
runs it: the generated parameter arguments reach the node parsed by the table (tests/test_launch.py
checks the wiring on the syntax tree in CI; the node's own autostart is tests/ros/test_head_launch.py's).
"""
from __future__ import annotations

import importlib.util

import pytest

REASON = "needs launch and launch_ros (a full ROS 2 install; not on PyPI, so not in the pip Jazzy stack)"
launch = pytest.importorskip("launch", reason=REASON)
pytest.importorskip("launch_ros", reason=REASON)

from launch import LaunchContext  # noqa: E402
from launch.actions import OpaqueFunction  # noqa: E402

from conftest import PACKAGE_DIR  # noqa: E402


@pytest.fixture(autouse=True)
def package_installed():
    """head.launch.py finds its config through the ament index (FindPackageShare)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("emotion_perception")
    except PackageNotFoundError:
        pytest.skip("emotion_perception is not installed (colcon build; . install/setup.sh)")


def launch(**arguments):
    """(module, context, entities) of head.launch.py as `ros2 launch` runs it: its arguments
    declared (defaults, or ``arguments``) and the OpaqueFunction that builds the nodes run."""
    spec = importlib.util.spec_from_file_location("head_launch", PACKAGE_DIR / "launch" / "head.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = LaunchContext()
    context.launch_configurations.update(arguments)
    entities = []
    for entity in module.generate_launch_description().entities:
        if isinstance(entity, OpaqueFunction):
            entities += entity.execute(context)
        else:
            entity.execute(context)  # a DeclareLaunchArgument sets its default where not given
    return module, context, entities


def test_parameter_arguments_are_parsed_by_the_table_and_empty_ones_not_passed():
    """A parameter argument given becomes a value of its table type for the node (the node's
    `parameters` are params_file + given_parameters, tests/test_launch.py); one left empty is not
    passed, so head.yaml's value (or "not set") stays; a bad value stops the launch."""
    module, context, _ = launch(face_margin="0.3", smoothing="hysteresis", min_hits="3", face_square="false",
                                image_topics="[/a/image, /b/image]")
    assert module.given_parameters(context) == [{"face_margin": 0.3, "smoothing": "hysteresis", "min_hits": 3,
                                                 "face_square": False, "image_topics": ["/a/image", "/b/image"]}]
    module, context, _ = launch()
    assert module.given_parameters(context) == []
    with pytest.raises(ValueError, match="outside"):
        launch(min_hits="0")
