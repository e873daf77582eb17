"""Six LLM faults in a row against a real llama.cpp server started by the test (tests/llm_fault_proxy.py):
every request gets exactly one reply, in order, with the expected outcome."""
from __future__ import annotations

from llm_fault_proxy import EXPECTED, run_faults
from llm_servers import tiny_gguf_or_skip


def test_six_faults_in_a_row_lose_no_request(shared_data):
    out = run_faults(tiny_gguf_or_skip(shared_data), rounds=1, timeout_s=6.0)
    assert out["proxy_errors"] == []
    got = [(r["fault"], r["got"]) for r in out["per_request"]]
    assert got == [(fault, EXPECTED[fault]) for fault in ["ok", "kill", "restart", "ok", "slow", "ok", "404", "ok",
                                                          "malformed", "ok", "empty", "ok"]], out["per_request"]
    assert out["passed"] and out["in_order"] and out["replies"] == out["requests"] == 12
    assert (out["lost"], out["duplicated"], out["server_starts"]) == (0, 0, 2)
