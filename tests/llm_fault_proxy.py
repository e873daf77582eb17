"""Faults in a row against a real llama.cpp server, for tests/test_llm_faults.py and
benchmarks/llm_faults.py.

``run_faults`` starts llama-cpp-python's OpenAI-compatible server on a GGUF file (127.0.0.1, free
port) and ``FaultProxy`` in front of it (127.0.0.1); one ``LLMBridge`` (OpenAI-compatible backend,
streaming, as the node runs it) talks to the proxy. All requests are queued at once; the proxy
recognises each by the tag in its text and applies that request's fault:

- ``kill``: the real server is SIGKILLed after the first streamed token reached the client (the
  proxy asks for 400 tokens for this request, so the server is still generating);
- ``restart``: the server is dead when the request arrives; the proxy answers 503 (what a
  reverse proxy says) while the server is restarted on the same port, and the backend's retries
  reach it;
- ``slow``: the real server is frozen (SIGSTOP) past the client's timeout, then resumed;
- ``404``: the request goes to a route the real server does not serve and gets its real 404
  (llama.cpp answers an unknown *model name* with its loaded model, so that gives no 404 there);
- ``malformed``: the proxy cuts the JSON of one of the real server's stream events in half;
- ``empty``: the proxy adds a logit_bias that makes <|im_end|> certain, so the real server
  itself returns an empty completion.

Every request must get exactly one reply, in submission order, ok or with the expected error
kind; ``ok`` requests between the faults show that the bridge recovers.
"""
from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from emotion_perception.llm import backends as B
from emotion_perception.llm.bridge import LLMBridge
from llm_servers import LlamaServer

ROUND = ["ok", "kill", "restart", "ok", "slow", "ok", "404", "ok", "malformed", "ok", "empty", "ok"]
EXPECTED = {"ok": "ok", "restart": "ok", "kill": B.DROPPED, "slow": B.TIMEOUT, "404": B.MODEL_MISSING,
            "malformed": B.MALFORMED, "empty": B.EMPTY}
TAG = re.compile(r"^\[request (\d+)\]")
RETRIES = 10


class FaultProxy:
    """HTTP proxy on 127.0.0.1 in front of ``server``; ``plan[n]`` is request n's fault."""

    def __init__(self, server: LlamaServer, plan: dict[int, str], client_timeout_s: float, end_token: int):
        self.server, self.plan = server, plan
        self.freeze_s = client_timeout_s + 0.3  # the next request must still fit in its own timeout
        self.end_token = end_token
        self.arrivals: dict[int, int] = {}  # request number -> times it reached the proxy
        # While the server restarts, requests get 503: llama-cpp-python cuts a streaming answer
        # short when another request (even the readiness poll's GET /v1/models) comes in.
        self._restarting = threading.Event()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._upstream = httpx.Client(base_url=server.url, timeout=httpx.Timeout(60.0))
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._httpd.handle_error = self._record_error
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._serve = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._serve.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        for t in self._threads:
            t.join(70)
        self._upstream.close()

    def _record_error(self, request, address) -> None:
        """socketserver's hook for an exception in a handler; a client hanging up is not one."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError):
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _restart(self) -> None:
        try:
            self.server.start()
        finally:
            self._restarting.clear()

    def _later(self, delay_s: float, action) -> None:
        t = threading.Timer(delay_s, action)
        self._threads.append(t)
        t.start()

    def _first_arrival(self, number: int) -> bool:
        with self._lock:
            self.arrivals[number] = self.arrivals.get(number, 0) + 1
            return self.arrivals[number] == 1

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                match = TAG.match(body["messages"][-1]["content"])
                number = int(match.group(1)) if match else -1
                fault = proxy.plan.get(number, "ok")
                try:
                    proxy.forward(self, fault, proxy._first_arrival(number), body)
                except ConnectionError:
                    pass  # the client gave up (the slow fault)
                except Exception as exc:  # noqa: BLE001 - reported in the JSON, never silent
                    proxy.errors.append(f"request {number} ({fault}): {type(exc).__name__}: {exc}")
                    self.close_connection = True

        return Handler

    def forward(self, h: BaseHTTPRequestHandler, fault: str, first: bool, body: dict) -> None:
        path = h.path
        if fault == "restart" and first and self.server.proc.poll() is not None:
            self._restarting.set()
            self._later(0.0, self._restart)  # loads the model again: the retries wait for it
        if fault == "slow" and first:
            self.server.pause()
            self._later(self.freeze_s, self.server.resume)
            body = {**body, "max_tokens": 1}  # little left to do after the resume: the next request waits
        if fault == "kill":
            body = {**body, "max_tokens": 400}  # long enough that the server is killed mid-answer
        if fault == "404":
            path = "/v1/engines/tiny/chat/completions"  # the legacy per-engine route: not served
        if fault == "empty":
            body = {**body, "logit_bias": {str(self.end_token): 100.0}}
        if self._restarting.is_set():
            return _send(h, 503, b'{"error": {"message": "upstream llama.cpp server is restarting"}}')
        try:
            upstream = self._upstream.stream("POST", path, json=body)
            response = upstream.__enter__()
        except httpx.ConnectError:
            return _send(h, 503, b'{"error": {"message": "upstream llama.cpp server is not reachable"}}')
        except httpx.TransportError:  # e.g. the server reset a kept-alive connection while it was frozen
            return _cut(h)
        try:
            if response.status_code != 200:
                return _send(h, response.status_code, response.read())
            h.send_response(200)
            h.send_header("Content-Type", response.headers.get("content-type", "text/event-stream"))
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            events = 0
            try:
                for line in response.iter_lines():
                    if line.startswith("data: {"):
                        events += 1
                        if fault == "malformed" and events == 2:
                            line = line[: len(line) // 2]
                    _chunk(h, (line + "\n").encode())
                    if fault == "kill" and first and _has_content(line):
                        self.server.kill()
            except (httpx.RemoteProtocolError, httpx.ReadError):  # the server died mid-stream
                return _cut(h)
            h.wfile.write(b"0\r\n\r\n")
        finally:
            upstream.__exit__(None, None, None)


def _has_content(line: str) -> bool:
    """A server-sent event that carries answer text."""
    if not line.startswith("data: {"):
        return False
    return any((c.get("delta") or {}).get("content") for c in json.loads(line[6:]).get("choices") or ())


def _cut(h) -> None:
    """Close the client's connection as a dead server would: mid-body, without a last chunk."""
    h.close_connection = True
    with contextlib.suppress(OSError):  # the client may be gone already
        h.connection.shutdown(socket.SHUT_RDWR)


def _send(h, status: int, data: bytes) -> None:
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def _chunk(h, data: bytes) -> None:
    h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    h.wfile.flush()


def end_of_turn_token(url: str) -> int:
    """Qwen2's <|im_end|> id, as the real server's own tokenizer says."""
    r = httpx.post(f"{url}/extras/tokenize", json={"input": "<|im_end|>"}, timeout=10)
    r.raise_for_status()
    tokens = r.json()["tokens"]
    if len(tokens) != 1:
        raise RuntimeError(f"<|im_end|> is not one token in this model ({tokens}); use a ChatML GGUF")
    return tokens[0]


def run_faults(gguf: Path, rounds: int = 1, timeout_s: float = 8.0) -> dict:
    plan = {n: fault for n, fault in enumerate(ROUND * rounds, start=1)}
    server = LlamaServer(gguf)
    server.start()
    proxy = None
    bridge = None
    try:
        proxy = FaultProxy(server, plan, timeout_s, end_of_turn_token(server.url))
        backend = B.OpenAICompatibleBackend(base_url=proxy.url + "/v1", model="tiny", timeout=timeout_s, retries=RETRIES,
                                            backoff_s=0.5, options={"temperature": 0.0, "max_tokens": 8, "seed": 1})
        backend.max_backoff_s = 2.0  # retry the restart every 2 s: ~20 s for the model to load
        bridge = LLMBridge(backend, lambda: "No one is visible.", max_queue=len(plan) + 1, stream=True)
        tokens: dict[int, list[str]] = {}
        completed: list[int] = []  # request ids in the order their replies arrived

        def on_token(request_id: int, chunk: str) -> None:
            tokens.setdefault(request_id, []).append(chunk)

        start = time.monotonic()
        futures = []
        for number in plan:
            future = bridge.submit(f"[request {number}] Hello robot, how are you?", user_id=f"u{number}", on_token=on_token)
            future.add_done_callback(lambda f: completed.append(f.result().request_id))
            futures.append(future)
        # Worst case per request: (retries + 1) attempts of timeout_s plus the backoffs.
        budget_s = len(plan) * ((RETRIES + 1) * timeout_s + 2 * RETRIES)
        replies = [f.result(timeout=max(1.0, start + budget_s - time.monotonic())) for f in futures]
        wall_s = time.monotonic() - start
    finally:
        if bridge is not None:
            bridge.close()
        if proxy is not None:
            proxy.close()
        server.close()

    rows, wrong = [], 0
    for number, reply in zip(plan, replies):
        fault = plan[number]
        got = "ok" if reply.ok else reply.result.error_kind
        streamed = "".join(tokens.get(reply.request_id, []))
        right = got == EXPECTED[fault] and (not reply.ok or streamed == reply.result.text)
        if fault == "kill":
            right = right and bool(streamed)  # it really died mid-stream
        if fault == "restart":
            right = right and reply.result.attempts >= 2  # it really waited for the restart
        wrong += not right
        rows.append({"request": number, "fault": fault, "expected": EXPECTED[fault], "got": got, "as_expected": right,
                     "attempts": reply.result.attempts, "latency_s": round(reply.result.latency_s, 2),
                     "streamed_chars": len(streamed), "error": reply.result.error[:160]})
    ids = [r.request_id for r in replies]
    in_order = completed == sorted(completed) == ids
    lost, duplicated = len(set(ids) - set(completed)), len(completed) - len(set(completed))
    return {
        "passed": (len(completed) == len(plan) and in_order and not lost and not duplicated and not wrong
                   and not (proxy.errors if proxy else [])),
        "requests": len(plan),
        "replies": len(completed),
        "in_order": in_order,
        "lost": lost,
        "duplicated": duplicated,
        "wrong_outcome": wrong,
        "fault_kinds": sorted({f for f in plan.values() if f != "ok"}),
        "server_starts": server.starts,
        "proxy_errors": proxy.errors if proxy else [],
        "wall_s": round(wall_s, 1),
        "per_request": rows,
    }
