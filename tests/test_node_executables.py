"""The node executables end at once on a Ctrl-C while their node module is still loading (issue 11,
defect 7). ROS-free: the node module's import is replaced by a real SIGINT, so no rclpy is needed.

Python turns a Ctrl-C into a KeyboardInterrupt raised in the next Python code, and an extension
module that runs Python code while it initialises can discard it (cv2's native init did: the node
then spun on after a Ctrl-C); tests/ros/test_node_processes.py shows that case on the real node.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

import pytest

from conftest import PACKAGE_DIR

NODE_SCRIPTS = {"perception_node": "perception_node", "llm_bridge": "llm_bridge_node", "eval_node": "eval_node"}


def declared_node_scripts() -> dict[str, str]:
    """setup.py's console_scripts for the nodes: {script name: 'module:function'}."""
    tree = ast.parse((PACKAGE_DIR / "setup.py").read_text())
    specs = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    declared = dict(spec.split(" = ") for spec in specs if spec.split(" = ")[0] in NODE_SCRIPTS and " = " in spec)
    assert set(declared) == set(NODE_SCRIPTS), declared
    return declared


def test_every_node_script_starts_through_the_executables_module():
    for script, target in declared_node_scripts().items():
        assert target == f"emotion_perception.ros.executables:{script}", f"{script} = {target}"


@pytest.mark.parametrize("script", sorted(NODE_SCRIPTS))
def test_ctrl_c_while_the_node_module_loads_ends_the_process_at_once(script):
    """The import of the node module is where the seconds of a cold start go; a SIGINT sent there
    must end the process at once and quietly (exit status 0, as later in spin.run): no
    KeyboardInterrupt for any code to swallow, no traceback."""
    module = f"emotion_perception.ros.{NODE_SCRIPTS[script]}"
    target, function = declared_node_scripts()[script].split(":")
    code = textwrap.dedent(f"""
        import importlib.abc, os, signal, sys
        sys.path.insert(0, {str(PACKAGE_DIR)!r})

        class CtrlCWhileLoading(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == {module!r}:
                    os.kill(os.getpid(), signal.SIGINT)
                    print("SIGINT did not end the process; start-up went on", flush=True)
                    raise SystemExit(3)
                return None

        sys.meta_path.insert(0, CtrlCWhileLoading())
        from {target} import {function}
        {function}()
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr
