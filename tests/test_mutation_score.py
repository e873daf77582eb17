"""scripts/mutation_score.py on a hand-written `mutmut results --all true` listing."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mutation_score.py"
spec = importlib.util.spec_from_file_location("mutation_score", SCRIPT)
mutation_score = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutation_score)

RESULTS = """\
    emotion_perception.images.x_to_rgb__mutmut_1: killed
    emotion_perception.images.x_to_rgb__mutmut_2: survived
    emotion_perception.images.x_to_rgb__mutmut_3: timeout
    emotion_perception.images.x_to_rgb__mutmut_4: survived
    emotion_perception.llm.prompt.xǁPromptBuilderǁ__init____mutmut_5: no tests
    emotion_perception.llm.prompt.xǁPromptBuilderǁ__init____mutmut_6: killed
    emotion_perception.llm.prompt.xǁPromptBuilderǁ__init____mutmut_7: not checked
"""


def test_score_counts_caught_missed_equivalent_and_stale_entries(tmp_path):
    listed = tmp_path / "equivalent.txt"
    listed.write_text("# comment\n\n"
                      "emotion_perception.images.x_to_rgb__mutmut_4  # cannot change anything\n"
                      "emotion_perception.llm.prompt.xǁPromptBuilderǁ__init____mutmut_6  # stale: a test kills it\n"
                      "emotion_perception.images.x_gone__mutmut_1  # no such mutant any more\n")
    report = mutation_score.score(RESULTS, mutation_score.read_equivalent(listed))
    assert (report["caught"], report["missed"], report["equivalent"], report["pending"]) == (3, 2, 1, 1)
    assert report["score"] == round(3 / 5, 4)
    assert report["equivalent_but_caught"] == ["emotion_perception.llm.prompt.xǁPromptBuilderǁ__init____mutmut_6"]
    assert report["equivalent_not_found"] == ["emotion_perception.images.x_gone__mutmut_1"]
    images = report["modules"]["emotion_perception.images"]
    assert (images["caught"], images["missed"], images["equivalent"], images["score"]) == (2, 1, 1, round(2 / 3, 4))
    assert images["survivors"] == ["emotion_perception.images.x_to_rgb__mutmut_2: survived"]
    prompt = report["modules"]["emotion_perception.llm.prompt"]
    assert prompt["survivors"] == ["emotion_perception.llm.prompt.xǁPromptBuilderǁ__init____mutmut_5: no tests"]


def test_an_entry_without_a_reason_is_refused(tmp_path):
    listed = tmp_path / "equivalent.txt"
    listed.write_text("emotion_perception.images.x_to_rgb__mutmut_4\n")
    with pytest.raises(SystemExit, match="equivalent.txt:1: give the reason"):
        mutation_score.read_equivalent(listed)
