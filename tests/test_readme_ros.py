"""The README's ROS 2 commands, as scripts/readme_ros.py reads them to run them verbatim (issue 24):
they parse, name files that exist and launch arguments that head.launch.py declares. Running them
needs ROS 2 and minutes (scripts/readme_ros.py does, by hand; see docs/ros.md)."""
from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import subprocess

import pytest

from conftest import PACKAGE_DIR
from emotion_perception.ros.params import PARAMETERS

ROOT = PACKAGE_DIR.parents[2]
spec = importlib.util.spec_from_file_location("readme_ros", ROOT / "scripts" / "readme_ros.py")
readme_ros = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_ros)



def documented(section: str) -> list[str]:
    return readme_ros.documented(ROOT, section)


def launch_arguments() -> dict[str, list[str] | None]:
    """Argument name -> allowed values (None: any): the launch's own, declared literally, and one
    per node parameter, generated from the parameter table (tests/test_launch.py checks that)."""
    tree = ast.parse((PACKAGE_DIR / "launch" / "head.launch.py").read_text())
    declared = {}
    for call in ast.walk(tree):
        if (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "DeclareLaunchArgument"
                and isinstance(call.args[0], ast.Constant)):
            choices = next((ast.literal_eval(k.value) for k in call.keywords if k.arg == "choices"), None)
            declared[ast.literal_eval(call.args[0])] = choices
    for p in PARAMETERS:
        choices = ["true", "false"] if p.kind == "bool" else [str(c) for c in p.choices]
        declared.setdefault(p.name, choices or None)
    return declared


@pytest.mark.parametrize("section", ["robot", "tests"])
def test_each_section_has_commands_that_bash_parses(section):
    lines = documented(section)
    assert len(lines) >= 3, lines
    for line in lines:
        out = subprocess.run(["bash", "-n", "-c", line], capture_output=True, text=True)
        assert out.returncode == 0, f"{line}: {out.stderr}"


def test_the_robot_recipe_is_read_up_to_the_tests_section():
    robot, tests = documented("robot"), documented("tests")
    assert robot[0].startswith(". /opt/ros/") and any(c.startswith("ros2 launch") for c in robot)
    assert not set(robot) & set(tests)
    assert any("scripts/ros_overlay.sh" in c for c in tests)


def test_repository_files_named_by_the_commands_exist():
    named = set()
    for section in ("robot", "tests"):
        for line in documented(section):
            named |= set(re.findall(r"(?:\./|\.\./)?((?:scripts|ros2_ws|tests)/[\w./-]+)", line))
    assert {"scripts/ros_overlay.sh", "scripts/ros_wheels.cmake"} <= named
    for path in named:
        assert (ROOT / path.rstrip("/").split("[")[0]).exists(), path


def test_launch_commands_use_declared_arguments_and_allowed_values():
    declared = launch_arguments()
    launches = [c for c in documented("robot") if c.startswith("ros2 launch")]
    assert len(launches) >= 2
    for line in launches:
        words = shlex.split(line, comments=True)
        assert words[:4] == ["ros2", "launch", "emotion_perception", "head.launch.py"], line
        for word in words[4:]:
            if word.startswith("--"):
                continue
            name, _, value = word.partition(":=")
            assert name in declared, f"{line}: undeclared argument {name}"
            assert declared[name] is None or value in declared[name], f"{line}: {name}:={value}"


def test_sourced_workspace_setup_is_the_one_every_colcon_writes():
    """colcon-core writes install/setup.sh; setup.bash needs colcon-bash, which the PyPI venv's colcon
    lacks (the README's `. install/setup.bash` failed there)."""
    sourced = [m for section in ("robot", "tests") for c in documented(section)
               for m in re.findall(r"\. (install/setup\.\w+)", c)]
    assert sourced and set(sourced) == {"install/setup.sh"}


def test_launch_lines_get_a_ctrl_c_and_others_do_not():
    assert readme_ros.is_launch("ros2 launch emotion_perception head.launch.py camera_topic:=/c")
    assert not readme_ros.is_launch("ros2 launch emotion_perception head.launch.py --show-args")
    assert not readme_ros.is_launch("python -m pytest tests/ros")
