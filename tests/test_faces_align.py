"""Roll alignment (faces/align.py) and turned crops (faces/crops.py): the turn's direction against a
hand-placed pixel, and O-Net's roll against a photo turned by a known angle."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from emotion_perception.faces import crop_face, create_detector
from emotion_perception.faces.align import RollEstimator, crop_angle
from emotion_perception.types import Box

from test_faces_package_detectors import needs_facenet_wheel


def test_turned_crop_moves_a_pixel_right_of_centre_to_above_it():
    image = np.zeros((101, 101, 3), np.uint8)
    image[50, 70] = 255  # 20 px right of the box centre (50, 50)
    box = Box(40, 40, 20, 20)  # margin 1.5: an 80 x 80 crop centred on (50, 50)
    plain = crop_face(image, box, margin=1.5)
    assert plain.shape == (80, 80, 3) and plain[40, 60].max() == 255
    turned = crop_face(image, box, margin=1.5, angle=90.0)  # counter-clockwise as seen: right -> up
    assert turned.shape == (80, 80, 3)
    assert np.unravel_index(turned[..., 0].argmax(), turned.shape[:2]) == (20, 40)
    with pytest.raises(ValueError, match="non-finite"):
        crop_face(image, box, angle=float("nan"))


@pytest.mark.parametrize("roll, min_deg, turn", [(12.0, 10.0, 12.0), (-25.0, 10.0, -25.0), (9.9, 10.0, 0.0),
                                                 (-9.0, 10.0, 0.0), (3.0, 0.0, 3.0), (float("nan"), 0.0, 0.0)])
def test_crop_angle_turns_only_from_min_deg(roll, min_deg, turn):
    assert crop_angle(roll, min_deg) == turn


def turned(image: np.ndarray, centre, degrees: float) -> np.ndarray:
    """``image`` turned about ``centre`` (counter-clockwise as seen for degrees > 0), same size."""
    return cv2.warpAffine(image, cv2.getRotationMatrix2D(centre, degrees, 1.0), image.shape[1::-1])


@needs_facenet_wheel
def test_roll_follows_a_known_turn_of_a_real_face_and_the_turned_crop_levels_it(astronaut):
    detector = create_detector("mtcnn")
    (face,) = detector.detect(astronaut)
    estimator = RollEstimator()
    points = estimator.landmarks(astronaut, [face.box])[0]
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    # an upright face: eyes left to right and level, nose between and below them, mouth below the nose
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    upright = estimator.roll_degrees(astronaut, [face.box])[0]
    assert abs(upright) < 8
    for degrees in (-30.0, 20.0):
        tilted = turned(astronaut, face.box.center, degrees)  # the box still holds the face
        roll = estimator.roll_degrees(tilted, [face.box])[0]
        # turning the photo counter-clockwise lifts the right-hand eye: the roll falls by the turn
        assert roll == pytest.approx(upright - degrees, abs=4.0)
        level = crop_face(tilted, face.box, margin=0.6, angle=roll)
        centre = Box(level.shape[1] / 2 - face.box.w / 2, level.shape[0] / 2 - face.box.h / 2, face.box.w, face.box.h)
        assert abs(estimator.roll_degrees(level, [centre])[0]) < 6


@needs_facenet_wheel
@pytest.mark.parametrize("align", [False, True])
def test_engine_hands_the_model_a_levelled_crop_with_face_align(astronaut, align):
    from emotion_perception.engine import EngineConfig, PerceptionEngine
    from emotion_perception.types import Frame

    from test_engine import CPU, FaceOnlyModel, always

    class SeeingModel(FaceOnlyModel):
        face_size = 96

        def encode_faces(self, pixels):
            self.seen = pixels[0].numpy().copy()
            return super().encode_faces(pixels)

    (face,) = create_detector("mtcnn").detect(astronaut)
    tilted = turned(astronaut, face.box.center, -30.0)  # the right-hand eye 30 degrees lower
    model = SeeingModel()
    config = EngineConfig(window=2, face_margin=0.2, face_align=align, face_align_min_deg=10.0, **CPU)
    PerceptionEngine(model, always(face.box), config).process(Frame(tilted, stamp_ns=0))
    side = 96 / 1.4  # the box inside the 96 px crop of margin 0.2
    roll = RollEstimator().roll_degrees(model.seen, [Box(48 - side / 2, 48 - side / 2, side, side)])[0]
    assert abs(roll) < 6 if align else roll > 20


def test_engine_without_onet_weights_logs_once_and_crops_unturned(monkeypatch, caplog):
    from emotion_perception.engine import EngineConfig, PerceptionEngine
    from emotion_perception.errors import WeightsMissingError
    from emotion_perception.faces import align

    from test_engine import CPU, FACE, FaceOnlyModel, always, frames

    def missing(weights_dir=None):
        raise WeightsMissingError("facenet_pytorch/data/onet.pt", "pip install --no-deps facenet-pytorch==2.6.0")

    monkeypatch.setattr(align, "weight_paths", missing)
    with caplog.at_level("WARNING"):
        engine = PerceptionEngine(FaceOnlyModel(), always(FACE), EngineConfig(window=2, face_align=True, **CPU))
    assert [r.getMessage() for r in caplog.records] == [
        "face_align is on but weight file not found: facenet_pytorch/data/onet.pt. "
        "pip install --no-deps facenet-pytorch==2.6.0; face crops are not turned"]
    assert len(engine.process(frames(1)[0])) == 1


def test_lite_profile_turns_tilted_crops_and_an_override_wins():
    from emotion_perception.pipeline import create_engine

    engine, _ = create_engine("lite-fer2013", device="cpu", detector="opencv")
    assert (engine.config.face_align, engine.config.face_align_min_deg) == (True, 10.0)
    engine, _ = create_engine("lite-fer2013", device="cpu", detector="opencv", face_align=False)
    assert engine.config.face_align is False
    assert engine.config.face_margin == 0.2


@needs_facenet_wheel
def test_lite_profile_crops_mtcnn_boxes_with_their_own_margin():
    from emotion_perception.pipeline import create_engine

    engine, _ = create_engine("lite-fer2013", device="cpu", detector="mtcnn")
    assert (engine.config.face_margin, engine.config.face_align) == (0.125, True)
    engine, _ = create_engine("lite-fer2013", device="cpu", detector="mtcnn", face_margin=0.3)
    assert engine.config.face_margin == 0.3


def test_a_detectors_own_crop_keys_win_for_that_detector_only(tmp_path):
    from emotion_perception.models import registry

    path = tmp_path / "p.yaml"
    path.write_text("name: p\nkind: lite\ncrop:\n  margin: 0.2\n  align: true\n"
                    "  by_detector:\n    mtcnn: {margin: 0.15}\n")
    profile = registry.Profile.from_yaml(path)
    assert profile.crop_settings("mtcnn") == {"face_margin": 0.15, "face_align": True}
    assert profile.crop_settings("blazeface_back") == profile.crop_settings() == {"face_margin": 0.2, "face_align": True}
    path.write_text("name: p\nkind: lite\ncrop:\n  by_detector:\n    mtcnn: {margins: 0.15}\n")
    with pytest.raises(ValueError, match=r"unknown crop.by_detector.mtcnn keys \['margins'\]"):
        registry.Profile.from_yaml(path)


class _CountingRolls:
    """A stand-in O-Net: each box's roll is its x, and every box measured is counted."""

    def __init__(self):
        self.measured = []

    def roll_degrees(self, rgb, boxes):
        self.measured += [b.x for b in boxes]
        return np.array([b.x for b in boxes], float)


def test_track_rolls_are_measured_again_only_when_due():
    from emotion_perception.faces.align import TrackRolls

    estimator = _CountingRolls()
    rolls = TrackRolls(estimator, refresh_s=0.2)
    rgb = np.zeros((8, 8, 3), np.uint8)
    a, b = ("cam", "1"), ("cam", "2")
    assert rolls.rolls(rgb, [a, b], [Box(10, 0, 4, 4), Box(20, 0, 4, 4)], now=1.0) == [10.0, 20.0]
    # 0.1 s later both keep their roll, even though the boxes (here: the rolls) changed
    assert rolls.rolls(rgb, [a, b], [Box(11, 0, 4, 4), Box(21, 0, 4, 4)], now=1.1) == [10.0, 20.0]
    assert estimator.measured == [10, 20]
    # a is due 0.25 s after its measurement (refresh_s 0.2), b was released: both measured, in one batch
    rolls.release(b)
    assert rolls.rolls(rgb, [a, b], [Box(12, 0, 4, 4), Box(22, 0, 4, 4)], now=1.25) == [12.0, 22.0]
    assert estimator.measured == [10, 20, 12, 22]
    # camera time that runs backwards (a restarted recording) measures again
    assert rolls.rolls(rgb, [a], [Box(13, 0, 4, 4)], now=0.5) == [13.0]
    assert sorted(rolls.keys()) == [a, b]
    with pytest.raises(ValueError, match="refresh_s"):
        TrackRolls(estimator, refresh_s=-1)
