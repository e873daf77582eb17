#!/usr/bin/env bash
# Mutation testing of the ROS-free core with mutmut 3: how many deliberate one-line bugs the suite
# catches. Usage: bash scripts/mutation.sh [MODULE ...]   (default: every module in MODULES below)
#
# mutmut imports the code it mutates from ./, src/ or source/ only, so the run happens in a staged
# copy of the working tree (build/mutation, ignored by git) with the package copied to its top
# level; tests/conftest.py finds the repository files relative to itself there. Needs the project's
# .venv (bash scripts/test.sh makes it; VENV=... names another). Prints the score as JSON (also build/mutation/score.json);
# mutants listed in tests/mutation_equivalent.txt, each with its reason, are left out of the score.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV=${VENV:-$REPO/.venv}
PY=$VENV/bin/python
MUTMUT_VERSION=3.8.1
"$PY" -c "import mutmut" 2>/dev/null || "$VENV/bin/pip" install -q "mutmut==$MUTMUT_VERSION"

# module (relative to the package) -> the test files that exercise it
declare -A MODULES=(
  [images.py]="tests/test_images.py tests/test_images_reference.py tests/test_messages.py"
  [evaluation/labels_file.py]="tests/test_labels_file.py tests/test_core_references.py"
  [evaluation/metrics.py]="tests/test_metrics.py"
  [evaluation/bags.py]="tests/test_bags.py"
  [evaluation/results.py]="tests/test_results.py tests/test_replay.py tests/test_report.py"
  [faces/tracker.py]="tests/test_faces_tracker.py"
  [engine/buffers.py]="tests/test_buffers.py tests/test_engine.py"
  [engine/core.py]="tests/test_engine.py tests/test_engine_reference.py tests/test_worker_cameras.py tests/test_core_references.py"
  [models/losses.py]="tests/test_ous.py tests/test_core_references.py"
  [llm/context.py]="tests/test_llm_context.py tests/test_core_references.py"
  [llm/prompt.py]="tests/test_llm_context.py tests/test_llm_bridge.py tests/test_llm_prompt_memory.py"
)
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${!MODULES[@]}")

STAGE=$REPO/build/mutation
rm -rf "$STAGE"
mkdir -p "$STAGE"
git ls-files -z --cached --others --exclude-standard | tar --null -cf - -T - | tar -xf - -C "$STAGE"
cp -rL ros2_ws/src/emotion_perception/emotion_perception "$STAGE/emotion_perception"

only=() tests=()
for module in "${selected[@]}"; do
  [ -n "${MODULES[$module]:-}" ] || { echo "unknown module $module (known: ${!MODULES[*]})" >&2; exit 2; }
  only+=("emotion_perception/$module")
  tests+=(${MODULES[$module]})
done
mapfile -t tests < <(printf '%s\n' "${tests[@]}" | sort -u)
{
  echo "[mutmut]"
  echo "source_paths=emotion_perception"
  # the tests run inside mutants/ and read launch files, configs and profiles next to themselves
  echo "also_copy="; printf '    %s\n' ros2_ws models benchmarks scripts pytest.ini
  echo "only_mutate="; printf '    %s\n' "${only[@]}"
  echo "pytest_add_cli_args_test_selection="; printf '    %s\n' "${tests[@]}"
  # one argument a line; a benchmark run as a subprocess imports the unmutated copy under ros2_ws/
  echo "pytest_add_cli_args="
  printf '    %s\n' -p no:cacheprovider --deselect tests/test_engine.py::test_gpu_benchmark_refuses_without_cuda
} >"$STAGE/setup.cfg"

cd "$STAGE"
jobs=${MUTATION_JOBS:-$(nproc)}  # before OMP_NUM_THREADS=1, which GNU nproc would report instead
export EMOTION_SHARED_DATA=${EMOTION_SHARED_DATA:-$REPO/../shared/data}
export OMP_NUM_THREADS=1
"$VENV/bin/mutmut" run --max-children "$jobs" >mutmut.log 2>&1 || { tail -20 mutmut.log; exit 1; }
"$VENV/bin/mutmut" results --all true >results.txt 2>&1
"$PY" "$REPO/scripts/mutation_score.py" results.txt "$REPO/tests/mutation_equivalent.txt" | tee score.json
