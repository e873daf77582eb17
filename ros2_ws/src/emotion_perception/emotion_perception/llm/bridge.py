"""The bridge: a bounded queue of chat requests answered in order by one worker thread.

``submit`` never blocks and never loses a request: it returns a ``concurrent.futures.Future`` that
always resolves to a ``BridgeReply`` — the answer, or an error reply when the text is invalid, the
queue is full, the backend failed, or the bridge was closed. The emotion context is read when the
request is *served* (the freshest perception), and reported back with the reply. Only successful
turns enter the conversation memory, kept per user: a request without a user id is the addressed
person's (``EmotionContext.person_id``) when re-identification knows them, so the conversation
follows the person.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

from .backends import INTERNAL, ChatBackend, ChatResult
from .context import EmotionContext, EmotionContextTracker
from .prompt import ConversationMemory, PromptBuilder

QUEUE_FULL = "queue_full"
BAD_REQUEST = "bad_request"
SHUTDOWN = "shutdown"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BridgeReply:
    request_id: int
    user_id: str
    text: str  # the user's text as received
    result: ChatResult
    emotion_context: str = ""

    @property
    def ok(self) -> bool:
        return self.result.ok


@dataclass
class _Request:
    request_id: int
    user_id: str
    text: str
    on_token: Callable[[int, str], None] | None
    future: Future


class LLMBridge:
    """``context_fn()`` gives the current emotion context: an ``EmotionContext``, or just its sentence."""

    def __init__(self, backend: ChatBackend, context_fn: Callable[[], EmotionContext | str],
                 prompt: PromptBuilder | None = None, memory: ConversationMemory | None = None,
                 max_queue: int = 8, stream: bool = True) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        self.backend, self.context_fn = backend, context_fn
        self.prompt = prompt or PromptBuilder()
        self.memory = memory or ConversationMemory()
        self.stream = stream
        self._queue: queue.Queue[_Request | None] = queue.Queue(maxsize=max_queue)
        self._ids = itertools.count(1)
        self._closed = threading.Event()
        self._worker = threading.Thread(target=self._run, name="llm-bridge", daemon=True)
        self._worker.start()

    def submit(self, text: str, user_id: str = "", on_token: Callable[[int, str], None] | None = None) -> Future:
        """Queue one request; ``on_token(request_id, chunk)`` is called from the worker thread."""
        req = _Request(next(self._ids), user_id or "", text, on_token, Future())
        if self._closed.is_set():
            return self._fail(req, SHUTDOWN, "the LLM bridge is shut down")
        try:
            self.prompt.clean_user_text(text)
        except ValueError as e:
            return self._fail(req, BAD_REQUEST, str(e))
        try:
            self._queue.put_nowait(req)
        except queue.Full:
            return self._fail(req, QUEUE_FULL, f"too many pending requests (queue holds {self._queue.maxsize})")
        return req.future

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker after the request in progress; requests still queued get a shutdown error."""
        self._closed.set()
        while True:
            self._drain()
            try:
                self._queue.put_nowait(None)  # wakes the worker, which then exits
                break
            except queue.Full:  # a submit that raced with close() refilled it
                continue
        self._worker.join(timeout)
        self._drain()
        self.backend.close()

    def _drain(self) -> None:
        while True:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                return
            if req is not None:
                self._fail(req, SHUTDOWN, "the LLM bridge shut down before serving this request")

    def _fail(self, req: _Request, kind: str, message: str) -> Future:
        reply = BridgeReply(req.request_id, req.user_id, req.text, ChatResult(False, error=message, error_kind=kind))
        if req.future.set_running_or_notify_cancel():
            req.future.set_result(reply)
        return req.future

    def _run(self) -> None:
        while True:
            req = self._queue.get()
            if req is None:
                return
            if self._closed.is_set():
                self._fail(req, SHUTDOWN, "the LLM bridge shut down before serving this request")
                continue
            if not req.future.set_running_or_notify_cancel():
                continue  # the caller gave up on it (e.g. a service call timed out)
            try:
                req.future.set_result(self._serve(req))
            except Exception as e:  # noqa: BLE001 - the worker must outlive any single request
                log.exception("LLM request %d failed", req.request_id)
                req.future.set_result(BridgeReply(req.request_id, req.user_id, req.text,
                                                  ChatResult(False, error=f"internal error: {e!r}", error_kind=INTERNAL)))

    def _serve(self, req: _Request) -> BridgeReply:
        context = self.context_fn()
        sentence = context if isinstance(context, str) else context.sentence
        user_id = req.user_id or ("" if isinstance(context, str) else context.person_id)
        messages = self.prompt.messages(sentence, self.memory.history(user_id), req.text)
        on_token = _forward_tokens(req) if req.on_token is not None and self.stream else None
        result = self.backend.chat(messages, on_token)
        if result.ok:
            self.memory.add(user_id, messages[-1]["content"], result.text)
        return BridgeReply(req.request_id, user_id, req.text, result, sentence)


def _forward_tokens(req: _Request) -> Callable[[str], None]:
    """Token callback for the backend; a broken consumer (e.g. a dead publisher) costs no answer."""
    def forward(chunk: str) -> None:
        try:
            req.on_token(req.request_id, chunk)
        except Exception:  # noqa: BLE001
            log.exception("token callback failed for request %d", req.request_id)
    return forward


def forget_person(tracker: EmotionContextTracker, memory: ConversationMemory,
                  person_id: str = "") -> tuple[bool, int, str]:
    """(success, how many erased, message) for the bridge's forget service: what the bridge keeps
    of ``person_id`` (their emotion timeline in the context, their conversation turns), or of
    everyone when it is empty. The perception node's ``forget_persons`` erases the face data."""
    if person_id:
        if tracker.forget(person_id) + memory.forget(person_id):
            return True, 1, f"erased what the LLM bridge kept of {person_id}"
        return False, 0, f"the LLM bridge keeps nothing of {person_id!r}"
    n = max(tracker.forget(), memory.forget())
    return True, n, f"erased what the LLM bridge kept of everyone ({n})"
