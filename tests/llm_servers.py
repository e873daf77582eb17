"""LLM servers for tests, all on 127.0.0.1 with free ports.

- ``StandInServer``: a small HTTP server that speaks Ollama's documented ``/api/chat`` wire format
  (JSON, NDJSON streaming, ``{"error": ...}`` bodies, 404 for a missing model) and the OpenAI
  ``/v1/chat/completions`` format (JSON, server-sent events), and can misbehave on request: slow,
  malformed, dropped mid-stream, an empty answer, a stream cut short without its final message.
  It records every request body it received, and an exception in its handler threads fails the
  test: ``__exit__`` raises it (a broken stand-in must not pass for a client that copes).
- ``LlamaServer`` / ``llama_server``: the real llama.cpp server (``python -m llama_cpp.server``) on a
  GGUF file, which can be killed, paused and restarted.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

# truncated: the body ends cleanly after two words, without the final message ("done": true /
# a finish_reason chunk); the OpenAI stream still says data: [DONE], as a proxy cutting it would.
MODES = ("ok", "missing", "malformed", "drop", "slow", "error", "empty", "truncated")


class StandInError(AssertionError):
    """The stand-in server itself failed while handling a request."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandInServer:
    """``mode`` decides the next answers; ``reply`` is streamed word by word."""

    def __init__(self, reply: str = "Hello there, friend.", model: str = "qwen2.5", port: int = 0) -> None:
        self.reply, self.model = reply, model
        self.mode = "ok"
        self.delay_s = 2.0  # for mode "slow"
        self.requests: list[dict] = []
        self.errors: list[str] = []  # tracebacks from handler threads
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.handle_error = self._record_error
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "StandInServer":
        self._thread.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
        if self.errors and exc_type is None:
            raise StandInError("the stand-in LLM server failed:\n" + "\n".join(self.errors))

    def _record_error(self, request, address) -> None:
        """socketserver's hook for an exception in a handler; a client hanging up is not one."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            self.errors.append(traceback.format_exc())

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.requests.append(body)
                if server.mode not in MODES:
                    raise ValueError(f"unknown stand-in mode {server.mode!r}; expected one of {MODES}")
                try:
                    if self.path == "/api/chat":
                        server._ollama(self, body)
                    elif self.path == "/v1/chat/completions":
                        server._openai(self, body)
                    else:
                        self._send(404, b"404 page not found", "text/plain")
                except ConnectionError:
                    pass  # the client gave up (timeout tests)

            def _send(self, status: int, data: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _start_chunks(self, ctype: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _end_chunks(self) -> None:
                self.wfile.write(b"0\r\n\r\n")

            def _drop(self) -> None:
                """Close the socket in the middle of a chunked body."""
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)

        return Handler

    def _words(self) -> list[str]:
        words = self.reply.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    def _wait(self) -> None:
        self._stop.wait(self.delay_s)

    # --- Ollama: https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-chat-completion
    def _ollama(self, h, body: dict) -> None:
        if self.mode == "missing" or body.get("model") != self.model:
            return h._send(404, json.dumps({"error": f"model '{body.get('model')}' not found"}).encode())
        if self.mode == "error":
            return h._send(500, json.dumps({"error": "llama runner process has terminated"}).encode())
        if self.mode == "slow":
            self._wait()
        final = {"model": self.model, "created_at": "2024-01-01T00:00:00Z", "done": True, "done_reason": "stop",
                 "prompt_eval_count": 26, "eval_count": len(self._words())}
        if not body.get("stream", True):
            if self.mode == "malformed":
                return h._send(200, b'{"model": "qwen2.5", "message": {"role": "assist')
            content = "" if self.mode == "empty" else self.reply
            msg = {**final, "message": {"role": "assistant", "content": content}}
            if self.mode == "truncated":
                msg = {**msg, "done": False}
            return h._send(200, json.dumps(msg).encode())
        h._start_chunks("application/x-ndjson")
        for i, word in enumerate(self._words()):
            if self.mode == "drop" and i == 2:
                return h._drop()
            if self.mode == "truncated" and i == 2:
                return h._end_chunks()
            if self.mode == "empty":
                break
            if self.mode == "malformed" and i == 1:
                h._chunk(b"this is not json\n")
                return h._end_chunks()
            part = {"model": self.model, "created_at": "2024-01-01T00:00:00Z",
                    "message": {"role": "assistant", "content": word}, "done": False}
            h._chunk(json.dumps(part).encode() + b"\n")
        h._chunk(json.dumps({**final, "message": {"role": "assistant", "content": ""}}).encode() + b"\n")
        h._end_chunks()

    # --- OpenAI: https://platform.openai.com/docs/api-reference/chat
    def _openai(self, h, body: dict) -> None:
        if self.mode == "missing" or body.get("model") != self.model:
            err = {"error": {"message": f"The model `{body.get('model')}` does not exist.", "type": "invalid_request_error"}}
            return h._send(404, json.dumps(err).encode())
        if self.mode == "error":
            return h._send(500, json.dumps({"error": {"message": "internal failure"}}).encode())
        if self.mode == "slow":
            self._wait()
        usage = {"prompt_tokens": 26, "completion_tokens": len(self._words())}
        if not body.get("stream"):
            if self.mode == "malformed":
                return h._send(200, json.dumps({"id": "x", "choices": []}).encode())
            content = "" if self.mode == "empty" else self.reply
            msg = {"id": "c1", "object": "chat.completion", "model": self.model, "usage": usage,
                   "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}
            return h._send(200, json.dumps(msg).encode())
        h._start_chunks("text/event-stream")
        for i, word in enumerate(self._words()):
            if self.mode == "drop" and i == 2:
                return h._drop()
            if self.mode == "truncated" and i == 2:
                h._chunk(b"data: [DONE]\n\n")
                return h._end_chunks()
            if self.mode == "empty":
                break
            if self.mode == "malformed" and i == 1:
                h._chunk(b"data: {not json\n\n")
                return h._end_chunks()
            event = {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": word}}]}
            h._chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
        last = {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        h._chunk(b"data: " + json.dumps(last).encode() + b"\n\n")
        h._chunk(b"data: " + json.dumps({"id": "c1", "choices": [], "usage": usage}).encode() + b"\n\n")
        h._chunk(b"data: [DONE]\n\n")
        h._end_chunks()


def llama_cpp_available() -> bool:
    """llama-cpp-python and its server extra (fastapi, uvicorn, ...) are importable."""
    try:
        importlib.import_module("llama_cpp.server.app")
    except ImportError:
        return False
    return True


def tiny_gguf_or_skip(shared_data: Path) -> Path:
    """The tiny random Qwen2 GGUF from the shared data; skips the test without it or llama.cpp."""
    import pytest

    model = shared_data / "llm" / "tiny-random-qwen2.gguf"
    if not model.is_file():
        pytest.skip(f"{model} not found")
    if not llama_cpp_available():
        pytest.skip("llama-cpp-python with its server extra is not installed (pip install 'llama-cpp-python[server]')")
    return model


class LlamaServer:
    """llama-cpp-python's OpenAI-compatible server in a child process on a fixed loopback port.

    ``kill`` (SIGKILL, as a crash would), ``pause`` / ``resume`` (SIGSTOP / SIGCONT: a server that
    stops answering) and ``start`` again on the same port let tests and benchmarks stage real
    server faults. ``close`` always stops the process.
    """

    def __init__(self, model: Path, n_ctx: int = 512, port: int = 0) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
                    "--port", str(self.port), "--n_ctx", str(n_ctx), "--n_threads", "1", "--model_alias", "tiny"]
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, ready_timeout_s: float = 60.0) -> None:
        """Start the process and wait until it answers ``GET /v1/models``."""
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.starts += 1
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}: {' '.join(self.cmd)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/v1/models", timeout=1.0).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"llama_cpp.server not ready within {ready_timeout_s:g} s")
            time.sleep(0.2)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.resume()  # a stopped process would not act on SIGTERM
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@contextlib.contextmanager
def llama_server(model: Path, n_ctx: int = 512, ready_timeout_s: float = 60.0):
    """Serve ``model`` with llama-cpp-python's OpenAI-compatible server; yields its base URL."""
    server = LlamaServer(model, n_ctx)
    try:
        server.start(ready_timeout_s)
        yield server.url
    finally:
        server.close()
