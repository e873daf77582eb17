"""Both LLM backends against a local stand-in server: the real ``ollama`` client and httpx code,
chat and streaming, and every documented fault."""
from __future__ import annotations

import threading
import time

import pytest

from emotion_perception.llm import backends as B
from emotion_perception.llm.prompt import PromptBuilder
from llm_servers import StandInError, StandInServer, free_port

CONTEXT = "The person in front of you looks sad (confidence 0.71); the scene seems negative."
MESSAGES = PromptBuilder("Robot. Perception: {emotion_context}").messages(CONTEXT, [], "How are you?")


def make(kind: str, url: str, model: str = "qwen2.5", **kw) -> B.ChatBackend:
    kw.setdefault("timeout", 5.0)
    kw.setdefault("retries", 0)
    if kind == "ollama":
        return B.OllamaBackend(host=url, model=model, keep_alive="1m", options={"temperature": 0.2}, **kw)
    return B.OpenAICompatibleBackend(base_url=url + "/v1", model=model, api_key="secret", options={"max_tokens": 16}, **kw)


@pytest.fixture
def server():
    with StandInServer(reply="I am fine, thank you.") as s:
        yield s


KINDS = ["ollama", "openai"]


@pytest.mark.parametrize("kind", KINDS)
def test_chat_and_stream_reach_the_server_with_the_system_prompt(server, kind):
    backend = make(kind, server.url)
    result = backend.chat(MESSAGES)
    assert result.ok, result.error
    assert (result.text, result.attempts, result.prompt_tokens) == ("I am fine, thank you.", 1, 26)
    tokens: list[str] = []
    streamed = backend.chat(MESSAGES, on_token=tokens.append)
    assert streamed.ok and streamed.text == "I am fine, thank you."
    assert tokens == ["I", " am", " fine,", " thank", " you."]
    assert streamed.completion_tokens == 5
    plain, stream = server.requests
    assert plain["stream"] is False and stream["stream"] is True
    for body in (plain, stream):
        assert body["messages"][0] == {"role": "system", "content": f"Robot. Perception: {CONTEXT}"}
        assert body["messages"][-1] == {"role": "user", "content": "How are you?"}
    if kind == "ollama":
        assert plain["keep_alive"] == "1m" and plain["options"]["temperature"] == 0.2
    else:
        assert plain["max_tokens"] == 16
    backend.close()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_missing_model_is_reported_without_retry(server, kind, stream):
    backend = make(kind, server.url, model="no-such-model", retries=3, backoff_s=0.01)
    result = backend.chat(MESSAGES, on_token=(lambda t: None) if stream else None)
    assert not result.ok and result.error_kind == B.MODEL_MISSING and result.attempts == 1
    assert "no-such-model" in result.error


@pytest.mark.parametrize("kind", KINDS)
def test_server_down_is_retried_with_backoff_then_reported(kind):
    backend = make(kind, f"http://127.0.0.1:{free_port()}", retries=2, backoff_s=0.05)
    for on_token in (None, lambda t: None):
        t0 = time.monotonic()
        result = backend.chat(MESSAGES, on_token=on_token)
        assert not result.ok and result.error_kind == B.SERVER_DOWN and result.attempts == 3
        assert 0.05 + 0.1 <= time.monotonic() - t0 < 3.0  # both backoffs slept, nothing hung
        assert "cannot connect" in result.error


@pytest.mark.parametrize("kind", KINDS)
def test_a_server_that_comes_up_during_the_retries_is_used(kind):
    port = free_port()
    backend = make(kind, f"http://127.0.0.1:{port}", retries=4, backoff_s=0.2)
    late: list[StandInServer] = []  # the port is only bound when the timer fires
    starter = threading.Timer(0.1, lambda: late.append(StandInServer(port=port).__enter__()))
    starter.start()
    try:
        result = backend.chat(MESSAGES)
    finally:
        starter.join()
        for s in late:
            s.__exit__(None, None, None)
    assert result.ok and result.attempts >= 2


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_malformed_reply(server, kind, stream):
    server.mode = "malformed"
    result = make(kind, server.url).chat(MESSAGES, on_token=(lambda t: None) if stream else None)
    assert not result.ok and result.error_kind == B.MALFORMED, result


@pytest.mark.parametrize("kind", KINDS)
def test_connection_dropped_mid_stream_is_not_retried(server, kind):
    server.mode = "drop"
    tokens: list[str] = []
    result = make(kind, server.url, retries=2, backoff_s=0.01).chat(MESSAGES, on_token=tokens.append)
    assert not result.ok and result.error_kind == B.DROPPED and result.attempts == 1
    assert tokens == ["I", " am"] and "after part of the answer" in result.error


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_slow_server_times_out(server, kind, stream):
    server.mode, server.delay_s = "slow", 3.0
    t0 = time.monotonic()
    result = make(kind, server.url, timeout=0.3, retries=2).chat(MESSAGES, on_token=(lambda t: None) if stream else None)
    assert not result.ok and result.error_kind == B.TIMEOUT and result.attempts == 1
    assert time.monotonic() - t0 < 2.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("reply", ["", " \n "], ids=["nothing", "whitespace"])
def test_an_empty_completion_is_an_error_not_an_answer(kind, stream, reply):
    with StandInServer(reply=reply) as server:
        server.mode = "empty" if reply == "" else "ok"
        result = make(kind, server.url, retries=2).chat(MESSAGES, on_token=(lambda t: None) if stream else None)
    assert not result.ok and result.text == "" and result.error_kind == B.EMPTY and result.attempts == 1
    assert "empty answer" in result.error


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_reply_cut_short_before_its_final_message_is_dropped(server, kind, stream):
    """Ollama: no "done": true; OpenAI: data: [DONE] without any chunk carrying a finish_reason."""
    server.mode = "truncated"
    tokens: list[str] = []
    result = make(kind, server.url, retries=2, backoff_s=0.01).chat(MESSAGES, on_token=tokens.append if stream else None)
    if kind == "openai" and not stream:  # a plain JSON reply cannot be cut short and still parse
        assert result.ok
        return
    assert not result.ok and result.error_kind == B.DROPPED and result.attempts == 1, result
    assert tokens == (["I", " am"] if stream else [])


def test_an_openai_stream_that_closes_without_done_is_dropped():
    backend = make("openai", "http://127.0.0.1:1")
    lines = iter(['data: {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}', ""])
    with pytest.raises(B.BackendError, match=r"without data: \[DONE\]") as err:
        backend._read_events(lines, lambda t: None, time.monotonic() + 5)
    assert err.value.kind == B.DROPPED


def test_errors_in_the_stand_in_server_fail_the_test():
    with pytest.raises(StandInError, match="unknown stand-in mode 'bogus'"):
        with StandInServer() as server:
            server.mode = "bogus"
            assert not make("openai", server.url).chat(MESSAGES).ok


@pytest.mark.parametrize("kind", KINDS)
def test_server_error_status(server, kind):
    server.mode = "error"
    result = make(kind, server.url).chat(MESSAGES)
    assert not result.ok and result.error_kind == B.SERVER_ERROR and "HTTP 500" in result.error


def test_create_backend_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="unknown LLM backend"):
        B.create_backend("gemini")
