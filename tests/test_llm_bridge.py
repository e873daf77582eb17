"""The bridge's queue: order, bounds, error replies, recovery after faults; the parameter table."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from emotion_perception.llm import backends as B
from emotion_perception.llm.bridge import BAD_REQUEST, QUEUE_FULL, SHUTDOWN, LLMBridge
from emotion_perception.llm.context import EmotionContextTracker
from emotion_perception.llm.params import DEFAULTS, PARAMETERS, build_bridge, remote_backend_warning
from emotion_perception.types import Box, EmotionEstimate
from llm_servers import StandInServer, free_port

CONFIG = Path(__file__).resolve().parents[1] / "ros2_ws/src/emotion_perception/config/llm_bridge.yaml"


@pytest.fixture
def server():
    with StandInServer(reply="Nice to see you.") as s:
        yield s


def ollama(url: str, **kw) -> B.OllamaBackend:
    return B.OllamaBackend(host=url, model="qwen2.5", **{"timeout": 5.0, "retries": 0, **kw})


def happy(face: str, t_ns: int) -> EmotionEstimate:
    p = np.array([0.9, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01], np.float32)
    return EmotionEstimate(face, Box(0, 0, 50, 50), p, 8, "test", stamp_ns=t_ns)


def test_answers_in_order_with_streamed_tokens_and_fresh_context(server):
    tracker = EmotionContextTracker()
    now = [0]
    bridge = LLMBridge(ollama(server.url), lambda: tracker.context(now[0]).sentence, max_queue=4)
    tokens: list[tuple[int, str]] = []
    done: list[int] = []
    futures = [bridge.submit(f"question {i}", "ann", lambda rid, t: tokens.append((rid, t))) for i in range(3)]
    for f in futures:
        f.add_done_callback(lambda f: done.append(f.result().request_id))
    replies = [f.result(timeout=10) for f in futures]
    deadline = time.monotonic() + 5
    while len(done) < 3 and time.monotonic() < deadline:  # callbacks run just after result() wakes
        time.sleep(0.01)
    assert all(r.ok and r.result.text == "Nice to see you." for r in replies)
    assert done == [r.request_id for r in replies] == sorted(done)
    assert [t for _, t in tokens] == ["Nice", " to", " see", " you."] * 3
    assert replies[0].emotion_context == "No one is visible."
    # Turn 4: someone appears; the new context is in the system prompt, with the three earlier turns.
    tracker.update([happy("1", 10**9)])
    now[0] = 10**9
    reply = bridge.submit("and now?", "ann").result(timeout=10)
    assert reply.emotion_context.startswith("The person in front of you looks happy (confidence 0.90)")
    sent = server.requests[-1]["messages"]
    assert sent[0]["role"] == "system" and reply.emotion_context in sent[0]["content"]
    assert [m["content"] for m in sent[1::2]] == ["question 0", "question 1", "question 2", "and now?"]
    assert all("No one is visible." in r["messages"][0]["content"] for r in server.requests[:3])
    bridge.close()


def test_full_queue_gets_an_immediate_error_reply(server):
    server.mode, server.delay_s = "slow", 0.3
    bridge = LLMBridge(ollama(server.url, timeout=5.0), lambda: "ctx", max_queue=1)
    first = bridge.submit("one")
    deadline = time.monotonic() + 5
    while bridge.pending() and time.monotonic() < deadline:  # the worker took the first request
        time.sleep(0.01)
    second = bridge.submit("two")
    t0 = time.monotonic()
    third = bridge.submit("three")
    assert third.done() and time.monotonic() - t0 < 0.1  # never blocks the caller
    assert third.result().result.error_kind == QUEUE_FULL
    assert first.result(timeout=10).ok and second.result(timeout=10).ok
    bridge.close()


@pytest.mark.parametrize("fault", ["missing", "malformed", "drop", "slow", "error", "down", "empty", "truncated"])
def test_each_fault_gives_an_error_reply_and_the_next_request_is_served(server, fault):
    url = server.url
    if fault == "down":
        url = f"http://127.0.0.1:{free_port()}"
    else:
        server.mode, server.delay_s = fault, 2.0
    bridge = LLMBridge(ollama(url, timeout=0.5, retries=1, backoff_s=0.01), lambda: "ctx")
    bad = bridge.submit("hello", on_token=lambda rid, t: None).result(timeout=10)
    expected = {"missing": B.MODEL_MISSING, "malformed": B.MALFORMED, "drop": B.DROPPED, "slow": B.TIMEOUT,
                "error": B.SERVER_ERROR, "down": B.SERVER_DOWN, "empty": B.EMPTY, "truncated": B.DROPPED}[fault]
    assert not bad.ok and bad.result.error_kind == expected and bad.result.error
    server.mode = "ok"
    if fault == "down":
        bridge.backend = ollama(server.url)
    good = bridge.submit("hello again").result(timeout=10)
    assert good.ok and good.result.text == "Nice to see you."
    # The failed turn is not remembered: the second request carries only its own user message.
    assert [m["role"] for m in server.requests[-1]["messages"]] == ["system", "user"]
    bridge.close()


def test_bad_requests_shutdown_and_broken_token_consumers(server):
    bridge = LLMBridge(ollama(server.url), lambda: "ctx")
    empty = bridge.submit("   ").result(timeout=1)
    assert empty.result.error_kind == BAD_REQUEST

    def broken(rid, token):
        raise RuntimeError("publisher gone")

    assert bridge.submit("hi", on_token=broken).result(timeout=10).ok  # the answer survives
    server.mode, server.delay_s = "slow", 0.3
    running = bridge.submit("slow one")
    queued = bridge.submit("waiting")
    bridge.close(timeout=5)
    assert queued.result(timeout=1).result.error_kind == SHUTDOWN
    assert running.done()
    assert bridge.submit("late").result(timeout=1).result.error_kind == SHUTDOWN


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_config_file_matches_the_declared_parameters():
    data = yaml.safe_load(CONFIG.read_text())
    assert list(data) == ["/**/llm_bridge"], "one node section, namespace-agnostic"
    values = _flatten(data["/**/llm_bridge"]["ros__parameters"])
    assert values == DEFAULTS
    for p in PARAMETERS:
        assert type(values[p.name]) is type(p.default), p.name  # ROS parameter types are strict
        assert len(p.description) > 10, p.name


def test_build_bridge_wires_parameters(server):
    tracker, bridge = build_bridge(
        {"ollama_host": server.url, "max_queue": 3, "max_turns": 1, "context.min_confidence": 0.95,
         "system_prompt": "SYS {emotion_context}", "max_tokens": 7}, clock_ns=lambda: 10**9)
    tracker.update([happy("1", 10**9)])
    reply = bridge.submit("hi").result(timeout=10)
    assert reply.ok and "uncertain" in reply.emotion_context  # 0.9 < 0.95
    body = server.requests[-1]
    assert body["messages"][0]["content"] == "SYS " + reply.emotion_context
    assert body["options"] == {"temperature": 0.7, "num_predict": 7} and body["keep_alive"] == "5m"
    bridge.close()
    with pytest.raises(ValueError, match="unknown LLM bridge parameters: nope"):
        build_bridge({"nope": 1}, clock_ns=lambda: 0)
    _, openai = build_bridge({"backend": "openai", "openai_base_url": server.url + "/v1"}, clock_ns=lambda: 0)
    assert isinstance(openai.backend, B.OpenAICompatibleBackend) and openai.submit("x").result(timeout=10).ok
    openai.close()


def test_a_request_without_user_id_belongs_to_the_addressed_person(server):
    tracker, bridge = build_bridge({"ollama_host": server.url}, clock_ns=lambda: 10**9)
    p = np.array([0.9, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01], np.float32)
    tracker.update([EmotionEstimate("face_4", Box(0, 0, 50, 50), p, 8, "test", stamp_ns=10**9, person_id="person_2")])
    reply = bridge.submit("hi").result(timeout=10)
    assert reply.ok and reply.user_id == "person_2"
    assert bridge.memory.history("person_2") == [("hi", "Nice to see you.")] and bridge.memory.history("") == []
    named = bridge.submit("hello", user_id="alice").result(timeout=10)  # the caller's id wins
    assert named.user_id == "alice" and bridge.memory.history("alice") == [("hello", "Nice to see you.")]
    tracker.update([happy("face_5", 10**9)])  # a face without a person id takes over (larger: 50x50 ties, id order)
    tracker.forget("person_2")
    anonymous = bridge.submit("who?").result(timeout=10)
    assert anonymous.user_id == "" and bridge.memory.history("") == [("who?", "Nice to see you.")]
    bridge.close()


@pytest.mark.parametrize("url, remote", [
    ("http://127.0.0.1:11434", False), ("http://localhost:11434", False), ("http://[::1]:8080/v1", False),
    ("127.0.0.2:11434", False), ("http://192.168.1.20:11434", True), ("https://api.example.com/v1", True),
    ("http://localhost.example.com:11434", True),
])
def test_a_backend_off_the_robot_gives_a_warning_that_emotion_data_leaves_it(url, remote):
    for values in ({"ollama_host": url}, {"backend": "openai", "openai_base_url": url}):
        warning = remote_backend_warning(values)
        assert (warning is not None) == remote, (values, warning)
        if remote:
            assert url in warning and "emotion" in warning and "not on this robot" in warning
    assert remote_backend_warning({"ollama_host": url, "backend": "openai"}) is None  # the openai URL is used
