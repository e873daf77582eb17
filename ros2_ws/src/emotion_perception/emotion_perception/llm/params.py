"""The LLM bridge's parameters: one table (name, default, description), ROS-free.

The node declares exactly these (with the descriptions), ``config/llm_bridge.yaml`` holds the same
defaults (a test compares them), and ``build_bridge`` turns a {name: value} dict into the core
objects, so the wiring is testable without rclpy. Names with a dot are nested in the YAML file.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from .backends import ChatBackend, create_backend
from .bridge import LLMBridge
from .context import ContextConfig, EmotionContextTracker
from .prompt import DEFAULT_SYSTEM_PROMPT, ConversationMemory, PromptBuilder

_CTX = ContextConfig()


class Parameter(NamedTuple):
    name: str
    default: Any
    description: str


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("backend", "ollama", "LLM server API: 'ollama' (native /api/chat) or 'openai' (any OpenAI-compatible /v1 server)"),
    Parameter("model", "qwen2.5", "model name as the server knows it"),
    Parameter("ollama_host", "http://127.0.0.1:11434", "Ollama server URL (backend 'ollama')"),
    Parameter("keep_alive", "5m", "how long Ollama keeps the model loaded after a request (Ollama duration)"),
    Parameter("openai_base_url", "http://127.0.0.1:8080/v1", "OpenAI-compatible base URL including /v1 (backend 'openai')"),
    Parameter("openai_api_key", "", "bearer token for the OpenAI-compatible server; empty sends none"),
    Parameter("temperature", 0.7, "sampling temperature"),
    Parameter("max_tokens", 256, "longest reply in tokens (Ollama num_predict / OpenAI max_tokens); <= 0 = server default"),
    Parameter("timeout_s", 60.0, "seconds one attempt may take before it fails with a timeout error"),
    Parameter("retries", 2, "extra attempts after a connection failure (exponential backoff); never after tokens were streamed"),
    Parameter("backoff_s", 0.5, "first retry delay in seconds; doubles per retry"),
    Parameter("max_queue", 8, "pending requests beyond this get an immediate 'queue_full' error reply"),
    Parameter("stream", True, "stream tokens from the server and publish them on reply_tokens"),
    Parameter("max_turns", 8, "conversation memory: (user, reply) exchanges remembered per user"),
    Parameter("max_users", 64, "conversation memory: users remembered (least recently active forgotten first)"),
    Parameter("max_user_chars", 2000, "longer user texts are rejected with a 'bad_request' error reply"),
    Parameter("system_prompt", DEFAULT_SYSTEM_PROMPT, "system prompt; {emotion_context} is replaced by the context sentence on every turn"),
    Parameter("error_reply", "Sorry, I cannot answer right now.", "published on reply when a user_text request fails ({error} = the reason)"),
    Parameter("publish_service_replies", False, "also publish replies to Chat service calls on reply"),
    Parameter("service_timeout_s", 300.0, "a Chat call waiting longer than this (queue + LLM) returns success=false"),
    Parameter("max_concurrent_service_calls", 4, "Chat calls waiting at once; more are refused (each holds one executor thread)"),
    Parameter("context_period_s", 0.5, "how often the context is re-evaluated (expiry) and published when it changed"),
    Parameter("context.smoothing_s", _CTX.smoothing_s, "time constant (s) of the per-face exponential average of class probabilities"),
    Parameter("context.max_age_s", _CTX.max_age_s, "a face not seen for this many seconds is dropped"),
    Parameter("context.switch_margin", _CTX.switch_margin, "hysteresis: a new class must lead the reported one by this probability margin ..."),
    Parameter("context.switch_hold_s", _CTX.switch_hold_s, "... for this many seconds before the reported emotion changes"),
    Parameter("context.min_confidence", _CTX.min_confidence, "below this smoothed probability the emotion is reported as uncertain"),
    Parameter("context.addressee", _CTX.addressee, "whom the robot talks to: 'largest' face box or 'most_confident' estimate"),
    Parameter("context.addressee_ratio", _CTX.addressee_ratio, "another face must score this many times higher to become the addressee"),
    Parameter("context.template", _CTX.template, "context sentence; fields {who} {emotion} {class_name} {confidence} {polarity} {scene} {count} {face_id} {valence} {arousal}"),
    Parameter("context.uncertain_template", _CTX.uncertain_template, "sentence when the emotion is uncertain (same fields)"),
    Parameter("context.nobody_template", _CTX.nobody_template, "sentence when no face is visible"),
    Parameter("context.scene_template", _CTX.scene_template, "fills {scene} when the scene polarity is known (same fields)"),
    Parameter("context.single_person", _CTX.single_person, "fills {who} when one face is visible"),
    Parameter("context.several_people", _CTX.several_people, "fills {who} when several faces are visible ({count})"),
)
DEFAULTS: dict[str, Any] = {p.name: p.default for p in PARAMETERS}


def context_config(values: dict[str, Any]) -> ContextConfig:
    prefix = "context."
    return ContextConfig(**{k[len(prefix):]: v for k, v in {**DEFAULTS, **values}.items() if k.startswith(prefix)})


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
        context_fn=lambda: tracker.context(clock_ns()).sentence,
        prompt=PromptBuilder(v["system_prompt"], int(v["max_user_chars"])),
        memory=ConversationMemory(int(v["max_turns"]), int(v["max_users"])),
        max_queue=int(v["max_queue"]),
        stream=bool(v["stream"]),
    )
    return tracker, bridge
