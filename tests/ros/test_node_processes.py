"""The nodes as processes, built and run the way the README tells venv users (issue 11, defects 6, 7).

colcon writes each node executable's shebang with the Python that runs colcon (a setup.cfg
setting does not reach --symlink-install's `setup.py develop`). So the workspace is built with the
colcon of the environment that has the packages (`pip install colcon-core colcon-ros`; colcon-core
also keeps setuptools below 80, which --symlink-install needs), and its setup.sh is sourced: the
executables must then start on this Python, and a Ctrl-C at any moment must end them.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy); source /opt/ros/<distro>/setup.bash")
pytest.importorskip("emotion_msgs.msg", reason="needs the built emotion_msgs package (source install/setup.bash)")
pytest.importorskip("colcon_core", reason="needs colcon in this Python (pip install colcon-core colcon-ros "
                                          "colcon-package-selection, in the test extras)")

from conftest import PACKAGE_DIR  # noqa: E402
from ros_graph import ros_context, wait_for  # noqa: E402

NODES = ("perception_node", "llm_bridge", "eval_node")


def build(root, *options) -> "os.PathLike":
    src = root / "src" / "emotion_perception"
    shutil.copytree(PACKAGE_DIR, src, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "colcon", "build", *options, "--packages-select",
                           "emotion_perception", "--base-paths", "src"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root / "install"


@pytest.fixture(scope="module")
def symlinked(tmp_path_factory):
    """The README's build: colcon build --symlink-install."""
    return build(tmp_path_factory.mktemp("ws_symlink"), "--symlink-install")


@pytest.mark.parametrize("mode", ["plain", "symlinked"])
def test_node_executables_start_on_the_python_that_has_the_packages(mode, symlinked, tmp_path):
    install = symlinked if mode == "symlinked" else build(tmp_path)
    for node in NODES:
        script = install / "emotion_perception" / "lib" / "emotion_perception" / node
        assert script.read_text().splitlines()[0] == f"#!{sys.executable}", f"{mode}: {node}"


def sourced_environment(install) -> dict[str, str]:
    """The environment after `. install/setup.sh` (sourced once, like a terminal, before any Ctrl-C)."""
    out = subprocess.run(["sh", "-c", f'. "{install}/setup.sh" && env -0'], capture_output=True, check=True,
                         timeout=120).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def start(install, node, *ros_args, env=None) -> subprocess.Popen:
    """The installed executable in the sourced environment (plus ``env``), started directly as
    `ros2 run` does (a Ctrl-C then reaches the node, not a shell still sourcing setup.sh)."""
    script = install / "emotion_perception" / "lib" / "emotion_perception" / node
    return subprocess.Popen([str(script), "--ros-args", *ros_args], env={**sourced_environment(install), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def stop(proc: subprocess.Popen, signals: int = 1, timeout: float = 20.0) -> tuple[int, str]:
    """SIGINT (``signals`` times, as the terminal and `ros2 launch` each send one); the exit code
    and output. A process still running after ``timeout`` is killed and fails the test."""
    for i in range(signals):
        if i:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
    return end_of(proc, timeout, "Ctrl-C")


def end_of(proc: subprocess.Popen, timeout: float, since: str) -> tuple[int, str]:
    """The exit code and output; a process still running ``timeout`` s after ``since`` is killed
    and fails the test."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"still running {timeout:g} s after {since}; its output:\n{out[-3000:]}")
    return proc.returncode, out


def unique_name(node: str) -> tuple[str, list[str]]:
    """A node name of this test's own and the ROS arguments that give it: the graph may still list
    the node of an earlier test (its participant not yet expired), which would read as this one
    having joined while it still imports (a Ctrl-C then ends it at once, before the test's point)."""
    name = f"{node}_{uuid.uuid4().hex[:8]}"
    return name, ["-r", f"__node:={name}"]


def visible(name: str):
    """A check that the node ``name`` has joined the ROS graph."""
    context_manager = ros_context()
    context = context_manager.__enter__()
    peer = rclpy.create_node("process_test_peer", context=context)

    def check():
        return name in peer.get_node_names()

    def close():
        peer.destroy_node()
        context_manager.__exit__(None, None, None)
    return check, close


@pytest.mark.parametrize("node", NODES)
def test_ctrl_c_while_running_ends_the_node_quietly(node, symlinked, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("0,10,happy\n")
    name, rename = unique_name(node)
    check, close = visible(name)
    proc = start(symlinked, node, *rename, "-p", f"labels_file:={labels}", "-p", f"output_dir:={tmp_path / 'report'}")
    try:
        wait_for(lambda: check() or proc.poll() is not None, 90, f"{node} to join the graph")
    finally:
        close()
    assert proc.poll() is None, f"{node} exited by itself: {proc.communicate()[0][-3000:]}"
    code, out = stop(proc)
    assert code == 0 and "Traceback" not in out, out[-3000:]


@pytest.mark.parametrize("delay_s", [0.5, 2.0])
def test_ctrl_c_during_start_up_ends_the_node(delay_s, symlinked):
    """Ctrl-C while Python imports (0.5 s) or while the node is being made (2 s): the process ends."""
    proc = start(symlinked, "perception_node")
    time.sleep(delay_s)
    code, out = stop(proc)
    assert code in (0, -signal.SIGINT, 128 + signal.SIGINT, 1), out[-3000:]


CTRL_C_AT_IMPORT = """
import os, signal, sys

def ctrl_c_at_import(event, args):
    if event == "import" and args[0] == os.environ["CTRL_C_AT_IMPORT"]:
        open(os.environ["CTRL_C_SENT"], "w").close()
        os.kill(os.getpid(), signal.SIGINT)

sys.addaudithook(ctrl_c_at_import)
"""


@pytest.mark.parametrize("module", ["cv2.version", "rclpy"])
def test_ctrl_c_while_a_module_loads_ends_the_node_at_once(module, symlinked, tmp_path):
    """A real SIGINT at the moment ``module`` starts to load. cv2's native init imports cv2.version
    and discards any error raised there, the KeyboardInterrupt included: on a cold fresh clone
    (cv2's 150 MB of libraries read from disk) a Ctrl-C 0.5-2 s after start landed there and the
    node spun on. The executables now exit at once on a SIGINT until spin.run takes over."""
    (tmp_path / "sitecustomize.py").write_text(CTRL_C_AT_IMPORT)
    sent = tmp_path / "ctrl_c_sent"
    python_path = sourced_environment(symlinked).get("PYTHONPATH", "")
    proc = start(symlinked, "perception_node", env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{python_path}",
                                                   "CTRL_C_AT_IMPORT": module, "CTRL_C_SENT": str(sent)})
    code, out = end_of(proc, 60, f"start (a SIGINT as {module} loads)")
    assert sent.exists(), f"{module} was never imported; output:\n{out[-3000:]}"
    assert code == 0 and out == "", out[-3000:]


SLOW_TO_FINALIZE = """
import os, time

class SlowToFinalize:
    def __del__(self, sleep=time.sleep, touch=open, marker=os.environ["FINALIZING"]):  # builtins go first
        touch(marker, "w").close()
        sleep(3)

kept_until_the_modules_go = SlowToFinalize()
"""


def test_a_second_ctrl_c_while_the_process_exits_changes_nothing(symlinked, tmp_path):
    """The terminal's Ctrl-C and the SIGINT that `ros2 launch` forwards arrive apart. Python resets
    the signal handlers it set to the default early in its own shutdown, and tearing down torch and
    the ROS libraries takes a while after that (here stretched by an object whose finaliser sleeps):
    a SIGINT then killed the node (exit code -2; launch: "process has died")."""
    (tmp_path / "sitecustomize.py").write_text(SLOW_TO_FINALIZE)
    finalizing = tmp_path / "finalizing"
    python_path = sourced_environment(symlinked).get("PYTHONPATH", "")
    name, rename = unique_name("perception_node")
    check, close = visible(name)
    proc = start(symlinked, "perception_node", *rename, env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{python_path}",
                                                              "FINALIZING": str(finalizing)})
    try:
        wait_for(lambda: check() or proc.poll() is not None, 90, "perception_node to join the graph")
    finally:
        close()
    os.killpg(proc.pid, signal.SIGINT)
    wait_for(lambda: finalizing.exists() or proc.poll() is not None, 30, "the process to tear its modules down")
    code, out = stop(proc)
    assert code == 0 and "Traceback" not in out, out[-3000:]


def test_two_ctrl_c_in_a_row_still_clean_up(symlinked):
    name, rename = unique_name("perception_node")
    check, close = visible(name)
    proc = start(symlinked, "perception_node", *rename)
    try:
        wait_for(lambda: check() or proc.poll() is not None, 90, "perception_node to join the graph")
    finally:
        close()
    code, out = stop(proc, signals=2)
    assert code == 0 and "Traceback" not in out, out[-3000:]


def test_eval_node_without_labels_says_so_in_one_line(symlinked):
    proc = start(symlinked, "eval_node")
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 2 and "Traceback" not in out, out[-3000:]
    assert "[FATAL]" in out and "set labels_file or label_topic" in out
