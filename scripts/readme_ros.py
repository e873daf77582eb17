"""Run the README's ROS 2 commands verbatim, in a fresh clone, as a user would (issue 24).

The commands are read from the documentation itself: the ```bash blocks of "With ROS 2" or "ROS 2
quick start" (the robot recipe) and of "How the ROS tests run" (the PyPI Jazzy venv with launch
and the ros2 CLI from source), wherever they are in README.md and docs/ros.md, so the
documentation cannot drift from what runs. Each block runs line by line in one bash
(``cd`` and sourced files carry on), in a fresh ``git clone`` of this repository, HOME pointing to
a scratch folder. A `ros2 launch` that does not end by itself gets a Ctrl-C after
``--launch-seconds``, as a user stops it; every line must end with exit status 0.

    python scripts/readme_ros.py --venv .venv --section tests --section launch

``--venv`` is the venv scripts/test.sh made (linked as the clone's .venv). The robot recipe's first
lines need a distro install (/opt/ros/$ROS_DISTRO) and a fresh venv with torch: ``--section robot``
runs the whole block there; ``--section launch`` runs only its `ros2 launch` lines (after the tests
block, on the PyPI venv). Prints one JSON line per command and a summary; exit status 1 if any failed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = {"robot": ("## With ROS 2", "## ROS 2 quick start"), "tests": ("### How the ROS tests run",)}
DOCUMENTS = ("README.md", "docs/ros.md")
MARK = "__README_ROS_RC__"


def section_text(readme: str, heading: str) -> str:
    """From ``heading`` to the next heading of its level or above, outside code blocks."""
    start = readme.index("\n" + heading) + 1
    body = readme.index("\n", start)
    level = len(heading.split()[0])
    fenced = False
    offset = body + 1
    for line in readme[body + 1:].splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,%d} " % level, line):
            return readme[start:offset]
        offset += len(line)
    return readme[start:]


def commands(readme: str, section: str) -> list[str]:
    """The lines of the ```bash blocks under ``section``'s headings in ``readme`` (one document's
    text; robot: up to its "How the ROS tests run"), each line once, in order."""
    lines: list[str] = []
    for heading in SECTIONS[section]:
        if "\n" + heading not in "\n" + readme:
            continue
        text = section_text("\n" + readme, heading)
        if section == "robot":
            text = text.split("\n" + SECTIONS["tests"][0])[0]
        for block in re.findall(r"^ *```bash\n(.*?)^ *```", text, re.M | re.S):
            for line in block.splitlines():
                line = line.strip()
                if line and not line.startswith("#") and line not in lines:
                    lines.append(line)
    return lines


def documented(root: Path, section: str) -> list[str]:
    """``commands`` of every document in DOCUMENTS that exists under ``root``, each line once."""
    lines: list[str] = []
    for name in DOCUMENTS:
        if (root / name).is_file():
            lines += [c for c in commands((root / name).read_text(), section) if c not in lines]
    return lines


def is_launch(line: str) -> bool:
    return line.startswith("ros2 launch ") and "--show-args" not in line


class Shell:
    """One bash process fed line by line; each line's exit status is read back from its output."""

    def __init__(self, cwd: Path, env: dict, log: Path):
        self.log = log.open("w")
        self.proc = subprocess.Popen(["bash", "--norc", "--noprofile"], cwd=cwd, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def run(self, line: str, launch_seconds: float, timeout: float) -> dict:
        started = time.monotonic()
        if is_launch(line):
            # as a user: the launch in the foreground of a terminal, Ctrl-C after a while
            script = (f"( {line} ) & pid=$!; for i in $(seq {int(launch_seconds * 10)}); do "
                      "kill -0 $pid 2>/dev/null || break; sleep 0.1; done; "
                      "kill -INT -- -$pid 2>/dev/null || kill -INT $pid 2>/dev/null; wait $pid")
            script = "set -m; " + script + "; rc=$?; set +m; (exit $rc)"
        else:
            script = line
        self.proc.stdin.write(f"{script}\necho {MARK}$?\n")
        self.proc.stdin.flush()
        out = []
        while True:
            text = self.proc.stdout.readline()
            if not text:
                return {"command": line, "rc": None, "error": "the shell ended", "tail": "".join(out[-30:])}
            self.log.write(text)
            if text.startswith(MARK):
                rc = int(text[len(MARK):])
                break
            out.append(text)
            if time.monotonic() - started > timeout:
                return {"command": line, "rc": None, "error": f"over {timeout} s", "tail": "".join(out[-30:])}
        output = "".join(out)
        result = {"command": line, "rc": rc, "seconds": round(time.monotonic() - started, 1)}
        if is_launch(line):
            result["launch_ok"] = rc == 0 and "Caught exception" not in output and "Traceback" not in output
        if rc != 0 or not result.get("launch_ok", True):
            result["tail"] = "".join(out[-30:])
        return result

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)
        self.log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", required=True, help="the venv scripts/test.sh made (becomes the clone's .venv)")
    parser.add_argument("--section", action="append", choices=("robot", "tests", "launch"), required=True)
    parser.add_argument("--launch-seconds", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="per command")
    parser.add_argument("--workdir", help="default: a new temporary folder")
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="readme_ros_"))
    clone, home = work / "clone", work / "home"
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(Path(args.venv).resolve())
    # a fresh shell's environment: nothing sourced; kept: a mirror for ros_overlay.sh, the DDS domain
    keep = ("ROS_OVERLAY_GIT_BASE", "ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")
    env = {k: v for k, v in os.environ.items()
           if k in keep or not k.startswith(("AMENT_", "COLCON_", "ROS_", "PYTHON", "FASTRTPS_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), PATH=f"{Path(args.venv).resolve()}/bin:{env['PATH']}",
               VIRTUAL_ENV=str(Path(args.venv).resolve()))
    lines = []
    for section in args.section:
        if section == "launch":
            lines += [("launch", c) for c in documented(clone, "robot") if c.startswith("ros2 launch")]
        else:
            lines += [(section, c) for c in documented(clone, section)]
    shell = Shell(clone, env, work / "shell.log")
    results = []
    try:
        for section, line in lines:
            result = {"section": section, **shell.run(line, args.launch_seconds, args.timeout)}
            results.append(result)
            print(json.dumps(result), flush=True)
            if result["rc"] is None:
                break
    finally:
        shell.close()
    failed = [r for r in results if r["rc"] != 0 or not r.get("launch_ok", True)]
    print(json.dumps({"clone": str(clone), "log": str(work / "shell.log"), "commands": len(results),
                      "failed": [r["command"] for r in failed]}), flush=True)
    return 1 if failed or len(results) < len(lines) else 0


if __name__ == "__main__":
    sys.exit(main())
