"""The LLM bridge's parameters: one table (name, default, description), ROS-free.

The node declares exactly these (with the descriptions), ``config/llm_bridge.yaml`` holds the same
defaults (a test compares them), and ``build_bridge`` turns a {name: value} dict into the core
objects, so the wiring is testable without rclpy. Names with a dot are nested in the YAML file.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Callable
from urllib.parse import urlsplit

from ..parameters import Param
from .backends import ChatBackend, create_backend
from .bridge import LLMBridge
from .context import ContextConfig, EmotionContextTracker
from .prompt import DEFAULT_SYSTEM_PROMPT, ConversationMemory, PromptBuilder

_CTX = ContextConfig()


PARAMETERS: tuple[Param, ...] = (
    Param("backend", "ollama", "LLM server API: 'ollama' (native /api/chat) or 'openai' (any OpenAI-compatible /v1 server)"),
    Param("model", "qwen2.5", "model name as the server knows it"),
    Param("ollama_host", "http://127.0.0.1:11434", "Ollama server URL (backend 'ollama')"),
    Param("keep_alive", "5m", "how long Ollama keeps the model loaded after a request (Ollama duration)"),
    Param("openai_base_url", "http://127.0.0.1:8080/v1", "OpenAI-compatible base URL including /v1 (backend 'openai')"),
    Param("openai_api_key", "", "bearer token for the OpenAI-compatible server; empty sends none"),
    Param("temperature", 0.7, "sampling temperature"),
    Param("max_tokens", 256, "longest reply in tokens (Ollama num_predict / OpenAI max_tokens); <= 0 = server default"),
    Param("timeout_s", 60.0, "seconds one attempt may take before it fails with a timeout error"),
    Param("retries", 2, "extra attempts after a connection failure (exponential backoff); never after tokens were streamed"),
    Param("backoff_s", 0.5, "first retry delay in seconds; doubles per retry"),
    Param("max_queue", 8, "pending requests beyond this get an immediate 'queue_full' error reply"),
    Param("stream", True, "stream tokens from the server and publish them on reply_tokens"),
    Param("max_turns", 8, "conversation memory: (user, reply) exchanges remembered per user"),
    Param("max_users", 64, "conversation memory: users remembered (least recently active forgotten first)"),
    Param("max_user_chars", 2000, "longer user texts are rejected with a 'bad_request' error reply"),
    Param("system_prompt", DEFAULT_SYSTEM_PROMPT, "system prompt; {emotion_context} is replaced by the context sentence on every turn"),
    Param("error_reply", "Sorry, I cannot answer right now.", "published on reply when a user_text request fails ({error} = the reason)"),
    Param("publish_service_replies", False, "also publish replies to Chat service calls on reply"),
    Param("service_timeout_s", 300.0, "a Chat call waiting longer than this (queue + LLM) returns success=false"),
    Param("max_concurrent_service_calls", 4, "Chat calls waiting at once; more are refused (each holds one executor thread)"),
    Param("context_period_s", 0.5, "how often the context is re-evaluated (expiry) and published when it changed"),
    Param("context.smoothing_s", _CTX.smoothing_s, "time constant (s) of the per-face exponential average of class probabilities"),
    Param("context.max_age_s", _CTX.max_age_s, "a face not seen for this many seconds is dropped"),
    Param("context.switch_margin", _CTX.switch_margin, "hysteresis: a new class must lead the reported one by this probability margin ..."),
    Param("context.switch_hold_s", _CTX.switch_hold_s, "... for this many seconds before the reported emotion changes"),
    Param("context.min_confidence", _CTX.min_confidence, "below this smoothed probability the emotion is reported as uncertain"),
    Param("context.addressee", _CTX.addressee, "whom the robot talks to: 'largest' face box or 'most_confident' estimate"),
    Param("context.addressee_ratio", _CTX.addressee_ratio, "another face must score this many times higher to become the addressee"),
    Param("context.max_people", _CTX.max_people, "people described in the sentence, the addressee included (nearest first)"),
    Param("context.memory_s", _CTX.memory_s, "a person (re-identified person id) is remembered this many seconds after last seen, in memory only"),
    Param("context.max_remembered", _CTX.max_remembered, "people remembered at most (least recently seen forgotten first)"),
    Param("context.history_interval_s", _CTX.history_interval_s, "per-person timeline: the dominant emotion is kept per interval of this many seconds"),
    Param("context.back_note_s", _CTX.back_note_s, "for this many seconds after a person comes back, {back} says so"),
    Param("context.template", _CTX.template, "context sentence; fields {who} {emotion} {class_name} {confidence} {polarity} {scene} {count} {face_id} {person_id} {person} {position} {others} {back} {valence} {arousal}"),
    Param("context.uncertain_template", _CTX.uncertain_template, "sentence when the emotion is uncertain (same fields)"),
    Param("context.nobody_template", _CTX.nobody_template, "sentence when no face is visible"),
    Param("context.scene_template", _CTX.scene_template, "fills {scene} when the scene polarity is known (same fields)"),
    Param("context.single_person", _CTX.single_person, "fills {who} when one face is visible"),
    Param("context.several_people", _CTX.several_people, "fills {who} when several faces are visible ({count}, {position})"),
    Param("context.others_template", _CTX.others_template, "fills {others} when other people are described; {people} = their other_person texts joined by '; '"),
    Param("context.other_person", _CTX.other_person, "one other person in {people}: {position} {person} {emotion} ('uncertain' when it is) and the other fields"),
    Param("context.back_template", _CTX.back_template, "fills {back}: {person} {absent_s} (seconds away) {earlier} (dominant emotion before) and the other fields"),
)
DEFAULTS: dict[str, Any] = {p.name: p.default for p in PARAMETERS}


def context_config(values: dict[str, Any]) -> ContextConfig:
    prefix = "context."
    return ContextConfig(**{k[len(prefix):]: v for k, v in {**DEFAULTS, **values}.items() if k.startswith(prefix)})


def backend_url(values: dict[str, Any]) -> str:
    v = {**DEFAULTS, **values}
    return v["ollama_host"] if v["backend"] == "ollama" else v["openai_base_url"]


def remote_backend_warning(values: dict[str, Any]) -> str | None:
    """A warning when the LLM server is not on this machine (not loopback): emotion data leaves it."""
    url = backend_url(values)
    host = (urlsplit(url if "//" in url else "//" + url).hostname or "").lower()
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost" or host.endswith(".localhost")
    if local:
        return None
    return (f"the LLM backend {url} is not on this robot (not a loopback address): every request sends the "
            f"emotion context (how the people in front of the camera look, with person ids and positions) "
            f"and what they said to {host or 'that server'}; emotion data is sensitive personal data")


def create_backend_from(values: dict[str, Any]) -> ChatBackend:
    v = {**DEFAULTS, **values}
    common = dict(model=v["model"], timeout=float(v["timeout_s"]), retries=int(v["retries"]), backoff_s=float(v["backoff_s"]))
    limit = int(v["max_tokens"])
    if v["backend"] == "ollama":
        options = {"temperature": float(v["temperature"]), **({"num_predict": limit} if limit > 0 else {})}
        return create_backend("ollama", host=v["ollama_host"], keep_alive=v["keep_alive"] or None, options=options, **common)
    options = {"temperature": float(v["temperature"]), **({"max_tokens": limit} if limit > 0 else {})}
    return create_backend(v["backend"], base_url=v["openai_base_url"], api_key=v["openai_api_key"] or None,
                          options=options, **common)


def build_bridge(values: dict[str, Any], clock_ns: Callable[[], int]) -> tuple[EmotionContextTracker, LLMBridge]:
    """The tracker and a running bridge from parameter values (missing names take defaults).

    The bridge reads ``tracker.context(clock_ns())`` when it serves a request; the node passes its
    ROS clock, so simulated time during bag replay expires faces correctly.
    """
    unknown = set(values) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown LLM bridge parameters: {', '.join(sorted(unknown))}")
    v = {**DEFAULTS, **values}
    tracker = EmotionContextTracker(context_config(v))
    bridge = LLMBridge(
        create_backend_from(v),
        context_fn=lambda: tracker.context(clock_ns()),
        prompt=PromptBuilder(v["system_prompt"], int(v["max_user_chars"])),
        memory=ConversationMemory(int(v["max_turns"]), int(v["max_users"])),
        max_queue=int(v["max_queue"]),
        stream=bool(v["stream"]),
    )
    return tracker, bridge
