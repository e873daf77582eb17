"""Prompt assembly: a system prompt that carries the emotion context on every turn, plus bounded
per-user conversation memory.

The user's text only ever becomes a ``user``-role message, so on chat APIs it cannot take the
system role. Servers still render the messages into one string with the model's chat template
(ChatML for Qwen), and some tokenize special markers found in user text; so role and turn markers
(``<|im_start|>``, ``[INST]``, ``<<SYS>>``, ...) are neutralised before the text is sent.
"""
from __future__ import annotations

import re
import string
import threading
from collections import OrderedDict, deque

DEFAULT_SYSTEM_PROMPT = (
    "You are the dialogue system of a friendly robot. Answer briefly and kindly. "
    "Take the person's visible emotion into account, but do not mention the camera unless asked.\n"
    "What the robot currently perceives: {emotion_context}"
)

# <|im_start|>, <|eot_id|>, <|start_header_id|>, <|system|> ...; [INST] [/INST]; <<SYS>>; <s> </s>
_MARKERS = re.compile(r"<\|[^<>|\s]{0,40}\|>|\[/?INST\]|<</?SYS>>|</?s>", re.IGNORECASE)


def neutralise_markers(text: str) -> str:
    """Turn chat-template control markers into harmless text: ``<|im_start|>`` -> ``(im_start)``."""
    return _MARKERS.sub(lambda m: "(" + m.group(0).strip("<>|[]/") + ")", text)


class ConversationMemory:
    """The last ``max_turns`` (user, assistant) exchanges of at most ``max_users`` users (LRU)."""

    def __init__(self, max_turns: int = 8, max_users: int = 64) -> None:
        if max_turns < 0 or max_users < 1:
            raise ValueError(f"need max_turns >= 0 and max_users >= 1, got {max_turns}, {max_users}")
        self.max_turns, self.max_users = max_turns, max_users
        self._turns: OrderedDict[str, deque[tuple[str, str]]] = OrderedDict()
        self._lock = threading.Lock()

    def history(self, user_id: str) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._turns.get(user_id, ()))

    def add(self, user_id: str, user_text: str, reply: str) -> None:
        if self.max_turns == 0:
            return
        with self._lock:
            turns = self._turns.pop(user_id, None) or deque(maxlen=self.max_turns)
            turns.append((user_text, reply))
            self._turns[user_id] = turns
            while len(self._turns) > self.max_users:
                self._turns.popitem(last=False)

    def forget(self, user_id: str | None = None) -> int:
        """Forget one user's turns, or everyone's; how many users were forgotten."""
        with self._lock:
            if user_id is None:
                n = len(self._turns)
                self._turns.clear()
                return n
            return int(self._turns.pop(user_id, None) is not None)


class PromptBuilder:
    """Builds the chat messages of one turn: system (with context), history, the user's text."""

    def __init__(self, system_prompt: str = DEFAULT_SYSTEM_PROMPT, max_user_chars: int = 2000) -> None:
        try:
            system_prompt.format(emotion_context="")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"system prompt template is invalid ({e!r}); its only field is {{emotion_context}}") from None
        # the context goes at the end unless a field names it ("{emotion_context:>12}" names it too)
        if "emotion_context" not in {field for _, field, _, _ in string.Formatter().parse(system_prompt)}:
            system_prompt = system_prompt.rstrip() + "\n{emotion_context}"
        self.system_prompt = system_prompt
        self.max_user_chars = max_user_chars

    def clean_user_text(self, text: str) -> str:
        """Neutralised, stripped user text; ValueError when empty or longer than the limit."""
        text = neutralise_markers(text).strip()
        if not text:
            raise ValueError("empty user text")
        if len(text) > self.max_user_chars:
            raise ValueError(f"user text has {len(text)} characters; the limit is {self.max_user_chars}")
        return text

    def system_message(self, emotion_context: str) -> dict[str, str]:
        context = neutralise_markers(emotion_context)  # it may quote ids taken from messages
        return {"role": "system", "content": self.system_prompt.format(emotion_context=context)}

    def messages(self, emotion_context: str, history: list[tuple[str, str]], user_text: str) -> list[dict[str, str]]:
        """System first on every turn, then the remembered turns, then the (cleaned) user text."""
        out = [self.system_message(emotion_context)]
        for said, answered in history:
            out += [{"role": "user", "content": said}, {"role": "assistant", "content": answered}]
        out.append({"role": "user", "content": self.clean_user_text(user_text)})
        return out
