"""PerceptionEngine details pinned to references: OpenCV's own resize for the crop/scene/detection
images, hand-checked box filtering, config bounds and the counters."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from emotion_perception.engine import EngineConfig, PerceptionEngine
from emotion_perception.engine.core import _resize_into
from emotion_perception.engine.threads import thread_counts
from emotion_perception.types import Box
from test_engine import CPU, FACE, ConvModel, ScriptedDetector, always, frames


@pytest.mark.parametrize("name", ["track_patience_s", "track_memory_s", "face_margin", "detect_max_side", "threads"])
def test_fields_that_may_be_zero_but_not_negative(name):
    assert getattr(EngineConfig(**{name: 0}), name) == 0
    with pytest.raises(ValueError, match=rf"^EngineConfig\.{name} must be >= 0, got -1$"):
        EngineConfig(**{name: -1})


@pytest.mark.parametrize("src_hw, dst_hw, interpolation", [
    ((30, 20), (10, 40), cv2.INTER_AREA),  # fewer rows: area averaging
    ((10, 40), (30, 20), cv2.INTER_AREA),  # fewer columns
    ((12, 16), (30, 40), cv2.INTER_LINEAR),  # larger both ways: bilinear
    ((30, 16), (30, 40), cv2.INTER_LINEAR),  # same rows, more columns
    ((12, 40), (30, 40), cv2.INTER_LINEAR),  # more rows, same columns
])
def test_resize_into_uses_area_when_shrinking_either_side(src_hw, dst_hw, interpolation):
    src = np.random.default_rng(1).integers(0, 256, (*src_hw, 3), dtype=np.uint8)
    dst = np.zeros((*dst_hw, 3), np.uint8)
    _resize_into(src, dst)
    np.testing.assert_array_equal(dst, cv2.resize(src, dst_hw[::-1], interpolation=interpolation))


def test_detection_copy_is_opencvs_area_downscale_of_at_least_one_pixel():
    seen = []

    def script(i, rgb):
        seen.append(rgb)
        return []

    engine = PerceptionEngine(ConvModel(), ScriptedDetector(script), EngineConfig(detect_max_side=10, **CPU))
    wide = np.random.default_rng(2).integers(0, 256, (3, 200, 3), dtype=np.uint8)  # 200x3 -> 10 x round(0.15)
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))
    engine.process(wide)
    engine.process(tall)
    assert seen[0].shape == (1, 10, 3) and seen[1].shape == (10, 1, 3)
    np.testing.assert_array_equal(seen[0], cv2.resize(wide, (10, 1), interpolation=cv2.INTER_AREA))


def test_boxes_under_one_pixel_and_non_finite_detections_are_skipped():
    boxes = [(Box(0, 0, float("inf"), 5), 0.99),  # skipped, and the ones after it still count
             (Box(10, 10, 0.5, 20), 0.9), (Box(40, 10, 20, 0.5), 0.9),  # thinner than a pixel
             (Box(60, 10, 1, 1), 0.8), (Box(70, 40, 30, 30), 0.7)]
    engine = PerceptionEngine(ConvModel(), ScriptedDetector(lambda i, rgb: boxes), EngineConfig(**CPU))
    result = engine.process(frames(1)[0])
    assert sorted((e.box.x, e.box.w) for e in result) == [(60, 1), (70, 30)]


def test_counters_drop_and_reset():
    engine = PerceptionEngine(ConvModel(), always(FACE), EngineConfig(**CPU, threads=0))
    for frame in frames(2):
        engine.process(frame)
    engine.record_drop()
    engine.record_drop(3)
    stats = engine.stats()
    assert (stats["frames"], stats["faces"], stats["dropped"]) == (2, 2, 4)
    assert stats["cuda_streams"] is False and stats["threads"] == thread_counts() and stats["config"]["window"] == 16
    engine.reset_stats()
    stats = engine.stats()
    assert (stats["frames"], stats["faces"], stats["dropped"]) == (0, 0, 0)


def test_construction_errors_and_names():
    with pytest.raises(TypeError, match=r"^detector must have a detect\(rgb\) method, got int$"):
        PerceptionEngine(ConvModel(), 3, EngineConfig(**CPU))

    class Unnamed(ConvModel):
        model_id = ""

    engine = PerceptionEngine(Unnamed(), always(FACE), EngineConfig(**CPU))
    assert engine.model_id == engine.stats()["model_id"] == "Unnamed"
    with pytest.raises(ValueError, match=r"^engine expects a Frame or an HxWx3 uint8 numpy array, got list$"):
        engine.process([[1, 2, 3]])
    engine.reset("a camera never seen")  # nothing to forget, no error
    assert engine.stats()["sources"] == 0
