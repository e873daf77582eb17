"""The streaming engine: ring buffers, scene cadence, batching, tracks, worker, parity with clips."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from emotion_perception.engine import EngineConfig, LatestFrameWorker, PerceptionEngine
from emotion_perception.engine.buffers import WindowBuffers
from emotion_perception.engine.device import Staging, Streams
from emotion_perception.faces import crop_face
from emotion_perception.models.base import EmotionModel, HeadOutput, masked_mean, normalize_pixels
from emotion_perception.types import Box, Detection, Frame

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


class ConvModel(EmotionModel):
    """A tiny real scene-aware model whose head depends on frame order, counting its encoder calls."""

    model_id = "test-conv"
    uses_scene = True
    face_size = 32
    scene_size = 40

    def __init__(self, dim: int = 12):
        super().__init__()
        torch.manual_seed(0)
        self.face_net = nn.Sequential(nn.Conv2d(3, dim, 4, 4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.scene_net = nn.Sequential(nn.Conv2d(3, dim, 5, 5), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.cls = nn.Linear(3 * dim, 7)
        self.pol = nn.Linear(dim, 3)
        self.face_batches: list[int] = []
        self.scene_batches: list[int] = []

    def encode_faces(self, pixels):
        self.face_batches.append(pixels.shape[0])
        return self.face_net(normalize_pixels(pixels, MEAN, STD))

    def encode_scenes(self, pixels):
        self.scene_batches.append(pixels.shape[0])
        return self.scene_net(normalize_pixels(pixels, MEAN, STD))

    def forward_window(self, faces, face_mask, scenes=None, scene_mask=None):
        # position-weighted mean: a window in the wrong order gives a different answer
        t = faces.shape[1]
        weights = torch.arange(1, t + 1, dtype=faces.dtype, device=faces.device).view(1, t, 1)
        ordered = masked_mean(faces * weights, face_mask)
        scene = masked_mean(scenes, scene_mask)
        logits = self.cls(torch.cat([masked_mean(faces, face_mask), ordered, scene], dim=1))
        return HeadOutput(logits, self.pol(scene))


class FaceOnlyModel(ConvModel):
    model_id = "test-face-only"
    uses_scene = False

    def forward_window(self, faces, face_mask, scenes=None, scene_mask=None):
        assert scenes is None and scene_mask is None
        mean = masked_mean(faces, face_mask)
        return HeadOutput(self.cls(torch.cat([mean, mean, mean], dim=1)))


class ScriptedDetector:
    """Test double: returns the boxes a script gives for each call (a list per frame, or a function)."""

    def __init__(self, script):
        self.script = script
        self.calls = 0

    def detect(self, rgb):
        boxes = self.script(self.calls, rgb) if callable(self.script) else self.script[self.calls]
        self.calls += 1
        return [Detection(box, score) for box, score in boxes]


def always(*boxes):
    return ScriptedDetector(lambda i, rgb: [(b, 0.9) for b in boxes])


def frames(n, source="", seed=0, size=(96, 128)):
    rng = np.random.default_rng(seed)
    return [Frame(rng.integers(0, 256, (*size, 3), dtype=np.uint8), stamp_ns=i, source=source) for i in range(n)]


FACE = Box(20, 16, 40, 40)
CPU = dict(device="cpu", min_hits=1, smoothing="none")  # engine mechanics; defaults are tested apart


def test_windows_grow_to_window_then_stop():
    engine = PerceptionEngine(ConvModel(), always(FACE), EngineConfig(window=4, **CPU))
    used = [engine.process(f)[0].frames_used for f in frames(7)]
    assert used == [1, 2, 3, 4, 4, 4, 4]
    assert len(engine.buffers) == 1


def test_estimate_fields():
    engine = PerceptionEngine(ConvModel(), always(FACE), EngineConfig(window=4, **CPU))
    frame = Frame(frames(1)[0].image, stamp_ns=123, frame_id="head_cam", source="cam0")
    (est,) = engine.process(frame)
    assert est.face_id and est.box == FACE and est.model_id == "test-conv"
    assert (est.stamp_ns, est.frame_id, est.source) == (123, "head_cam", "cam0")
    assert est.probabilities.dtype == np.float32 and est.probabilities.shape == (7,)
    assert est.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert est.polarity_probabilities.shape == (3,) and est.polarity_probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert {"detect", "crop", "encode_face", "encode_scene", "head", "total"} <= set(est.timings_ms)


def test_face_only_model_never_encodes_scenes():
    model = FaceOnlyModel()
    engine = PerceptionEngine(model, always(FACE), EngineConfig(**CPU))
    for f in frames(3):
        (est,) = engine.process(f)
    assert est.polarity_probabilities is None and model.scene_batches == []


def test_scene_encoded_every_k_frames_even_without_faces():
    model = ConvModel()
    # faces only on frames 0-2; the scene cadence goes on regardless
    det = ScriptedDetector(lambda i, rgb: [(FACE, 0.9)] if i < 3 else [])
    engine = PerceptionEngine(model, det, EngineConfig(scene_interval=3, **CPU))
    results = [engine.process(f) for f in frames(8)]
    assert [len(r) for r in results] == [1, 1, 1, 0, 0, 0, 0, 0]
    assert model.scene_batches == [1, 1, 1]  # frames 0, 3, 6
    assert engine.stats()["latency_ms"]["encode_scene"]["n"] == 3


def test_all_faces_of_a_frame_in_one_encoder_batch():
    model = ConvModel()
    boxes = [Box(2, 2, 30, 30), Box(60, 4, 30, 30), Box(30, 50, 30, 30)]
    engine = PerceptionEngine(model, always(*boxes), EngineConfig(**CPU))
    for f in frames(3):
        assert len(engine.process(f)) == 3
    assert model.face_batches == [3, 3, 3]


def test_process_batch_encodes_all_cameras_together_and_keeps_tracks_per_source():
    model = ConvModel()
    det = ScriptedDetector(lambda i, rgb: [(FACE, 0.9), (Box(70, 40, 30, 30), 0.8)] if i % 2 == 0 else [(FACE, 0.9)])
    engine = PerceptionEngine(model, det, EngineConfig(scene_interval=2, **CPU))
    for a, b in zip(frames(5, "left"), frames(5, "right", seed=1)):
        left, right = engine.process_batch([a, b])
        assert len(left) == 2 and len(right) == 1
        assert {e.source for e in left} == {"left"} and {e.source for e in right} == {"right"}
    assert model.face_batches == [3] * 5  # one batch per call, both cameras
    assert model.scene_batches == [2, 2, 2]  # both scenes together, every 2nd frame
    assert sorted(k[0] for k in engine.buffers.keys()) == ["left", "left", "right"]
    assert right[0].frames_used == 5 and left[0].frames_used == 5
    with pytest.raises(ValueError, match="one frame per source"):
        engine.process_batch(frames(2, "left"))


def test_two_sources_same_box_are_different_tracks():
    engine = PerceptionEngine(ConvModel(), always(FACE), EngineConfig(**CPU))
    for f in frames(3, "a"):
        engine.process(f)
    (est,) = engine.process(frames(1, "b")[0])
    assert est.frames_used == 1  # b's face does not continue a's window
    assert len(engine.buffers) == 2 and engine.stats()["sources"] == 2


def test_face_ids_carry_the_camera_index_once_several_cameras_are_declared():
    engine = PerceptionEngine(ConvModel(), always(FACE), EngineConfig(**CPU))
    (alone,) = engine.process(frames(1, "left")[0])
    assert alone.face_id == "face_1"  # one camera: plain ids
    engine.set_cameras(["left", "right"])
    for a, b in zip(frames(3, "left"), frames(3, "right", seed=1)):
        left, right = engine.process_batch([b, a])[::-1]  # batch order does not pick the index
    assert (left[0].face_id, right[0].face_id) == ("cam0_face_1", "cam1_face_1")
    assert left[0].frames_used == 3  # set_cameras started the tracks afresh
    (third,) = engine.process(frames(1, "extra")[0])
    assert third.face_id == "cam2_face_1"  # an undeclared camera takes the next index
    with pytest.raises(ValueError, match="distinct"):
        engine.set_cameras(["a", "a"])


def test_undeclared_second_camera_still_gets_distinct_ids():
    engine = PerceptionEngine(ConvModel(), always(FACE), EngineConfig(**CPU))
    (a,) = engine.process(frames(1, "a")[0])
    (b,) = engine.process(frames(1, "b")[0])
    assert (a.face_id, b.face_id) == ("face_1", "cam1_face_1")


def test_expired_tracks_are_freed_and_slots_reused():
    det = ScriptedDetector(lambda i, rgb: [(FACE, 0.9)] if i < 3 or i >= 6 else [])
    # stamps are i ns: a patience of 2.5 ns keeps a face through 2 missed frames
    engine = PerceptionEngine(ConvModel(), det, EngineConfig(track_patience_s=2.5e-9, track_memory_s=0, **CPU))
    counts = []
    for f in frames(7):
        result = engine.process(f)
        counts.append(len(engine.buffers))
    # missed on frames 3, 4 (kept), expired on frame 5; a new track with a fresh window on frame 6
    assert counts == [1, 1, 1, 1, 1, 0, 1]
    assert result[0].frames_used == 1 and result[0].face_id != "face_1"
    assert engine.buffers.capacity == 16  # the freed slot was reused, the pool did not grow


def test_defaults_hide_one_frame_faces_and_smooth_with_an_ema():
    config = EngineConfig()
    assert (config.min_hits, config.smoothing, config.smoothing_time_s) == (2, "ema", 1.0)
    assert (config.track_patience_s, config.track_memory_s) == (1.0, 3.0)


def test_min_hits_holds_back_unconfirmed_tracks():
    """A detector false positive seen in one frame never reaches the model or the output."""
    flicker = Box(70, 40, 20, 20)
    det = ScriptedDetector(lambda i, rgb: [(FACE, 0.9)] + ([(flicker, 0.8)] if i == 1 else []))
    model = ConvModel()
    engine = PerceptionEngine(model, det, EngineConfig(**{**CPU, "min_hits": 2}))
    results = [engine.process(f) for f in frames(4)]
    assert [len(r) for r in results] == [0, 1, 1, 1]
    assert {e.face_id for r in results for e in r} == {"face_1"}
    assert results[1][0].frames_used == 1 and results[3][0].frames_used == 3
    assert model.face_batches == [1, 1, 1]
    with pytest.raises(ValueError, match="min_hits"):
        EngineConfig(min_hits=0)


def test_max_faces_keeps_the_best_scores():
    boxes = [(Box(10 * i, 0, 8, 8), 0.5 + 0.04 * i) for i in range(10)]
    model = ConvModel()
    engine = PerceptionEngine(model, ScriptedDetector(lambda i, rgb: boxes), EngineConfig(max_faces=4, **CPU))
    result = engine.process(frames(1)[0])
    assert sorted(e.box.x for e in result) == [60, 70, 80, 90] and model.face_batches == [4]


def test_detector_boxes_are_sanitised_and_downscaled_detection_maps_back():
    seen = []

    def script(i, rgb):
        seen.append(rgb.shape)
        return [(Box(-10, 5, 30, 30), 0.9), (Box(float("nan"), 0, 5, 5), 0.9), (Box(500, 500, 9, 9), 0.9)]

    engine = PerceptionEngine(ConvModel(), ScriptedDetector(script), EngineConfig(detect_max_side=64, **CPU))
    (est,) = engine.process(frames(1)[0])  # 96x128 frame detected at 48x64, boxes scaled by 2
    assert seen == [(48, 64, 3)]
    assert est.box == Box(0, 10, 40, 60)


class MovingFaceRedetector:
    """Test double of a re-detector for a face moving right 1 px a frame: it finds every box it is
    asked about at x = FACE.x + the engine's frame count (``frame``, set by the test), boxing it
    ``dw`` px wider than the detector does, except on the frames in ``lose_on``."""

    def __init__(self, lose_on=(), dw=0.0):
        self.asked: dict[int, list[Box]] = {}
        self.lose_on, self.dw, self.frame = set(lose_on), dw, 0

    def redetect(self, rgb, boxes):
        self.asked.setdefault(self.frame, []).extend(boxes)
        if self.frame in self.lose_on:
            return [None] * len(boxes)
        return [Detection(Box(FACE.x + self.frame, b.y, FACE.w + self.dw, b.h), 0.8) for b in boxes]


def frames_at(fps: float, n: int):
    return [Frame(f.image, stamp_ns=round(i * 1e9 / fps)) for i, f in enumerate(frames(n))]


def run_followed(detector, redetector, n=16, interval=0.25):
    """(frames searched, face x per frame) of n frames at 20 frames/s."""
    engine = PerceptionEngine(ConvModel(), detector, EngineConfig(detect_interval_s=interval, **CPU), redetector)
    searched, xs = [], []
    for i, frame in enumerate(frames_at(20, n)):
        redetector.frame, calls = i, detector.calls
        out = engine.process(frame)
        searched.append(detector.calls > calls)
        xs.append([e.box.x for e in out])
    return [i for i, s in enumerate(searched) if s], xs


def test_whole_frame_searched_every_interval_tracked_faces_re_found_in_between():
    """20 frames/s, a search every 0.25 s: frames 0, 5, ... are searched (the detector sees the
    face at FACE.x); the others re-find the face near where the tracker predicts it; a face the
    re-detector loses is missing from that frame's output and brings the search forward."""
    redetector = MovingFaceRedetector(lose_on={7})
    searched, xs = run_followed(always(FACE), redetector)
    assert searched == [0, 5, 8, 13]
    # frame 5's search learns that the re-detector boxes this face 5 px right of the detector
    assert xs[:5] == [[20], [21], [22], [23], [24]] and xs[5] == [20] and xs[6] == [26 - 5]
    assert xs[7] == [] and xs[8] == [20]
    # asked on frame 1 where frame 0 saw it; on frame 2 one frame of 20 px/s on from 21
    assert [b.x for b in redetector.asked[1]] == [20] and redetector.asked[2][0].x == pytest.approx(22)


def test_followed_faces_keep_the_detectors_box():
    """A re-detector boxing the face 10 px wider than the detector: after each search the follower
    learns that (it re-detects the searched face once), so the followed boxes stay FACE.w wide,
    and the re-detector is asked with its own wider box."""
    redetector = MovingFaceRedetector(dw=10)
    searched, xs = run_followed(always(FACE), redetector, n=6)
    assert searched == [0, 5]
    assert xs == [[20], [21], [22], [23], [24], [20]]
    assert [b.w for b in redetector.asked[0]] == [FACE.w]  # learning, on the searched frame
    assert redetector.asked[1][0].w == pytest.approx(FACE.w + 10)


def test_a_face_the_re_detector_cannot_see_is_searched_for_every_frame_not_lost_every_other():
    """A face the detector finds and the re-detector never does (a head turned further than
    MTCNN's O-Net accepts): following it would drop it from every other frame's output, so each
    frame is searched, and the face is in every frame's output."""
    redetector = MovingFaceRedetector(lose_on=set(range(8)))
    searched, xs = run_followed(always(FACE), redetector, n=8)
    assert searched == list(range(8))
    assert xs == [[20]] * 8


class BoxRedetector:
    """Finds a face in every box it is asked about, except (frame, x) pairs of ``blind``."""

    def __init__(self, blind=()):
        self.asked, self.blind, self.frame = {}, set(blind), 0

    def redetect(self, rgb, boxes):
        self.asked.setdefault(self.frame, []).append(list(boxes))
        return [None if (self.frame, round(b.x)) in self.blind else Detection(b, 0.8) for b in boxes]


def test_a_followed_face_that_a_search_misses_is_re_found_on_that_frame():
    """Two faces, the search of frame 5 misses the second (a head turned at that moment): the
    re-detector is asked about that face alone on frame 5, and it stays in the output under its
    id. Where the re-detector cannot see it either, it is left out (nothing is made up)."""
    other = Box(70, 16, 20, 20)
    for blind, expected in (((), [FACE.x, other.x]), (((5, other.x),), [FACE.x])):
        detector = ScriptedDetector(lambda i, rgb: [(FACE, 0.9)] + ([] if i == 1 else [(other, 0.9)]))
        redetector = BoxRedetector(blind)
        engine = PerceptionEngine(ConvModel(), detector, EngineConfig(detect_interval_s=0.25, **CPU), redetector)
        out = []
        for i, frame in enumerate(frames_at(20, 6)):
            redetector.frame = i
            out.append(engine.process(frame))
        assert sorted(e.box.x for e in out[5]) == expected
        rescue, learnt = redetector.asked[5]  # then the follower learns the boxes of what it keeps
        assert [round(b.x) for b in rescue] == [other.x] and [round(b.x) for b in learnt] == expected
        if not blind:
            assert {e.face_id for e in out[5]} == {e.face_id for e in out[4]}


def test_every_frame_is_searched_without_a_re_detector_or_an_interval():
    for redetector, interval in ((None, 0.25), (MovingFaceRedetector(), 0.0)):
        detector = always(FACE)
        engine = PerceptionEngine(ConvModel(), detector, EngineConfig(detect_interval_s=interval, **CPU), redetector)
        for frame in frames_at(20, 6):
            engine.process(frame)
        assert detector.calls == 6
        assert redetector is None or redetector.asked == {}
    with pytest.raises(ValueError, match="detect_interval_s"):
        EngineConfig(detect_interval_s=-1)


def test_bad_frames_are_rejected_clearly():
    engine = PerceptionEngine(ConvModel(), always(FACE), EngineConfig(**CPU))
    nan = np.full((8, 8, 3), np.nan, dtype=np.float32)
    with pytest.raises(ValueError, match="NaN"):
        engine.process(nan)
    with pytest.raises(ValueError, match="empty"):
        engine.process(np.zeros((0, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        engine.process(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        engine.process(np.zeros((8, 8, 3), np.float64))
    with pytest.raises(ValueError, match="Frame or"):
        engine.process([[1, 2, 3]])
    assert engine.stats()["frames"] == 0
    assert len(engine.process(np.zeros((96, 128, 3), np.uint8))) == 1  # a bare array is accepted


def test_config_is_validated():
    with pytest.raises(ValueError, match="window"):
        EngineConfig(window=0)
    with pytest.raises(ValueError, match="precision"):
        EngineConfig(precision="fp8")
    with pytest.raises(TypeError, match="detect"):
        PerceptionEngine(ConvModel(), object(), EngineConfig(**CPU))


def _clip_crops(images, box, size, margin=0.25):
    out = []
    for img in images:
        crop = crop_face(img, box, margin)
        out.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR))
    return torch.from_numpy(np.stack(out))


def _clip_scenes(images, size):
    return torch.from_numpy(np.stack([cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) for img in images]))


@pytest.mark.parametrize("k", [1, 3])
def test_streaming_equals_clip_forward_in_fp32(k):
    """Every prediction equals model.forward on the clip of the same crops (scene repeated per k)."""
    model = ConvModel()
    window = 5
    engine = PerceptionEngine(model, always(FACE), EngineConfig(window=window, scene_interval=k, **CPU))
    stream = frames(12, seed=3)
    images = [f.image for f in stream]
    # the scene frame in effect at frame t is the one last encoded: t - t % k
    scene_images = [images[t - t % k] for t in range(len(images))]
    for t, frame in enumerate(stream):
        (est,) = engine.process(frame)
        lo = max(0, t + 1 - window)
        faces = _clip_crops(images[lo : t + 1], FACE, model.face_size)[None]
        scenes = _clip_scenes(scene_images[lo : t + 1], model.scene_size)[None]
        with torch.no_grad():
            out = model(faces, torch.ones(faces.shape[:2], dtype=torch.bool), scenes)
        assert est.frames_used == t + 1 - lo
        np.testing.assert_allclose(est.probabilities, torch.softmax(out.logits, -1)[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(est.polarity_probabilities, torch.softmax(out.polarity_logits, -1)[0].numpy(), atol=1e-5)


def test_window_buffers_order_wrap_growth_and_release():
    buf = WindowBuffers(window=3, device="cpu", streams=("face",), capacity=1)
    for step in range(5):  # key "a" gets 0..4, key "b" joins at step 3 with 30, 40
        keys = ["a"] + (["b"] if step >= 3 else [])
        feats = torch.tensor([[float(step)]] + ([[10.0 * step]] if step >= 3 else []))
        buf.write(keys, face=feats)
    windows, mask, used = buf.windows(["a", "b"])
    assert used == [3, 2] and buf.capacity == 2  # grew from 1 slot
    assert windows["face"][0, :, 0].tolist() == [2.0, 3.0, 4.0]  # oldest first after wrapping
    assert windows["face"][1, :2, 0].tolist() == [30.0, 40.0] and mask.tolist() == [[True] * 3, [True, True, False]]
    assert buf.release("a") and not buf.release("a") and len(buf) == 1
    buf.write(["c"], face=torch.tensor([[7.0]]))  # reuses a's slot with a fresh window
    assert buf.frames_used("c") == 1 and buf.capacity == 2
    with pytest.raises(ValueError, match="same key"):
        buf.write(["b", "b"], face=torch.zeros(2, 1))
    with pytest.raises(ValueError, match="exactly"):
        buf.write(["b"], scene=torch.zeros(1, 1))


def test_stream_plumbing_is_a_no_op_on_cpu():
    streams = Streams(torch.device("cpu"), enabled=True)
    assert not streams.enabled and streams.copy is streams.face is streams.scene is None
    assert streams.signal(streams.face) is None
    streams.wait(None, streams.face)  # no-op
    with streams.on(streams.face):
        start = streams.mark(streams.face)
    assert isinstance(start, float) and streams.elapsed_ms(start, streams.mark()) >= 0
    staging = Staging(8, torch.device("cpu"), streams, capacity=1)
    staging.images(3)[:] = 7  # grows from 1 to 3 images
    pixels, ready = staging.upload(3)
    assert ready is None and pixels.shape == (3, 8, 8, 3) and int(pixels.sum()) == 7 * 3 * 8 * 8 * 3
    assert not pixels.is_pinned()


def test_worker_drops_stale_frames_and_survives_an_exception():
    entered, release = threading.Event(), threading.Event()

    def script(i, rgb):
        if i == 0:  # hold the first frame in the engine while more arrive
            entered.set()
            assert release.wait(10)
        if rgb[0, 0, 0] == 255:
            raise RuntimeError("detector exploded")
        return [(FACE, 0.9)]

    engine = PerceptionEngine(ConvModel(), ScriptedDetector(script), EngineConfig(**CPU))
    results, errors = [], []
    worker = LatestFrameWorker(engine, lambda f, est: results.append((f.stamp_ns, len(est))), lambda f, e: errors.append((f.stamp_ns, str(e))))
    stream = frames(6)
    assert worker.submit(stream[0])
    assert entered.wait(10)
    assert worker.submit(stream[1])  # waits in the slot
    assert not worker.submit(stream[2])  # replaces 1: a drop
    assert not worker.submit(stream[3])  # replaces 2
    release.set()
    assert worker.wait_idle(10)
    bad = stream[4].image.copy()
    bad[0, 0, 0] = 255
    worker.submit(Frame(bad, stamp_ns=4))
    assert worker.wait_idle(10)
    worker.submit(stream[5])
    assert worker.wait_idle(10)
    assert worker.close(5) and not worker.alive
    assert results == [(0, 1), (3, 1), (5, 1)]
    assert errors == [(4, "detector exploded")]
    assert (worker.dropped, worker.processed, worker.failed) == (2, 4, 1)
    assert engine.stats()["dropped"] == 2
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(stream[0])


def test_stats_report_stages_and_identity():
    engine = PerceptionEngine(ConvModel(), always(FACE), EngineConfig(**CPU))
    for f in frames(3):
        engine.process(f)
    stats = engine.stats()
    assert (stats["frames"], stats["faces"], stats["active_tracks"]) == (3, 3, 1)
    assert (stats["device"], stats["precision"], stats["model_id"]) == ("cpu", "fp32", "test-conv")
    for stage in ("detect", "crop", "encode_face", "head", "total"):
        s = stats["latency_ms"][stage]
        assert s["n"] == 3 and 0 <= s["p50"] <= s["p95"] and s["mean"] > 0
    engine.reset()
    assert engine.stats()["active_tracks"] == 0 and engine.stats()["sources"] == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cuda_streams", [True, False])
def test_cuda_matches_cpu_in_fp32(cuda_streams, monkeypatch):
    """The CUDA path (pinned buffers, copy/face/scene streams) gives the CPU path's answer."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # true fp32 convolutions
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    boxes = [FACE, Box(70, 40, 30, 30)]
    cpu = PerceptionEngine(ConvModel(), always(*boxes), EngineConfig(scene_interval=2, device="cpu"))
    gpu = PerceptionEngine(
        ConvModel(), always(*boxes), EngineConfig(scene_interval=2, device="cuda", cuda_streams=cuda_streams)
    )
    assert gpu.stats()["cuda_streams"] == cuda_streams
    for a, b in zip(frames(20, "l"), frames(20, "r", seed=1)):
        for want, got in zip(cpu.process_batch([a, b]), gpu.process_batch([a, b])):
            for w, g in zip(want, got):
                assert w.face_id == g.face_id and w.frames_used == g.frames_used
                np.testing.assert_allclose(g.probabilities, w.probabilities, atol=1e-4)
                np.testing.assert_allclose(g.polarity_probabilities, w.polarity_probabilities, atol=1e-4)
    assert gpu.stats()["latency_ms"]["encode_face"]["n"] == 20


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_benchmark_refuses_without_cuda():
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo / "ros2_ws" / "src" / "emotion_perception")}
    proc = subprocess.run(
        [sys.executable, str(repo / "benchmarks" / "gpu_dual_stream.py")], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 2
    assert "needs a CUDA GPU" in json.loads(proc.stdout)["error"]
