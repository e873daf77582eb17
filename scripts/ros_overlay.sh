#!/usr/bin/env bash
# launch, launch_ros and the ros2 CLI for the PyPI ROS 2 Jazzy venv that scripts/test.sh makes
# (they are not on PyPI), in a folder outside the repository. Then `. OVERLAY/env.sh` gives `ros2`
# and `launch` on that venv: `ros2 launch emotion_perception head.launch.py`, `ros2 lifecycle`,
# `ros2 param`, and tests/ros/test_head_launch.py runs instead of skipping.
#
#   bash scripts/ros_overlay.sh ~/ros_overlay [.venv]      # then: . ~/ros_overlay/env.sh
#
# What it does: clones the `jazzy` branches (ROS_OVERLAY_GIT_BASE, default https://github.com/ros2;
# a local mirror works too) of launch, launch_ros, ros2cli, rosidl_runtime_py and rcl_interfaces;
# pip-installs the pure-Python ones with --no-deps into OVERLAY/site, with the two dependencies
# that the ros-jazzy-* wheels lack (osrf_pycommon for launch, psutil for ros2cli); colcon-builds
# rcl_interfaces' composition_interfaces (launch_ros imports it) against the venv's ROS prefix
# with scripts/ros_wheels.cmake into OVERLAY/install; writes OVERLAY/env.sh. The venv is not changed.
set -euo pipefail
OVERLAY=$(mkdir -p "${1:?usage: scripts/ros_overlay.sh OVERLAY_DIR [VENV]}" && cd "$1" && pwd)
REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=$(cd "${2:-$REPO/.venv}" && pwd)
PY=$VENV/bin/python
GIT_BASE=${ROS_OVERLAY_GIT_BASE:-https://github.com/ros2}

mkdir -p "$OVERLAY/src"
for repo in launch launch_ros ros2cli rosidl_runtime_py rcl_interfaces; do
  [ -d "$OVERLAY/src/$repo" ] || git clone -q --depth 1 -b jazzy "$GIT_BASE/$repo" "$OVERLAY/src/$repo"
done

S=$OVERLAY/src
echo "== pip install launch, launch_ros, ros2cli, rosidl_runtime_py (+ osrf_pycommon, psutil) into $OVERLAY/site"
"$PY" -m pip install -q --no-deps --upgrade --target "$OVERLAY/site" osrf_pycommon psutil \
  "$S/launch/launch" "$S/launch/launch_xml" "$S/launch/launch_yaml" \
  "$S/launch_ros/launch_ros" "$S/launch_ros/ros2launch" "$S/rosidl_runtime_py" \
  "$S/ros2cli/ros2cli" "$S/ros2cli/ros2lifecycle" "$S/ros2cli/ros2param" "$S/ros2cli/ros2node" \
  "$S/ros2cli/ros2topic" "$S/ros2cli/ros2service" "$S/ros2cli/ros2pkg" "$S/ros2cli/ros2run" \
  "$S/ros2cli/ros2interface"

echo "== colcon build composition_interfaces into $OVERLAY/install"
(cd "$OVERLAY" && AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" "$PY" -m colcon --log-base log build \
  --base-paths src/rcl_interfaces/composition_interfaces --build-base build --install-base install --merge-install \
  --event-handlers console_direct- --cmake-args -DBUILD_TESTING=OFF -DCMAKE_PROJECT_INCLUDE="$REPO/scripts/ros_wheels.cmake" \
  >build.log 2>&1) || { tail -n 40 "$OVERLAY/build.log"; exit 1; }

cat >"$OVERLAY/env.sh" <<EOF
# Source me (any POSIX shell): ros2 and launch on $VENV. Made by scripts/ros_overlay.sh.
. "$OVERLAY/install/setup.sh"
export AMENT_PREFIX_PATH="$OVERLAY/install:$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
export PYTHONPATH="$OVERLAY/site\${PYTHONPATH:+:\$PYTHONPATH}"
export PATH="$OVERLAY/site/bin:$VENV/bin:\$PATH"
EOF
set +u  # colcon's setup.sh reads unset variables
. "$OVERLAY/env.sh"
ros2 pkg prefix rclpy >/dev/null && python -c "import launch, launch_ros, composition_interfaces.srv" \
  && echo "== ready: . $OVERLAY/env.sh"
