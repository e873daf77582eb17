"""draw_estimates: the debug image and the annotated videos."""
from __future__ import annotations

import numpy as np

from emotion_perception.types import Box, EmotionEstimate
from emotion_perception.visualize import CLASS_COLOURS, draw_estimates


def test_draws_boxes_labels_and_scene_polarity(astronaut):
    rgb = astronaut[:256, :256].copy()
    before = rgb.copy()
    probs = np.array([0.1, 0.7, 0.05, 0.05, 0.05, 0.025, 0.025], np.float32)  # sad
    est = EmotionEstimate("face_1", Box(60, 40, 100, 120), probs, 8, "m",
                          polarity_probabilities=np.array([0.8, 0.1, 0.1], np.float32))
    out = draw_estimates(rgb, [est])
    assert np.array_equal(rgb, before), "the input is not modified"
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert tuple(out[100, 60]) == CLASS_COLOURS[1]  # left edge of the box in the class colour
    assert np.array_equal(out[100:140, 90:130], rgb[100:140, 90:130])  # the face itself untouched
    assert np.any(out[-20:, :120] != rgb[-20:, :120])  # scene polarity label at the bottom left
    assert np.any(out[:40, 60:200] != rgb[:40, 60:200])  # class label above the box


def test_the_person_id_follows_the_face_id_in_the_label(astronaut):
    rgb = astronaut[:256, :256].copy()
    probs = np.eye(7, dtype=np.float32)[2]
    anonymous = draw_estimates(rgb, [EmotionEstimate("face_1", Box(20, 60, 60, 60), probs, 8, "m")])
    named = draw_estimates(rgb, [EmotionEstimate("face_1", Box(20, 60, 60, 60), probs, 8, "m", person_id="person_12")])
    differ = np.argwhere(np.any(anonymous != named, axis=2))
    assert differ.size and differ[:, 0].max() < 60  # only in the label above the box...
    assert differ[:, 1].min() > 20 + 40  # ...after "neutral 1.00 #face_1"


def test_no_faces_no_polarity_is_unchanged(astronaut):
    rgb = astronaut[:64, :64].copy()
    assert np.array_equal(draw_estimates(rgb, []), rgb)
    # a box partly outside the image is clipped, not an error
    est = EmotionEstimate("x", Box(-20, -20, 200, 200), np.eye(7, dtype=np.float32)[0], 1, "m")
    assert draw_estimates(rgb, [est]).shape == rgb.shape
