#!/usr/bin/env bash
# launch, launch_ros and the ros2 CLI for the PyPI ROS 2 Jazzy venv that scripts/test.sh makes
# (they are not on PyPI), in a folder outside the repository. Then `. OVERLAY/env.sh` gives `ros2`
# and `launch` on that venv: `ros2 launch emotion_perception head.launch.py`, `ros2 lifecycle`,
# `ros2 param`, and tests/ros/test_head_launch.py runs instead of skipping.
#
#   bash scripts/ros_overlay.sh ~/ros_overlay [.venv]      # then: . ~/ros_overlay/env.sh
#   bash scripts/ros_overlay.sh --with-hri ~/ros_overlay [.venv]   # + hri_msgs (ROS4HRI, REP-155)
#
# What it does: clones the `jazzy` branches (ROS_OVERLAY_GIT_BASE, default https://github.com/ros2;
# a local mirror works too) of launch, launch_ros, ros2cli, rosidl_runtime_py and rcl_interfaces;
# pip-installs the pure-Python ones with --no-deps into OVERLAY/site, with the two dependencies
# that the ros-jazzy-* wheels lack (osrf_pycommon for launch, psutil for ros2cli); colcon-builds
# rcl_interfaces' composition_interfaces (launch_ros imports it) against the venv's ROS prefix
# with scripts/ros_wheels.cmake into OVERLAY/install; writes OVERLAY/env.sh. The venv is not changed.
#
# --with-hri also clones ros4hri/hri_msgs (HRI_MSGS_GIT, default https://github.com/ros4hri/hri_msgs;
# a local mirror works too) at HRI_MSGS_REF (default 2.0.0, the ROS 2 release: Expression and IdsList
# with a std_msgs/Header) and colcon-builds it into the same OVERLAY/install. hri_msgs is on neither
# PyPI nor Debian; with it importable the perception node publishes the /humans/... topics (REP-155)
# and tests/ros/test_perception_hri.py runs instead of skipping.
set -euo pipefail
WITH_HRI=0
ARGS=()
for arg in "$@"; do
  if [ "$arg" = --with-hri ]; then WITH_HRI=1; else ARGS+=("$arg"); fi
done
set -- "${ARGS[@]+"${ARGS[@]}"}"
OVERLAY=$(mkdir -p "${1:?usage: scripts/ros_overlay.sh [--with-hri] OVERLAY_DIR [VENV]}" && cd "$1" && pwd)
REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=$(cd "${2:-$REPO/.venv}" && pwd)
PY=$VENV/bin/python
GIT_BASE=${ROS_OVERLAY_GIT_BASE:-https://github.com/ros2}
HRI_MSGS_GIT=${HRI_MSGS_GIT:-https://github.com/ros4hri/hri_msgs}
HRI_MSGS_REF=${HRI_MSGS_REF:-2.0.0}

mkdir -p "$OVERLAY/src"
for repo in launch launch_ros ros2cli rosidl_runtime_py rcl_interfaces; do
  [ -d "$OVERLAY/src/$repo" ] || git clone -q --depth 1 -b jazzy "$GIT_BASE/$repo" "$OVERLAY/src/$repo"
done
PACKAGES=(src/rcl_interfaces/composition_interfaces)
if [ "$WITH_HRI" = 1 ]; then
  # --no-local: a mirror given as a local path is then cloned like a remote one (no warning about --depth)
  [ -d "$OVERLAY/src/hri_msgs" ] || git -c advice.detachedHead=false clone -q --no-local --depth 1 -b "$HRI_MSGS_REF" "$HRI_MSGS_GIT" \
    "$OVERLAY/src/hri_msgs"
  PACKAGES+=(src/hri_msgs)
fi

S=$OVERLAY/src
echo "== pip install launch, launch_ros, ros2cli, rosidl_runtime_py (+ osrf_pycommon, psutil) into $OVERLAY/site"
"$PY" -m pip install -q --no-deps --upgrade --target "$OVERLAY/site" osrf_pycommon psutil \
  "$S/launch/launch" "$S/launch/launch_xml" "$S/launch/launch_yaml" \
  "$S/launch_ros/launch_ros" "$S/launch_ros/ros2launch" "$S/rosidl_runtime_py" \
  "$S/ros2cli/ros2cli" "$S/ros2cli/ros2lifecycle" "$S/ros2cli/ros2param" "$S/ros2cli/ros2node" \
  "$S/ros2cli/ros2topic" "$S/ros2cli/ros2service" "$S/ros2cli/ros2pkg" "$S/ros2cli/ros2run" \
  "$S/ros2cli/ros2interface"

echo "== colcon build ${PACKAGES[*]##*/} into $OVERLAY/install"
(cd "$OVERLAY" && AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" "$PY" -m colcon --log-base log build \
  --base-paths "${PACKAGES[@]}" --build-base build --install-base install --merge-install \
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
CHECK="import launch, launch_ros, composition_interfaces.srv"
[ "$WITH_HRI" = 1 ] && CHECK="$CHECK; from hri_msgs.msg import Expression, IdsList"
ros2 pkg prefix rclpy >/dev/null && python -c "$CHECK" && echo "== ready: . $OVERLAY/env.sh"
