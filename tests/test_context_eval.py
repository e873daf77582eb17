"""What the LLM hears in `eval`: a run's results replayed through the bridge's context tracker,
and the node's context configuration read from its parameters file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotion_perception.evaluation.context_eval import load_context_config, replay_results
from emotion_perception.evaluation.labels_file import LabelRange, Labels
from emotion_perception.evaluation.results import FrameResult, Results
from emotion_perception.labels import class_id
from emotion_perception.llm.context import ContextConfig
from emotion_perception.types import Box, EmotionEstimate

CONFIG = Path(__file__).resolve().parents[1] / "ros2_ws/src/emotion_perception/config/llm_bridge.yaml"
HAPPY, NEUTRAL = class_id("happy"), class_id("neutral")


def test_the_node_parameters_file_gives_the_node_defaults_and_overrides_are_typed():
    assert load_context_config(CONFIG) == ContextConfig() == load_context_config()
    cfg = load_context_config(CONFIG, ["smoothing_s=0.25", "max_people=2", "addressee=most_confident"])
    assert (cfg.smoothing_s, cfg.max_people, cfg.addressee) == (0.25, 2, "most_confident")
    with pytest.raises(ValueError, match="expected NAME=VALUE with NAME one of smoothing_s, max_age_s"):
        load_context_config(None, ["smoothing=1"])
    with pytest.raises(ValueError, match="max_people takes a int"):
        load_context_config(None, ["max_people=two"])


def test_unknown_names_in_a_parameters_file_are_refused(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("/**/llm_bridge:\n  ros__parameters:\n    context:\n      smoothing_s: 0.3\n      hold: 1\n")
    with pytest.raises(ValueError, match="unknown context parameters: context.hold"):
        load_context_config(path)


def frame(i: int, faces: list[tuple[str, str, float, int]], fps: float = 10.0) -> FrameResult:
    """faces: (face id, person id, box side, class)"""
    out = []
    for face, person, side, cid in faces:
        p = np.full(7, 0.01, np.float32)
        p[cid] = 0.94
        out.append(EmotionEstimate(face, Box(0, 0, side, side), p, 1, "m", stamp_ns=int(i * 1e9 / fps),
                                   person_id=person))
    return FrameResult(i, int(i * 1e9 / fps), estimates=out)


def test_eval_scores_the_main_face_and_named_tracks_through_the_tracker():
    # frames 0-5: the main face (big, person_1) neutral and a small face_b happy; frames 2-3 lose the
    # small face (labelled by id, so: the context still holds it within max_age); frame 4 the main face
    # is replaced by a new face without a person id, still labelled neutral for the main face
    frames = [frame(i, [("a", "person_1", 100, NEUTRAL)] + ([("b", "", 20, HAPPY)] if i not in (2, 3) else []))
              for i in range(4)]
    frames += [frame(4, [("c", "", 100, NEUTRAL), ("b", "", 20, HAPPY)])]
    results = Results(frames)
    labels = Labels((LabelRange(0, 5, NEUTRAL), LabelRange(0, 5, HAPPY, "b")))
    score = replay_results(results, labels, ContextConfig(smoothing_s=0.0)).to_dict()
    assert score["context_samples"] == 10 and score["context_accuracy"] == 1.0
    # head count: 2 labelled faces; the context sees 2 in frames 0-3 and 3 in frame 4 (a is still in view)
    assert score["count_accuracy"] == pytest.approx(4 / 5)
    assert score["context_delay_s"]["changes"] == 0
