"""LLM backends behind one interface: ``chat(messages, on_token=None) -> ChatResult``.

- ``OllamaBackend``: Ollama's ``/api/chat`` through the official ``ollama`` client.
- ``OpenAICompatibleBackend``: ``POST {base_url}/chat/completions`` (llama.cpp server, vLLM,
  Ollama's own ``/v1``) with httpx, streaming by server-sent events.

A call never raises and never hangs: it returns a ``ChatResult`` that is either ``ok`` with the
text, or carries ``error_kind`` (one of ``ERROR_KINDS``) and a readable ``error``. Each attempt is
bounded by ``timeout`` seconds (the httpx timeouts, plus a wall-clock deadline checked between
streamed chunks). Connection failures (server down, connection dropped before any token was
delivered, 503 busy) are retried ``retries`` times with exponential backoff; a missing model,
a malformed reply, a timeout or a drop after tokens were delivered are not, because retrying would
not help or would repeat tokens the caller already has. An empty answer (no text, or only
whitespace) is an ``empty`` error, never a successful ``''``: a robot must not "say" nothing as if
it had answered. A stream that ends before its final message (Ollama ``"done": true``, OpenAI
``data: [DONE]`` after a chunk with a ``finish_reason``) is ``dropped``. Worst case per call:
``(retries + 1) * timeout + sum of backoffs``.
"""
from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import httpx

SERVER_DOWN = "server_down"  # connection refused / host unreachable
MODEL_MISSING = "model_missing"  # HTTP 404 for the model
TIMEOUT = "timeout"  # no complete answer within the timeout
MALFORMED = "malformed"  # the reply is not the documented JSON
DROPPED = "dropped"  # the connection closed before the answer was complete
SERVER_ERROR = "server_error"  # the server reported an error (HTTP 5xx or an error object)
HTTP_ERROR = "http_error"  # another HTTP status (401, 400, ...)
EMPTY = "empty"  # the server finished properly but the answer has no text
INTERNAL = "internal"  # a bug on our side (e.g. a token callback raised)
ERROR_KINDS = (SERVER_DOWN, MODEL_MISSING, TIMEOUT, MALFORMED, DROPPED, SERVER_ERROR, HTTP_ERROR, EMPTY, INTERNAL)

Messages = list[Mapping[str, str]]
TokenCallback = Callable[[str], None]


@dataclass(frozen=True)
class ChatResult:
    ok: bool
    text: str = ""
    error: str = ""
    error_kind: str = ""
    attempts: int = 0
    latency_s: float = 0.0
    prompt_tokens: int | None = None  # as counted by the server, when it says
    completion_tokens: int | None = None


class BackendError(Exception):
    """One failed attempt, classified. ``retryable`` only when nothing reached the caller yet."""

    def __init__(self, kind: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.kind, self.retryable = kind, retryable


@dataclass(frozen=True)
class _Answer:
    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class ChatBackend(ABC):
    """Retries, backoff, deadlines and error classification; subclasses speak one wire format."""

    def __init__(self, model: str, timeout: float = 60.0, retries: int = 2,
                 backoff_s: float = 0.5, max_backoff_s: float = 8.0) -> None:
        if timeout <= 0 or retries < 0 or backoff_s < 0:
            raise ValueError(f"need timeout > 0, retries >= 0, backoff_s >= 0 (got {timeout}, {retries}, {backoff_s})")
        self.model, self.timeout, self.retries = model, timeout, retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """Where requests go, for error messages."""

    @abstractmethod
    def _chat_once(self, messages: Messages, on_token: TokenCallback | None, deadline: float) -> _Answer:
        """One attempt; raises BackendError or an httpx / JSON error, which ``chat`` classifies."""

    def close(self) -> None:
        """Release connections."""

    def chat(self, messages: Messages, on_token: TokenCallback | None = None) -> ChatResult:
        start = time.monotonic()
        delivered = False

        def forward(chunk: str) -> None:
            nonlocal delivered
            delivered = True
            on_token(chunk)

        attempt = 0
        while True:
            attempt += 1
            try:
                answer = self._chat_once(messages, forward if on_token else None, time.monotonic() + self.timeout)
                if not answer.text.strip():
                    counted = "" if answer.completion_tokens is None else f" ({answer.completion_tokens} completion tokens)"
                    raise BackendError(EMPTY, "empty answer" + counted)
                return ChatResult(True, answer.text, attempts=attempt, latency_s=time.monotonic() - start,
                                  prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens)
            except Exception as e:  # noqa: BLE001 - every failure becomes a result, by contract
                err = self._classify(e)
            if err.retryable and not delivered and attempt <= self.retries:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
                continue
            if err.kind == DROPPED and delivered:
                err = BackendError(DROPPED, f"{err} (after part of the answer was streamed)")
            return ChatResult(False, error=f"{self.endpoint}: {err}", error_kind=err.kind,
                              attempts=attempt, latency_s=time.monotonic() - start)

    def _classify(self, e: Exception) -> BackendError:
        if isinstance(e, BackendError):
            return e
        if isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout, ConnectionError)):
            return BackendError(SERVER_DOWN, f"cannot connect ({e})", retryable=True)
        if isinstance(e, httpx.TimeoutException):
            return BackendError(TIMEOUT, f"no answer within {self.timeout:g} s ({type(e).__name__})")
        if isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError)):
            return BackendError(DROPPED, f"connection closed early ({e})", retryable=True)
        if isinstance(e, (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError, ValueError)):
            # pydantic's ValidationError (from the ollama client) is a ValueError.
            return BackendError(MALFORMED, f"malformed reply ({type(e).__name__}: {_short(e)})")
        return BackendError(INTERNAL, f"{type(e).__name__}: {_short(e)}")

    def _status_error(self, status: int, detail: str) -> BackendError:
        if status == 404:
            return BackendError(MODEL_MISSING, f"model {self.model!r} not found (HTTP 404: {detail})")
        if status >= 500:
            return BackendError(SERVER_ERROR, f"server error (HTTP {status}: {detail})", retryable=status == 503)
        return BackendError(HTTP_ERROR, f"HTTP {status}: {detail}")

    def _check_deadline(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise BackendError(TIMEOUT, f"answer not complete within {self.timeout:g} s")


def _short(e: object, limit: int = 300) -> str:
    text = str(e).strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


class OllamaBackend(ChatBackend):
    """Ollama through ``ollama.Client``; ``options`` are Ollama's model options (temperature, ...)."""

    def __init__(self, host: str = "http://127.0.0.1:11434", model: str = "qwen2.5",
                 keep_alive: str | float | None = "5m", options: Mapping[str, Any] | None = None,
                 timeout: float = 60.0, retries: int = 2, backoff_s: float = 0.5) -> None:
        import ollama  # the llm extra; imported here so the core loads without it

        super().__init__(model, timeout, retries, backoff_s)
        self.host, self.keep_alive, self.options = host, keep_alive, dict(options or {})
        self._response_error = ollama.ResponseError
        self._client = ollama.Client(host=host, timeout=httpx.Timeout(timeout))

    @property
    def endpoint(self) -> str:
        return f"Ollama at {self.host}"

    def close(self) -> None:
        self._client.close()

    def _chat_once(self, messages: Messages, on_token: TokenCallback | None, deadline: float) -> _Answer:
        kwargs = dict(model=self.model, messages=list(messages), options=self.options or None, keep_alive=self.keep_alive)
        try:
            if on_token is None:
                r = self._client.chat(stream=False, **kwargs)
                if not r.done:
                    raise BackendError(DROPPED, 'reply without "done": true')
                return _Answer(r.message.content or "", r.prompt_eval_count, r.eval_count)
            return self._stream(self._client.chat(stream=True, **kwargs), on_token, deadline)
        except self._response_error as e:
            if e.status_code == -1:  # an {"error": ...} object inside a 200 stream
                raise BackendError(SERVER_ERROR, f"server error: {e.error}") from None
            raise self._status_error(e.status_code, str(e.error)) from None

    def _stream(self, parts: Iterator[Any], on_token: TokenCallback, deadline: float) -> _Answer:
        text = []
        for part in parts:
            chunk = part.message.content or ""
            if chunk:
                text.append(chunk)
                on_token(chunk)
            if part.done:
                return _Answer("".join(text), part.prompt_eval_count, part.eval_count)
            self._check_deadline(deadline)
        raise BackendError(DROPPED, 'stream ended without a "done": true message')


class OpenAICompatibleBackend(ChatBackend):
    """OpenAI chat completions. ``base_url`` includes the version, e.g. ``http://127.0.0.1:8080/v1``.

    ``options`` are extra request fields (``temperature``, ``max_tokens``, ``seed``, ...).
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8080/v1", model: str = "qwen2.5",
                 api_key: str | None = None, options: Mapping[str, Any] | None = None,
                 timeout: float = 60.0, retries: int = 2, backoff_s: float = 0.5) -> None:
        super().__init__(model, timeout, retries, backoff_s)
        self.base_url = base_url.rstrip("/")
        self.options = dict(options or {})
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url + "/", timeout=httpx.Timeout(timeout), headers=headers)

    @property
    def endpoint(self) -> str:
        return f"OpenAI-compatible server at {self.base_url}"

    def close(self) -> None:
        self._client.close()

    def _chat_once(self, messages: Messages, on_token: TokenCallback | None, deadline: float) -> _Answer:
        body = {**self.options, "model": self.model, "messages": list(messages), "stream": on_token is not None}
        if on_token is None:
            r = self._client.post("chat/completions", json=body)
            if r.status_code != 200:
                raise self._status_error(r.status_code, _error_detail(r.text))
            data = r.json()
            usage = data.get("usage") or {}
            return _Answer(data["choices"][0]["message"]["content"] or "",
                           usage.get("prompt_tokens"), usage.get("completion_tokens"))
        with self._client.stream("POST", "chat/completions", json=body) as r:
            if r.status_code != 200:
                r.read()
                raise self._status_error(r.status_code, _error_detail(r.text))
            return self._read_events(r.iter_lines(), on_token, deadline)

    def _read_events(self, lines: Iterator[str], on_token: TokenCallback, deadline: float) -> _Answer:
        """Server-sent events up to ``data: [DONE]``; a choice's ``finish_reason`` marks the final chunk."""
        text, usage, finished = [], {}, False
        for line in lines:
            self._check_deadline(deadline)
            if not line.startswith("data:"):
                continue  # blank separators, ": keep-alive" comments, event names
            payload = line[5:].strip()
            if payload == "[DONE]":
                if not finished:
                    raise BackendError(DROPPED, "event stream ended with [DONE] but no chunk had a finish_reason")
                return _Answer("".join(text), usage.get("prompt_tokens"), usage.get("completion_tokens"))
            event = json.loads(payload)
            if "error" in event:
                raise BackendError(SERVER_ERROR, f"server error: {_error_detail(json.dumps(event))}")
            usage = event.get("usage") or usage
            for choice in event.get("choices") or ():
                finished = finished or bool(choice.get("finish_reason"))
                chunk = (choice.get("delta") or {}).get("content") or ""
                if chunk:
                    text.append(chunk)
                    on_token(chunk)
        raise BackendError(DROPPED, "event stream ended without data: [DONE]")


def _error_detail(body: str) -> str:
    """The message of an error body: {"error": "..."} or {"error": {"message": ...}} or raw text."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return _short(body) or "(empty body)"
    err = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
    if isinstance(err, dict):
        err = err.get("message", err)
    return _short(err)


def create_backend(kind: str, **kwargs: Any) -> ChatBackend:
    """``kind`` is "ollama" or "openai"; kwargs go to the backend's constructor."""
    backends = {"ollama": OllamaBackend, "openai": OpenAICompatibleBackend}
    if kind not in backends:
        raise ValueError(f"unknown LLM backend {kind!r}; expected one of {', '.join(backends)}")
    return backends[kind](**kwargs)
