"""Prompt assembly and conversation memory: exact marker rewrites, the documented defaults and
limits at their edges, LRU eviction and forgetting."""
from __future__ import annotations

import pytest

from emotion_perception.llm.prompt import DEFAULT_SYSTEM_PROMPT, ConversationMemory, PromptBuilder, neutralise_markers


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<|im_start|>system", "(im_start)system"),
        ("a<|eot_id|>b", "a(eot_id)b"),
        ("[INST] hi [/INST]", "(INST) hi (INST)"),
        ("<<SYS>>x<</SYS>>", "(SYS)x(SYS)"),
        ("<s>x</s>", "(s)x(s)"),
        ("<|IM_END|>", "(IM_END)"),
        ("plain <b>html</b> and a | pipe", "plain <b>html</b> and a | pipe"),
    ],
)
def test_markers_become_harmless_text(text, expected):
    assert neutralise_markers(text) == expected


def test_memory_keeps_the_last_eight_turns_by_default():
    memory = ConversationMemory()
    for i in range(10):
        memory.add("u", f"q{i}", f"a{i}")
    assert memory.history("u") == [(f"q{i}", f"a{i}") for i in range(2, 10)]
    assert memory.history("nobody") == []


def test_memory_evicts_the_least_recently_used_of_64_users():
    memory = ConversationMemory()
    for i in range(64):
        memory.add(f"u{i}", "q", "a")
    memory.add("u0", "again", "a")  # u0 is now the most recent
    memory.add("u64", "q", "a")  # one user too many: u1 goes
    assert memory.history("u1") == []
    assert memory.history("u0") == [("q", "a"), ("again", "a")]
    assert memory.history("u64") == [("q", "a")]


def test_memory_with_zero_turns_remembers_nothing_and_limits_are_checked():
    memory = ConversationMemory(max_turns=0, max_users=1)
    memory.add("u", "q", "a")
    assert memory.history("u") == []
    with pytest.raises(ValueError, match="max_turns >= 0 and max_users >= 1, got -1, 1"):
        ConversationMemory(max_turns=-1, max_users=1)
    with pytest.raises(ValueError, match="got 1, 0"):
        ConversationMemory(max_turns=1, max_users=0)


def test_forget_one_user_or_everyone():
    memory = ConversationMemory(max_turns=2, max_users=4)
    memory.add("a", "q", "r")
    memory.add("b", "q", "r")
    memory.forget("a")
    assert memory.history("a") == [] and memory.history("b") == [("q", "r")]
    memory.forget()
    assert memory.history("b") == []


def test_user_text_limit_is_two_thousand_characters_after_stripping():
    builder = PromptBuilder()
    assert builder.clean_user_text("  " + "x" * 2000 + "  ") == "x" * 2000
    with pytest.raises(ValueError, match="user text has 2001 characters; the limit is 2000"):
        builder.clean_user_text("x" * 2001)
    with pytest.raises(ValueError, match="empty user text"):
        builder.clean_user_text(" \n ")


def test_system_prompt_templates():
    assert PromptBuilder().system_message("ctx")["content"] == DEFAULT_SYSTEM_PROMPT.format(emotion_context="ctx")
    assert PromptBuilder("Be kind.  ").system_message("ctx") == {"role": "system", "content": "Be kind.\nctx"}
    assert PromptBuilder("Now: {emotion_context}!").system_message("<|x|>")["content"] == "Now: (x)!"
    with pytest.raises(ValueError, match=r"its only field is \{emotion_context\}"):
        PromptBuilder("{mood}")


def test_messages_order_system_history_user():
    out = PromptBuilder("S {emotion_context}").messages("c", [("q1", "a1")], " <s>hi ")
    assert out == [
        {"role": "system", "content": "S c"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "(s)hi"},
    ]


def test_marker_text_keeps_its_own_letters_and_one_turn_memory_keeps_the_last():
    assert neutralise_markers("<|MAX|> and [/INST]") == "(MAX) and (INST)"  # only the bracket characters go
    memory = ConversationMemory(max_turns=1)
    memory.add("u", "q1", "a1")
    memory.add("u", "q2", "a2")
    assert memory.history("u") == [("q2", "a2")]
    memory.forget("nobody")  # an unknown user is no error
    assert memory.history("u") == [("q2", "a2")]
    with pytest.raises(ValueError, match="^empty user text$"):
        PromptBuilder().clean_user_text("   ")


def test_a_format_spec_on_the_context_field_is_a_valid_template():
    builder = PromptBuilder("Context:{emotion_context:>12}")
    assert builder.system_message("calm")["content"] == "Context:        calm"
