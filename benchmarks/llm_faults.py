"""LLM faults in a row: the bridge against a real llama.cpp server that fails in six ways.

The server, the fault proxy and the checks are in tests/llm_fault_proxy.py (tests/test_llm_faults.py
runs one round in CI): server killed mid-stream, restarted, frozen past the timeout, a real 404,
malformed JSON and an empty completion, with an ok request after each. Prints one JSON object;
exit code 1 if a reply was lost, duplicated, out of order or of the wrong kind.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/llm_faults.py \\
        --gguf ../shared/data/llm/tiny-random-qwen2.gguf [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine_common import REPO, SHARED_DATA

sys.path.insert(0, str(REPO / "tests"))
from llm_fault_proxy import run_faults  # noqa: E402
from llm_servers import llama_cpp_available  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, default=SHARED_DATA / "llm" / "tiny-random-qwen2.gguf")
    parser.add_argument("--rounds", type=int, default=2, help="times the sequence of 6 faults (and 6 ok requests) runs")
    parser.add_argument("--timeout", type=float, default=8.0, help="the backend's per-attempt timeout, s")
    args = parser.parse_args()
    if not llama_cpp_available():
        print(json.dumps({"benchmark": "llm_faults", "error": "llama-cpp-python[server] is not installed"}))
        return 2
    out = {"benchmark": "llm_faults", "gguf": args.gguf.name, "timeout_s": args.timeout,
           **run_faults(args.gguf, args.rounds, args.timeout)}
    print(json.dumps(out, indent=2))
    return 0 if out["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
