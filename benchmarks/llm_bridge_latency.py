"""Latency of the LLM bridge against a real OpenAI-compatible server (llama.cpp by default).

Sends ``--requests`` chat requests through ``LLMBridge`` (streaming) and, for comparison, straight
through the backend; reports time to first token, total latency (p50/p95) and the bridge's own
overhead. With ``--gguf`` it starts llama-cpp-python's server on that file (127.0.0.1, free port);
with ``--base-url`` it uses a running server. Prints one JSON object.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/llm_bridge_latency.py \
        --gguf ../shared/data/llm/tiny-random-qwen2.gguf
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from emotion_perception.llm.backends import OpenAICompatibleBackend
from emotion_perception.llm.bridge import LLMBridge
from emotion_perception.llm.prompt import PromptBuilder

CONTEXT = "The person in front of you looks happy (confidence 0.82); the scene seems positive."


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def summary_ms(values: list[float]) -> dict:
    return {"p50_ms": 1000 * pct(values, 0.5), "p95_ms": 1000 * pct(values, 0.95), "mean_ms": 1000 * statistics.mean(values)}


def through_bridge(backend, n: int) -> dict:
    bridge = LLMBridge(backend, lambda: CONTEXT, max_queue=n + 1)
    first, total, chunks = [], [], 0
    for i in range(n):
        t0 = time.perf_counter()
        seen: list[float] = []
        reply = bridge.submit(f"Say something nice, number {i}.", user_id=f"u{i}",
                              on_token=lambda rid, tok: seen.append(time.perf_counter())).result(timeout=300)
        if not reply.ok:
            raise RuntimeError(reply.result.error)
        total.append(time.perf_counter() - t0)
        first.append((seen[0] if seen else time.perf_counter()) - t0)
        chunks += len(seen)
    bridge.close()
    return {"first_token": summary_ms(first), "total": summary_ms(total), "chunks_per_reply": chunks / n}


def direct(backend, n: int) -> dict:
    builder, total, prompt_tokens = PromptBuilder(), [], None
    for i in range(n):
        messages = builder.messages(CONTEXT, [], f"Say something nice, number {i}.")
        t0 = time.perf_counter()
        result = backend.chat(messages)
        total.append(time.perf_counter() - t0)
        if not result.ok:
            raise RuntimeError(result.error)
        prompt_tokens = result.prompt_tokens
    return {"total": summary_ms(total), "prompt_tokens": prompt_tokens}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", type=Path, help="start llama_cpp.server on this model")
    ap.add_argument("--base-url", help="use a running OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1")
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=16)
    args = ap.parse_args()
    if not (args.gguf or args.base_url):
        ap.error("give --gguf or --base-url")
    with contextlib.ExitStack() as stack:
        base_url = args.base_url
        if args.gguf:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from llm_servers import llama_server

            base_url = stack.enter_context(llama_server(args.gguf)) + "/v1"
        options = {"temperature": 0.0, "max_tokens": args.max_tokens, "seed": 1}
        backend = OpenAICompatibleBackend(base_url, args.model, options=options, timeout=120, retries=0)
        backend.chat([{"role": "user", "content": "warm-up"}])
        out = {
            "server": base_url, "model": str(args.gguf or args.model), "requests": args.requests,
            "max_tokens": args.max_tokens, "direct": direct(backend, args.requests),
            "bridge_streaming": through_bridge(backend, args.requests),
            "python": platform.python_version(), "machine": platform.machine(),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
