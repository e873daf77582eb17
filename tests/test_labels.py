"""Canonical labels: one class order, polarity table and valence/arousal everywhere."""
import numpy as np
import pytest

from emotion_perception import labels


def test_canonical_order_is_dfews():
    assert labels.CLASS_NAMES == ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
    assert [c.id for c in labels.CLASSES] == list(range(7))


@pytest.mark.parametrize(
    "name, cid", [("Happy", 0), ("sadness", 1), ("ANGER", 3), ("surprised", 4), (" fear ", 6), ("disgusted", 5)]
)
def test_class_id_accepts_dataset_spellings(name, cid):
    assert labels.class_id(name) == cid


def test_unknown_class_names_the_choices():
    with pytest.raises(ValueError, match="unknown emotion class 'contempt'.*happy, sad"):
        labels.class_id("contempt")
    with pytest.raises(ValueError, match="out of range"):
        labels.class_name(7)


def test_polarity_table_follows_the_ous_paper():
    positive, neutral, negative = 2, 1, 0
    expected = {"happy": positive, "neutral": neutral, "surprise": neutral}
    expected.update({n: negative for n in ("sad", "angry", "disgust", "fear")})
    for name, pol in expected.items():
        assert labels.polarity_target(labels.class_id(name)) == pol


def test_valence_arousal_is_the_probability_weighted_mean():
    one_hot = np.eye(7, dtype=np.float32)
    assert labels.valence_arousal(one_hot[0])[0] > 0.5  # happy is pleasant
    assert labels.valence_arousal(one_hot[1])[0] < -0.5  # sad is unpleasant
    assert labels.valence_arousal(one_hot[2]) == (0.0, 0.0)
    mix = 0.5 * one_hot[0] + 0.5 * one_hot[1]
    v, a = labels.valence_arousal(mix)
    assert v == pytest.approx((labels.CLASSES[0].valence + labels.CLASSES[1].valence) / 2)
    for c in labels.CLASSES:
        assert -1 <= c.valence <= 1 and -1 <= c.arousal <= 1
    with pytest.raises(ValueError, match="expected 7 probabilities"):
        labels.valence_arousal(np.ones(3))
