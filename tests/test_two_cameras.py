"""Two cameras, two people, through the ROS-free core wired as perception_node and llm_bridge wire it.

A happy (red) face on the left camera, a sad (blue) one on the right, 30 Hz each, on a fake
clock: sensor_msgs/Image -> frame -> LatestFrameWorker -> PerceptionEngine (real tracker, buffers
and batching; a colour model) -> EmotionStateArray -> the bridge's context tracker, the REP-155
tracked list and the diagnostics monitor. Then the right camera stops while the left one runs.
"""
from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import torch

from emotion_perception.engine import EngineConfig, LatestFrameWorker, PerceptionEngine
from emotion_perception.evaluation.replay import face_record
from emotion_perception.interfaces import typestore
from emotion_perception.llm.context import EmotionContextTracker
from emotion_perception.models.base import EmotionModel, HeadOutput, masked_mean
from emotion_perception.messages import (MessageTypes, array_msg_to_estimates, estimates_to_array_msg,
                                            hri_face_id, image_msg_to_frame, rgb_to_image_msg)
from emotion_perception.ros.diagnostics import OK, WARN, ProcessingMonitor, Thresholds, evaluate, evaluate_camera
from emotion_perception.ros.tracked import TrackedFaces
from emotion_perception.types import Box, Detection

LEFT, RIGHT = "/cam_left/image", "/cam_right/image"
FPS = 30
ENGINE_S = 0.015  # fake-clock time each batch takes


class ColourModel(EmotionModel):
    """Red faces are happy, blue faces sad: logits from the mean colour of the face window."""

    model_id = "colour"
    face_size = 16

    def encode_faces(self, pixels):
        return pixels.float().mean(dim=(1, 2)) / 255.0  # [N, 3] mean RGB

    def forward_window(self, faces, face_mask, scenes=None, scene_mask=None):
        rgb = masked_mean(faces, face_mask)
        logits = torch.zeros(rgb.shape[0], 7)
        logits[:, 0] = 10 * (rgb[:, 0] - rgb[:, 2])  # happy
        logits[:, 1] = 10 * (rgb[:, 2] - rgb[:, 0])  # sad
        return HeadOutput(logits)


class ColourDetector:
    """The box around the saturated pixels of a grey image: one face per camera."""

    def detect(self, rgb):
        saturated = np.argwhere(rgb.max(axis=2).astype(int) - rgb.min(axis=2) > 60)
        if not len(saturated):
            return []
        (y0, x0), (y1, x1) = saturated.min(axis=0), saturated.max(axis=0)
        return [Detection(Box(float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)), 0.99)]


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class TimedEngine:
    """The real engine, taking ENGINE_S of fake time per batch; ``hold`` stalls it mid-batch."""

    def __init__(self, engine, clock):
        self.engine, self.clock = engine, clock
        self.gate, self.entered = threading.Event(), threading.Event()
        self.gate.set()

    def process_batch(self, frames):
        self.entered.set()
        assert self.gate.wait(10)
        self.clock.t += ENGINE_S
        return self.engine.process_batch(frames)

    def record_drop(self, n=1):
        self.engine.record_drop(n)


def camera_image(types, colour, side, stamp_ns, frame_id):
    rgb = np.full((120, 160, 3), 128, np.uint8)
    rgb[30:30 + side, 40:40 + side] = colour
    return rgb_to_image_msg(rgb, types.header(stamp_ns, frame_id), types, "bgr8")


class Rig:
    """What perception_node does per image and per result, and what llm_bridge does per array."""

    def __init__(self):
        self.clock = FakeClock()
        self.camera_time = self.clock.t  # when the cameras last captured; the engine adds its time
        self.types = MessageTypes.from_typestore(typestore())
        core = PerceptionEngine(ColourModel(), ColourDetector(), EngineConfig(window=4, device="cpu"))
        core.set_cameras([LEFT, RIGHT])
        self.engine = TimedEngine(core, self.clock)
        self.monitor = ProcessingMonitor(clock=self.clock, cameras=[LEFT, RIGHT])
        self.tracked = TrackedFaces(core.config.track_patience_s)
        self.context = EmotionContextTracker()
        self.arrays: dict[str, list] = {LEFT: [], RIGHT: []}
        self.records: list[dict] = []
        self.errors: list[Exception] = []
        self.worker = LatestFrameWorker(self.engine, self.on_result, lambda f, e: self.errors.append(e),
                                        on_drop=self.monitor.dropped)
        self.images = {
            LEFT: lambda ns: camera_image(self.types, (255, 0, 0), 48, ns, "left_cam"),  # happy, nearer
            RIGHT: lambda ns: camera_image(self.types, (0, 0, 255), 32, ns, "right_cam"),  # sad
        }

    @property
    def now_ns(self) -> int:
        return int(round(self.clock.t * 1e9))

    def on_image(self, source):
        received = self.monitor.received(source)
        frame = image_msg_to_frame(self.images[source](self.now_ns), source)
        self.monitor.admit(frame, received)
        self.worker.submit(frame)

    def on_result(self, frame, estimates):
        h, w = frame.image.shape[:2]
        array = estimates_to_array_msg(estimates, self.types.header(frame.stamp_ns, frame.frame_id), self.types, (w, h))
        self.arrays[frame.source].append(array)
        self.records += [face_record(e) for e in estimates]
        self.tracked.update(frame.source, [hri_face_id(s.face_id) for s in array.states], self.clock())
        self.context.update(array_msg_to_estimates(array), self.now_ns)  # the bridge's side
        assert self.monitor.published(frame)

    def next_period(self):
        self.camera_time += 1 / FPS
        self.clock.t = self.camera_time

    def tick(self, sources):
        """One camera period: an image from each running camera, processed before the next."""
        self.next_period()
        for source in sources:
            self.on_image(source)
        assert self.worker.wait_idle(10)
        self.tracked.expire(self.clock())

    def burst(self):
        """Both cameras send three images while the engine is busy with the left one's first."""
        self.engine.gate.clear()
        self.engine.entered.clear()
        self.next_period()
        self.on_image(LEFT)
        assert self.engine.entered.wait(10)
        for _ in range(2):
            self.on_image(LEFT)
        for _ in range(3):
            self.on_image(RIGHT)
        self.engine.gate.set()
        assert self.worker.wait_idle(10)


@pytest.fixture
def rig():
    rig = Rig()
    yield rig
    rig.worker.close()


def test_two_cameras_two_people(rig):
    th = Thresholds()
    for i in range(2 * FPS):
        rig.burst() if i == FPS else rig.tick([LEFT, RIGHT])

    # 1. distinct, stable ids on every output
    left_ids = {s.face_id for a in rig.arrays[LEFT] for s in a.states}
    right_ids = {s.face_id for a in rig.arrays[RIGHT] for s in a.states}
    assert (left_ids, right_ids) == ({"cam0_face_1"}, {"cam1_face_1"})
    assert {r["id"] for r in rig.records} == {"cam0_face_1", "cam1_face_1"}  # results.jsonl
    assert rig.arrays[LEFT][-1].header.frame_id == "left_cam" and rig.arrays[RIGHT][-1].states[0].class_name == "sad"
    assert rig.tracked.ids() == ["cam0_face_1", "cam1_face_1"]

    # 2. the bridge sees two people and addresses the nearer (larger) happy one
    ctx = rig.context.context(rig.now_ns)
    assert (ctx.count, ctx.face_id, ctx.class_name) == (2, "cam0_face_1", "happy")
    assert re.fullmatch(r"The person you are talking to \(on camera left_cam, one of 2 people\) looks happy "
                        r"\(confidence 0\.9\d\)\. Also visible: on camera right_cam, someone: sad\.", ctx.sentence), ctx.sentence
    assert evaluate(rig.monitor.snapshot(), th).level == OK

    # 3. the right camera stops; the left one runs on for 3 s; diagnostics look every 0.5 s
    stopped = rig.camera_time  # the right camera's last image
    first_warn = expired = None
    for i in range(3 * FPS):
        rig.tick([LEFT])
        if expired is None and rig.tracked.ids() == ["cam0_face_1"]:
            expired = rig.clock.t - stopped
        if (i + 1) % (FPS // 2) == 0 and first_warn is None:
            report = evaluate(rig.monitor.snapshot(), th)
            if report.level != OK:
                first_warn = (rig.clock.t - stopped, report)
        if i + 1 == FPS:  # 1 s in: the bridge still remembers the sad person (max_age_s 2 s)
            assert rig.context.context(rig.now_ns).count == 2
    waited, report = first_warn
    assert th.camera_timeout_s < waited <= th.camera_timeout_s + 0.5 < 2.0
    assert report.level == WARN and report.message == f"{RIGHT}: no image for {waited:.1f} s"
    assert expired <= rig.tracked.patience_s + 2 / FPS  # the tracker's patience, not the diagnostics'
    snap = rig.monitor.snapshot()
    assert evaluate_camera(snap.cameras[LEFT], th).level == OK
    assert evaluate_camera(snap.cameras[RIGHT], th).level == WARN
    ctx = rig.context.context(rig.now_ns)
    assert (ctx.count, ctx.face_id) == (1, "cam0_face_1")
    assert re.fullmatch(r"The person in front of you looks happy \(confidence 0\.9\d\)\.", ctx.sentence)

    # 4. exact counts: every image published or dropped, a latency for each published one
    rig.worker.close()
    assert rig.errors == [] and rig.monitor.in_flight == 0
    left, right = rig.monitor.snapshot().cameras[LEFT], rig.monitor.snapshot().cameras[RIGHT]
    # left: 59 ticks + a burst of 3 (the middle one replaced) + 90 ticks; right: 59 + 3 (two replaced)
    assert (left.received, left.processed, left.dropped, left.errors) == (152, 151, 1, 0)
    assert (right.received, right.processed, right.dropped, right.errors) == (62, 60, 2, 0)
    assert len(rig.arrays[LEFT]) == left.processed and len(rig.arrays[RIGHT]) == right.processed
    assert left.latency_p50_ms == pytest.approx(ENGINE_S * 1e3)
    assert rig.worker.dropped == 3 and rig.worker.submitted == 214
