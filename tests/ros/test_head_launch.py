"""head.launch.py through the real `ros2 launch` (issue 11, defects 2, 3 and 7).

Needs the `ros2` CLI with launch, launch_ros and ros2lifecycle/ros2param (a full ROS 2 install,
not on PyPI) and the emotion_perception package built and sourced (colcon build; . install/setup.bash);
skips otherwise. Each test's nodes get their own namespace; ros_graph keeps the run on its own
domain, on the loopback interface.
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
import yaml

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy); source /opt/ros/<distro>/setup.bash")

from conftest import PACKAGE_DIR  # noqa: E402
from emotion_perception.ros.params import BY_NAME  # noqa: E402
from ros_graph import PROFILE, lite_profile, wait_for  # noqa: E402,F401


@pytest.fixture(autouse=True)
def launch_available():
    if shutil.which("ros2") is None:
        pytest.skip("needs the ros2 CLI and launch (a full ROS 2 install; not on PyPI, so not in the pip Jazzy stack)")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("emotion_perception")
    except PackageNotFoundError:
        pytest.skip("emotion_perception is not installed (colcon build; . install/setup.bash)")


def ros2(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ros2", *args], capture_output=True, text=True, timeout=60)


# Runs a command with SIGINT at its default action, as a terminal starts it. A test run started in
# the background of a non-interactive shell (`pytest ... &`, nohup, some CI runners) ignores SIGINT,
# its children inherit that, and Python then installs no SIGINT handler: launch would never see the
# Ctrl-C (found on Humble). An exec keeps SIG_DFL, where the shell's own `trap` cannot undo the ignore.
WITH_CTRL_C = [sys.executable, "-c",
               "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])"]


def processes_in_group(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # not a process, or gone meanwhile
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


class Launched:
    """`ros2 launch emotion_perception head.launch.py <arguments>` in its own process group, as in
    a terminal; its output goes to a file (a pipe nobody reads would fill and block)."""

    def __init__(self, tmp_path, *arguments: str):
        self.log_path = tmp_path / "launch.log"
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen([*WITH_CTRL_C, "ros2", "launch", "emotion_perception", "head.launch.py", *arguments],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text()

    def nodes_output(self) -> str:
        """What the nodes printed (launch prefixes their lines with their names); launch and
        launch_ros print their own tracebacks on some shutdowns, which are not the nodes'."""
        return "\n".join(line for line in self.output().splitlines()
                         if line.startswith(("[perception_node", "[llm_bridge")))

    def wait_for(self, condition, timeout: float, what: str):
        """wait_for, with launch's output (a traceback, a missing module) in the failure."""
        try:
            return wait_for(condition, timeout, what)
        except AssertionError as err:
            raise AssertionError(f"{err}; ros2 launch output:\n{self.output()[-4000:]}") from None

    def ctrl_c(self, timeout: float = 30.0) -> None:
        """Ctrl-C as a terminal sends it (SIGINT to launch and its nodes); all of them must be gone
        within ``timeout``, or they are killed and the test fails."""
        os.killpg(self.proc.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while (self.proc.poll() is None or processes_in_group(self.proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = processes_in_group(self.proc.pid)
        if left:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()
        assert not left, f"still running {timeout:g} s after Ctrl-C: {left}; ros2 launch output:\n{self.output()[-4000:]}"

    def close(self) -> None:
        if self.proc.poll() is None or processes_in_group(self.proc.pid):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def lifecycle_state(node: str) -> str:
    out = ros2("lifecycle", "get", node)
    return out.stdout.split()[0] if out.returncode == 0 and out.stdout else ""


def test_show_args_lists_the_arguments():
    out = subprocess.run(["ros2", "launch", "emotion_perception", "head.launch.py", "--show-args"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("namespace", "camera_topic", "llm", "autostart", "emotions_topic", "params_file",
                 "llm_params_file", "log_level", *BY_NAME):  # the launch's own, then every node parameter
        assert f"'{name}':" in out.stdout, name
    assert "Camera image topic" in out.stdout and "Also start the LLM bridge" in out.stdout


@pytest.mark.slow
def test_launch_activates_once_and_leaves_a_reconfigure_to_the_caller(lite_profile, tmp_path):
    """autostart configures and activates the node; the documented reconfigure (deactivate,
    cleanup, configure, activate) then works step by step: the launch file activates nothing after
    the second configure (defect 3: its activate made the last step fail)."""
    node = f"/ep_launch_{uuid.uuid4().hex[:8]}/perception_node"
    launched = Launched(tmp_path, f"namespace:={node.split('/')[1]}", f"profile:={PROFILE}", "device:=cpu")
    try:
        launched.wait_for(lambda: lifecycle_state(node) == "active", 120, "the launched node to become active")
        for step, state in [("deactivate", "inactive"), ("cleanup", "unconfigured"), ("configure", "inactive")]:
            out = ros2("lifecycle", "set", node, step)
            assert "successful" in out.stdout, f"{step}: {out.stdout}{out.stderr}"
            assert lifecycle_state(node) == state, step
        time.sleep(3)  # what an autostart activate would need to arrive
        assert lifecycle_state(node) == "inactive", "the launch file activated the node after a later configure"
        out = ros2("lifecycle", "set", node, "activate")
        assert "successful" in out.stdout and lifecycle_state(node) == "active", out.stdout + out.stderr
        launched.ctrl_c()
    finally:
        launched.close()
    assert "Traceback" not in launched.nodes_output(), launched.output()[-4000:]


def test_llm_bridge_reads_its_params_file_in_a_namespace(tmp_path):
    """Defect 2: `llm_params_file:=<backend: openai>` with `namespace:=...` ran the ollama backend,
    the file's key did not match the namespaced node."""
    params = yaml.safe_load((PACKAGE_DIR / "config" / "llm_bridge.yaml").read_text())
    (section,) = params.values()
    assert section["ros__parameters"]["backend"] != "openai"
    section["ros__parameters"]["backend"] = "openai"
    changed = tmp_path / "llm_bridge.yaml"
    changed.write_text(yaml.safe_dump(params))
    namespace = f"head_{uuid.uuid4().hex[:8]}"
    launched = Launched(tmp_path, f"namespace:={namespace}", "autostart:=false", "llm:=true",
                        f"llm_params_file:={changed}")
    try:
        def backend():
            out = ros2("param", "get", f"/{namespace}/llm_bridge", "backend")
            return out.stdout.strip() if out.returncode == 0 else ""
        assert launched.wait_for(backend, 90, "the bridge's backend parameter") == "String value is: openai"
        launched.ctrl_c()
    finally:
        launched.close()


@pytest.mark.parametrize("delay_s", [0.5, 1.0, 2.0, 4.0])
def test_ctrl_c_soon_after_launch_ends_launch_and_its_nodes(delay_s, tmp_path):
    """Defect 7: a Ctrl-C about 1 s after `ros2 launch` left launch and the node running (1 in 4).
    Every process must end on the SIGINT itself (launch escalating to SIGTERM means a node ignored
    it), the nodes quietly. The clock starts once launch has started both nodes: a Ctrl-C while
    launch itself still spawns them can hang launch (seen with launch 3.4.3: the KeyboardInterrupt
    lands in asyncio's child watcher and the process is never tracked), which no node can help."""
    launched = Launched(tmp_path, f"namespace:=ep_ctrl_c_{uuid.uuid4().hex[:8]}", "llm:=true", "device:=cpu")
    try:
        launched.wait_for(lambda: launched.output().count("process started with pid") == 2, 60,
                          "launch to start both nodes")
        time.sleep(delay_s)
        launched.ctrl_c()
    finally:
        launched.close()
    out = launched.output()
    assert "escalating to 'SIGTERM'" not in out and "Traceback" not in launched.nodes_output(), out[-4000:]
