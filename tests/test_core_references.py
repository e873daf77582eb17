"""Core behaviours pinned to values worked out by hand, over sequences rather than one instant:
inputs chosen so that a plausible one-line bug (swapped weights, a timer not restarted, an
unsorted scan, a reset of every camera) changes the result."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from emotion_perception.engine import EngineConfig, PerceptionEngine
from emotion_perception.evaluation.labels_file import LabelsError, load_labels
from emotion_perception.labels import CLASS_NAMES, class_id
from emotion_perception.llm.context import ContextConfig, EmotionContextTracker
from emotion_perception.models.base import HeadOutput
from emotion_perception.models.losses import (
    AlphaSwitchCriterion,
    contrastive_loss,
    criterion_for,
    polarity_targets_from_labels,
    similarity_loss,
)
from emotion_perception.types import Box, EmotionEstimate
from test_engine import CPU, FACE, ConvModel, always, frames

# --- OUS losses and the α switch ----------------------------------------------------------------


def output_with_loss(target_prob: float, batch: int = 2) -> HeadOutput:
    """A head output whose contrastive loss is exactly -log(target_prob) for class 0 targets."""
    rest = (1.0 - target_prob) / 6
    logits = torch.log(torch.tensor([target_prob] + [rest] * 6)).repeat(batch, 1)
    face = torch.tensor([[1.0, 0.0]]).repeat(batch, 1)
    scene = torch.tensor([[0.0, 1.0]]).repeat(batch, 1)
    return HeadOutput(logits, torch.zeros(batch, 3), {"face": face, "scene": scene})


def test_loss_terms_match_their_definitions():
    targets = torch.zeros(2, dtype=torch.long)
    assert contrastive_loss(torch.zeros(2, 7), targets).item() == pytest.approx(math.log(7))
    assert contrastive_loss(output_with_loss(0.25).logits, targets).item() == pytest.approx(-math.log(0.25))
    face = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    scene = torch.tensor([[0.0, 1.0], [3.0, 3.0]])  # cos 0 and cos 45°
    assert similarity_loss(face, scene).item() == pytest.approx((1.0 + (1 - 1 / math.sqrt(2))) / 2)


def test_polarity_targets_follow_the_class_table():
    # negative 0, neutral 1, positive 2 (labels.POLARITIES)
    expected = {"happy": 2, "sad": 0, "neutral": 1, "angry": 0, "surprise": 1, "disgust": 0, "fear": 0}
    got = polarity_targets_from_labels(torch.tensor([class_id(n) for n in CLASS_NAMES])).tolist()
    assert dict(zip(CLASS_NAMES, got)) == expected


def test_alpha_switch_uses_the_moving_average_from_before_each_batch():
    """momentum 0.8 (asymmetric): running = 0.8 * running + 0.2 * loss, decided before the update."""
    criterion = AlphaSwitchCriterion(alpha=1.5, momentum=0.8)
    targets = torch.zeros(2, dtype=torch.long)
    high, low = -math.log(0.1), -math.log(0.9)  # 2.3026, 0.1054
    expected_running, running, flags = [], None, []
    for loss in (high, low, low, low, low):
        _, parts = criterion(output_with_loss(math.exp(-loss)), targets)
        flags.append(parts["full"])
        running = loss if running is None else 0.8 * running + 0.2 * loss
        expected_running.append(running)
        assert criterion.running == pytest.approx(running, rel=1e-6)
    # running: 2.303, 1.863, 1.511, 1.230, 1.005 -> the 4th batch (decided on 1.511) is still full
    assert flags == [1.0, 1.0, 1.0, 1.0, 0.0]
    assert expected_running[2] > 1.5 > expected_running[3]


def test_alpha_switch_full_loss_is_the_sum_and_validation_does_not_update():
    criterion = AlphaSwitchCriterion(alpha=1.0, momentum=0.5)
    out = output_with_loss(0.5)
    total, parts = criterion(out, torch.zeros(2, dtype=torch.long))
    assert parts["similarity"] == pytest.approx(1.0)  # face ⟂ scene
    assert parts["polarity"] == pytest.approx(math.log(3))  # uniform over 3 polarities
    assert total.item() == pytest.approx(parts["contrastive"] + parts["similarity"] + parts["polarity"])
    before = criterion.running
    criterion(output_with_loss(0.01), torch.zeros(2, dtype=torch.long), update=False)
    assert criterion.running == before == pytest.approx(math.log(2))
    criterion.running = 0.9  # below α: the contrastive term alone, no OUS-only outputs needed
    total, parts = criterion(HeadOutput(out.logits), torch.zeros(2, dtype=torch.long))
    assert parts["full"] == 0.0 and "similarity" not in parts and total.item() == pytest.approx(math.log(2))


def test_similarity_is_taken_along_the_feature_axis_of_any_batch_shape():
    face = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # [batch 1, time 2, features 2]
    scene = torch.tensor([[[2.0, 1.0], [4.0, 3.0]]])  # cos 4/5 and 24/25 along the features
    assert similarity_loss(face, scene).item() == pytest.approx((0.2 + 0.04) / 2)


def test_polarity_targets_stay_on_the_labels_device():
    assert polarity_targets_from_labels(torch.zeros(3, dtype=torch.long, device="meta")).device.type == "meta"


def test_duse_criterion_is_the_contrastive_loss_alone():
    criterion = criterion_for("duse", {"alpha": 0.1})
    loss, parts = criterion(output_with_loss(0.25), torch.zeros(2, dtype=torch.long))
    assert loss.item() == pytest.approx(-math.log(0.25)) and parts == {"contrastive": pytest.approx(-math.log(0.25))}


def test_criterion_configuration_and_its_errors():
    default = criterion_for("ous")
    assert (default.alpha, default.momentum) == (1.0, 0.9)
    configured = criterion_for("ous", {"alpha": 3.0, "alpha_momentum": 0.7})
    assert (configured.alpha, configured.momentum) == (3.0, 0.7)
    with pytest.raises(ValueError, match=r"^no training criterion for model kind 'vit'$"):
        criterion_for("vit")
    assert AlphaSwitchCriterion(alpha=1.0, momentum=0.0).momentum == 0.0  # plain last-batch value
    for momentum in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"^momentum must be in \[0, 1\), got {momentum}$"):
            AlphaSwitchCriterion(alpha=1.0, momentum=momentum)
    full = output_with_loss(0.5)
    message = r"^the α switch needs polarity logits and aux\['face'\], aux\['scene'\] from an OUS head$"
    for out in (HeadOutput(full.logits, None, full.aux),
                HeadOutput(full.logits, full.polarity_logits, {"scene": full.aux["scene"]}),
                HeadOutput(full.logits, full.polarity_logits, {"face": full.aux["face"]})):
        with pytest.raises(ValueError, match=message):
            AlphaSwitchCriterion(alpha=1.0)(out, torch.zeros(2, dtype=torch.long))


# --- LLM context hysteresis over time -------------------------------------------------------------

S = 1_000_000_000  # ns per second


def leaning(class_name: str, p: float = 0.8) -> np.ndarray:
    probs = np.full(7, (1 - p) / 6)
    probs[class_id(class_name)] = p
    return probs


def reported_over_time(sequence, **config) -> list[str]:
    tracker = EmotionContextTracker(ContextConfig(smoothing_s=0.0, switch_margin=0.15, switch_hold_s=0.5, **config))
    out = []
    for t, name in sequence:
        stamp = int(t * S)
        tracker.update([EmotionEstimate("f", Box(0, 0, 10, 10), leaning(name), 1, "m", stamp_ns=stamp)])
        out.append(tracker.context(stamp).class_name)
    return out


def test_hold_timer_restarts_when_the_challenger_loses_its_lead():
    # sad leads at 0.1, loses the lead at 0.3, leads again from 0.5: it must hold until 1.0
    seq = [(0.0, "happy"), (0.1, "sad"), (0.3, "happy"), (0.5, "sad"), (0.7, "sad"), (0.9, "sad"), (1.0, "sad")]
    assert reported_over_time(seq) == ["happy"] * 6 + ["sad"]


def test_hold_timer_restarts_when_a_different_class_takes_the_lead():
    seq = [(0.0, "happy"), (0.1, "sad"), (0.4, "angry"), (0.8, "angry"), (0.9, "angry")]
    assert reported_over_time(seq) == ["happy", "happy", "happy", "happy", "angry"]


def test_a_lead_smaller_than_the_margin_never_switches():
    probs_sad = np.full(7, 0.0)
    probs_sad[class_id("happy")], probs_sad[class_id("sad")] = 0.45, 0.55  # lead 0.10 < 0.15
    tracker = EmotionContextTracker(ContextConfig(smoothing_s=0.0, switch_margin=0.15, switch_hold_s=0.5))
    tracker.update([EmotionEstimate("f", Box(0, 0, 10, 10), leaning("happy"), 1, "m", stamp_ns=1)])
    for t in (1, 2, 3):
        tracker.update([EmotionEstimate("f", Box(0, 0, 10, 10), probs_sad, 1, "m", stamp_ns=t * S)])
    assert tracker.context(3 * S).class_name == "happy"


def test_smoothing_weights_by_elapsed_time():
    tracker = EmotionContextTracker(ContextConfig(smoothing_s=1.0, switch_hold_s=0.0, switch_margin=0.0))
    tracker.update([EmotionEstimate("f", Box(0, 0, 10, 10), leaning("happy", 1.0), 1, "m", stamp_ns=S)])
    tracker.update([EmotionEstimate("f", Box(0, 0, 10, 10), leaning("sad", 1.0), 1, "m", stamp_ns=2 * S)])
    # after 1 s with τ = 1 s the new estimate weighs 1 - e^-1 = 0.632
    ctx = tracker.context(2 * S)
    assert ctx.class_name == "sad" and ctx.confidence == pytest.approx(1 - math.exp(-1), abs=1e-6)


# --- labels files: order and case -----------------------------------------------------------------


def test_unsorted_ranges_and_a_capitalised_header(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("Start,End,Label,Face_ID\n50,60,Sad\n0,10,HAPPY\n20,30,neutral,2\n")
    labels = load_labels(path)
    assert labels.target(5, 0.0) == class_id("happy")
    assert labels.target(55, 0.0) == class_id("sad")
    assert labels.target(25, 0.0, "2") == class_id("neutral") and labels.target(25, 0.0) is None


def test_overlap_is_found_whatever_the_order_of_the_lines(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("40,50,sad\n0,10,happy\n45,70,neutral\n")  # line 1 and line 3 overlap
    with pytest.raises(LabelsError, match=r"overlapping ranges for the main face: line 1 \[40, 50\) sad and line 3"):
        load_labels(path)


# --- several cameras ---------------------------------------------------------------------------------


def test_reset_of_one_camera_keeps_the_other_cameras_tracks():
    engine = PerceptionEngine(ConvModel(), always(FACE), EngineConfig(window=8, **CPU))
    for a, b in zip(frames(3, "a"), frames(3, "b", seed=1)):
        engine.process_batch([a, b])
    engine.reset("a")
    assert engine.stats()["sources"] == 1
    [a_next], [b_next] = engine.process_batch([frames(4, "a")[3], frames(4, "b", seed=1)[3]])
    assert a_next.frames_used == 1  # camera a starts a fresh window
    assert b_next.frames_used == 4  # camera b kept its three frames


# --- context configuration limits, at their edges ----------------------------------------------------


@pytest.mark.parametrize(
    "edge", [dict(min_confidence=0.0), dict(min_confidence=1.0), dict(switch_margin=0.0), dict(addressee_ratio=1.0),
             dict(smoothing_s=0.0, max_age_s=0.0, switch_hold_s=0.0)],
)
def test_context_limits_accept_their_edges(edge):
    assert ContextConfig(**edge)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(smoothing_s=-0.1), "smoothing_s must be >= 0, got -0.1"),
        (dict(max_age_s=-1.0), "max_age_s must be >= 0, got -1.0"),
        (dict(switch_hold_s=-0.5), "switch_hold_s must be >= 0, got -0.5"),
        (dict(min_confidence=-0.01), "need 0 <= min_confidence <= 1, switch_margin >= 0, addressee_ratio >= 1"),
        (dict(min_confidence=1.01), "need 0 <= min_confidence <= 1"),
        (dict(switch_margin=-0.01), "need 0 <= min_confidence <= 1"),
        (dict(addressee_ratio=0.99), "need 0 <= min_confidence <= 1"),
        (dict(addressee="loudest"), "addressee policy 'loudest' unknown"),
    ],
)
def test_context_limits_refuse_with_the_reason(bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ContextConfig(**bad)


# --- context arithmetic at exact, binary-representable boundaries -------------------------------------


def estimate(probs, stamp_s, face="f", box=Box(0, 0, 10, 10), polarity=None):
    return EmotionEstimate(face, box, np.asarray(probs, float), 1, "m", stamp_ns=int(stamp_s * S),
                           polarity_probabilities=None if polarity is None else np.asarray(polarity, float))


def test_probabilities_are_normalised_and_smoothed_with_the_time_constant():
    tracker = EmotionContextTracker(ContextConfig(smoothing_s=2.0, switch_margin=0.0, switch_hold_s=0.0))
    tracker.update([estimate([2, 0, 0, 0, 0, 0, 0], 1.0)])  # sums to 2: normalised to happy 1.0
    assert tracker.context(S).confidence == 1.0
    tracker.update([estimate(leaning("sad", 1.0), 2.0)])
    # dt 1 s, τ 2 s: the new estimate weighs 1 - e^(-1/2)
    assert tracker.context(2 * S).confidence == pytest.approx(math.exp(-0.5), abs=1e-6)  # float32 on output


def test_a_repeated_stamp_adds_nothing_and_an_earlier_one_starts_over():
    tracker = EmotionContextTracker(ContextConfig(smoothing_s=1.0))
    tracker.update([estimate(leaning("happy", 1.0), 1.0)])
    tracker.update([estimate(leaning("sad", 1.0), 1.0)])  # dt = 0: weight 0
    assert tracker.context(S).class_name == "happy" and tracker.context(S).confidence == 1.0
    tracker.update([estimate(leaning("sad", 1.0), 0.5)])  # time went backwards (a bag loop)
    assert tracker.context(S).class_name == "sad"


def test_scene_polarity_is_smoothed_like_the_classes():
    tracker = EmotionContextTracker(ContextConfig(smoothing_s=1.0))
    tracker.update([estimate(leaning("happy"), 1.0, polarity=[0, 0, 2])])  # normalised to positive
    assert tracker.context(S).polarity == "positive"
    tracker.update([estimate(leaning("happy"), 2.0, polarity=[1, 0, 0])])  # 0.632 negative, 0.368 positive
    assert tracker.context(2 * S).polarity == "negative"
    tracker.update([estimate(leaning("happy"), 2.5, polarity=[0, 0, 1])])  # +0.393 of positive
    # 0.607 * (0.632, 0, 0.368) + 0.393 * (0, 0, 1) = (0.384, 0, 0.616)
    assert tracker.context(int(2.5 * S)).polarity == "positive"
    tracker.update([estimate(leaning("happy"), 2.6)])  # no polarity this time: the old one stays
    assert tracker.context(int(2.6 * S)).polarity == "positive"


def test_switch_margin_and_confidence_and_expiry_are_inclusive_limits():
    tracker = EmotionContextTracker(
        ContextConfig(smoothing_s=0.0, switch_margin=0.25, switch_hold_s=0.0, min_confidence=0.5, max_age_s=2.0)
    )
    tracker.update([estimate(leaning("happy", 1.0), 1.0)])
    tracker.update([estimate([0.25, 0.5, 0.0625, 0.0625, 0.0625, 0.0625, 0.0], 1.5)])  # sad leads by 0.25
    assert tracker.context(int(1.5 * S)).class_name == "sad"
    tracker.update([estimate([1, 1, 0, 0, 0, 0, 0], 1.6)])  # happy and sad tie at 0.5: stays sad
    ctx = tracker.context(int(1.6 * S))
    assert (ctx.class_name, ctx.confidence, ctx.state) == ("sad", 0.5, "emotion")
    assert tracker.context(int(3.6 * S)).state == "emotion"  # exactly max_age_s later: still there
    assert tracker.context(int(3.6 * S) + 1).state == "nobody"


def test_addressee_keeps_the_floor_up_to_the_ratio_inclusive():
    tracker = EmotionContextTracker(ContextConfig(addressee_ratio=1.5))
    tracker.update([estimate(leaning("happy"), 1.0, "a", Box(0, 0, 10, 10))])
    assert tracker.context(S).face_id == "a"
    tracker.update([estimate(leaning("sad"), 1.0, "b", Box(0, 0, 10, 15))])  # 150 = 1.5 x 100
    assert tracker.context(S).face_id == "a"
    tracker.update([estimate(leaning("sad"), 1.1, "b", Box(0, 0, 10, 16))])  # 160 > 150
    assert tracker.context(int(1.1 * S)).face_id == "b"


def test_valence_arousal_and_count_reach_the_template():
    config = ContextConfig(template="{who}|{count}|{valence:.3f}|{arousal:.3f}|{face_id}|{scene}",
                           several_people="{count} people")
    tracker = EmotionContextTracker(config)
    tracker.update([estimate(leaning("happy", 1.0), 1.0, "a", Box(0, 0, 20, 20), polarity=[0, 0, 1]),
                    estimate(leaning("sad", 1.0), 1.0, "b")])
    from emotion_perception.labels import valence_arousal

    v, a = valence_arousal(leaning("happy", 1.0).astype(np.float32))
    assert tracker.context(S).sentence == f"2 people|2|{v:.3f}|{a:.3f}|a|; the scene seems positive"
