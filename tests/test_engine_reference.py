"""PerceptionEngine details pinned to references: OpenCV's own resize for the crop/scene/detection
images, hand-checked box filtering, config bounds and the counters."""
from __future__ import annotations

import math
import time

import cv2
import numpy as np
import pytest

from emotion_perception.engine import EngineConfig, PerceptionEngine
from emotion_perception.engine.core import _resize_into
from emotion_perception.engine.threads import thread_counts
from emotion_perception.faces import crop_face
from emotion_perception.types import Box, Detection, Frame
from test_engine import CPU, FACE, ConvModel, MovingFaceRedetector, ScriptedDetector, always, frames, frames_at


@pytest.mark.parametrize("name", ["track_patience_s", "track_memory_s", "face_margin", "detect_max_side",
                                  "detect_interval_s", "threads"])
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


FACE2 = Box(70, 30, 30, 30)
T_S = 1_000_000_000


def _engines(**config):
    """The same model and detector twice: raw probabilities, and smoothed with ``config``."""
    base = {**CPU, "min_hits": 1}
    raw = PerceptionEngine(ConvModel(), always(FACE, FACE2), EngineConfig(**base))
    smoothed = PerceptionEngine(ConvModel(), always(FACE, FACE2), EngineConfig(**{**base, **config}))
    return raw, smoothed


def _at(frame, stamp_ns, source=""):
    return Frame(frame.image, stamp_ns=stamp_ns, source=source)


def _by_id(estimates):
    return {e.face_id: e.probabilities.astype(np.float64) for e in estimates}


def test_ema_smoothing_per_face_over_camera_time():
    raw, smoothed = _engines(smoothing="ema", smoothing_time_s=1.0, smoothing_margin=0.5)
    expected = None
    for frame, t in zip(frames(3), (0.0, 0.5, 1.5)):
        r = _by_id(raw.process(_at(frame, int(t * T_S))))
        s = _by_id(smoothed.process(_at(frame, int(t * T_S))))
        if expected is None:
            expected = r  # the first value is taken as it is
        else:
            alpha = 1 - math.exp(-(t - last_t) / 1.0)
            expected = {k: expected[k] + alpha * (r[k] - expected[k]) for k in r}
        last_t = t
        assert set(s) == {"face_1", "face_2"}
        for k in r:
            np.testing.assert_allclose(s[k], expected[k], atol=1e-6)


def test_hysteresis_smoothing_uses_the_configured_margin():
    raw, smoothed = _engines(smoothing="hysteresis", smoothing_margin=0.4)
    frame = frames(1)[0]
    r, s = _by_id(raw.process(frame)), _by_id(smoothed.process(frame))
    for k, p in r.items():
        held = np.eye(7)[int(np.argmax(p))]
        np.testing.assert_allclose(s[k], (p + 0.4 * held) / 1.4, atol=1e-6)


def test_reset_of_one_camera_forgets_its_smoothing_only():
    raw, smoothed = _engines(smoothing="ema", smoothing_time_s=1.0)
    images = frames(3)
    for engine in (raw, smoothed):
        engine.set_cameras(["a", "b"])
    out = []
    for step, t in enumerate((0.0, 0.5, 1.0)):
        if step == 2:
            raw.reset("a")
            smoothed.reset("a")
        pair = [_at(images[step], int(t * T_S), "a"), _at(images[step], int(t * T_S), "b")]
        out.append(([_by_id(e) for e in raw.process_batch(pair)], [_by_id(e) for e in smoothed.process_batch(pair)]))
    (raw_a, raw_b), (smooth_a, smooth_b) = out[2]
    assert set(raw_a) == {"cam0_face_1", "cam0_face_2"} and set(raw_b) == {"cam1_face_1", "cam1_face_2"}
    for k in raw_a:  # camera a starts afresh: the smoothed value is the raw one
        np.testing.assert_allclose(smooth_a[k], raw_a[k], atol=1e-6)
    before_b = out[1][1][1]  # camera b keeps its average
    alpha = 1 - math.exp(-0.5)
    for k in raw_b:
        np.testing.assert_allclose(smooth_b[k], before_b[k] + alpha * (raw_b[k] - before_b[k]), atol=1e-6)


def test_a_face_back_after_expiry_keeps_its_id_but_starts_a_fresh_average():
    script = {0: [FACE], 1: [], 2: [], 3: [FACE]}
    engines = [PerceptionEngine(ConvModel(), ScriptedDetector(lambda i, rgb: [(b, 0.9) for b in script[i]]),
                                EngineConfig(**{**CPU, "smoothing": kind, "smoothing_time_s": 1.0}))
               for kind in ("none", "ema")]
    images = frames(4)
    results = []
    for step, t in enumerate((0.0, 0.5, 1.6, 2.0)):  # gone 1.6 s > patience 1 s: expired, back within memory
        results.append([engine.process(_at(images[step], int(t * T_S))) for engine in engines])
    (raw_first,), (smoothed_first,) = results[0]
    (raw_back,), (smoothed_back,) = results[3]
    assert raw_first.face_id == raw_back.face_id == smoothed_back.face_id == "face_1"
    np.testing.assert_allclose(smoothed_back.probabilities, raw_back.probabilities, atol=1e-6)


def test_patience_is_camera_seconds_from_the_stamps():
    """A face missed for exactly patience_s keeps its window; 1 ns more and it is gone."""
    for gap_ns, kept in ((T_S, 1), (T_S + 1, 0)):
        script = {0: [FACE], 1: []}
        engine = PerceptionEngine(ConvModel(), ScriptedDetector(lambda i, rgb: [(b, 0.9) for b in script[i]]),
                                  EngineConfig(**CPU, track_patience_s=1.0))
        images = frames(2)
        engine.process(_at(images[0], 0))
        engine.process(_at(images[1], gap_ns))
        assert len(engine.buffers) == kept, gap_ns


def test_the_model_sees_the_configured_crop():
    class Recording(ConvModel):
        def encode_faces(self, pixels):
            self.seen = pixels.clone()
            return super().encode_faces(pixels)

    model = Recording()
    box = Box(30, 20, 40, 24)  # not square
    config = EngineConfig(**CPU, face_margin=0.1, face_square=True, face_shift=0.2)
    engine = PerceptionEngine(model, always(box), config)
    frame = frames(1)[0]
    engine.process(frame)
    want = np.zeros((32, 32, 3), np.uint8)
    _resize_into(crop_face(frame.image, box, 0.1, True, 0.2), want)
    np.testing.assert_array_equal(model.seen[0].numpy(), want)


def test_stage_timings_are_milliseconds():
    def slow(i, rgb):
        time.sleep(0.03)
        return [(FACE, 0.9)]

    engine = PerceptionEngine(ConvModel(), ScriptedDetector(slow), EngineConfig(**CPU))
    (est,) = engine.process(frames(1)[0])
    t = est.timings_ms
    assert 25 <= t["detect"] < 5_000
    assert 0.001 <= t["crop"] < 5_000  # some microseconds of cropping at least
    assert t["detect"] <= t["total"] < 10_000
    assert est.polarity_probabilities.dtype == np.float32 and est.probabilities.dtype == np.float32


def test_bf16_autocast_on_the_cpu_stays_close_to_fp32():
    frame = frames(1)[0]
    (fp32,) = PerceptionEngine(ConvModel(), always(FACE), EngineConfig(**CPU)).process(frame)
    (bf16,) = PerceptionEngine(ConvModel(), always(FACE), EngineConfig(**CPU, precision="bf16")).process(frame)
    np.testing.assert_allclose(bf16.probabilities, fp32.probabilities, atol=0.05)


def test_smoothing_settings_are_checked_with_the_config():
    with pytest.raises(ValueError, match=r"smoothing time_s must be > 0 and margin >= 0, got 0.0, 0.15"):
        EngineConfig(smoothing_time_s=0.0)
    with pytest.raises(ValueError, match=r"^EngineConfig\.smoothing_margin must be >= 0, got -0.1$"):  # the table's range
        EngineConfig(smoothing_margin=-0.1)


class _SeeingRedetector(MovingFaceRedetector):
    """Also records the image it is given (the re-detector must look at the frame)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.images = []

    def redetect(self, rgb, boxes):
        self.images.append(rgb)
        return super().redetect(rgb, boxes)


def test_searches_are_counted_and_re_detection_looks_at_the_frame():
    redetector = _SeeingRedetector(lose_on={7})
    engine = PerceptionEngine(ConvModel(), always(FACE), EngineConfig(detect_interval_s=0.25, **CPU), redetector)
    images = frames_at(20, 16)
    for i, frame in enumerate(images):
        redetector.frame = i
        engine.process(frame)
    assert engine.stats()["searches"] == 4  # frames 0, 5, 8 (the face lost on 7) and 13
    assert redetector.images and all(img.shape == images[0].image.shape for img in redetector.images)
    engine.reset_stats()
    assert engine.stats()["searches"] == 0


def test_a_detector_that_can_re_detect_is_its_own_re_detector():
    class Both(MovingFaceRedetector):
        calls = 0

        def detect(self, rgb):
            self.calls += 1
            return [Detection(FACE, 0.9)]

    both = Both()
    engine = PerceptionEngine(ConvModel(), both, EngineConfig(detect_interval_s=0.25, **CPU))
    for i, frame in enumerate(frames_at(20, 6)):
        both.frame = i
        engine.process(frame)
    assert both.calls == 2 and len(both.asked) == 4  # searched frames 0 and 5, followed 1-4


def test_searches_of_several_cameras_in_one_call_add_up():
    engine = PerceptionEngine(ConvModel(), always(FACE), EngineConfig(detect_interval_s=0.25, **CPU),
                              MovingFaceRedetector())
    pair = frames(2)
    engine.process_batch([_at(pair[0], 0, "a"), _at(pair[1], 0, "b")])  # each camera's first frame: a search
    assert engine.stats()["searches"] == 2
