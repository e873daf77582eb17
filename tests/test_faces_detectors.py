"""Face detectors on real photos and video frames from ../shared/data, and their error paths."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from emotion_perception.faces import DETECTORS, FaceDetector, create_detector
from emotion_perception.faces.base import from_reference, to_reference
from emotion_perception.faces.follow import relative_box
from emotion_perception.types import Box
from emotion_perception.images import ImageError
from emotion_perception.errors import WeightsMissingError

BLAZEFACE_FILES = {
    "blazeface": ("blazeface.pth", "anchors.npy"),
    "blazeface_back": ("blazefaceback.pth", "anchorsback.npy"),
}

# Face centres (x, y) and rough face sizes in pixels, read off the photos by eye.
ASTRONAUT = [(224, 120, 100)]
GRACE_HOPPER = [(262, 210, 200)]
MULTI_FACE = [(261, 120, 110), (357, 305, 110), (476, 265, 90), (583, 375, 110), (736, 360, 120)]


def read_rgb(path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    assert bgr is not None, f"cannot read {path}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def matched_faces(detections, faces) -> set[int]:
    """Indices of the true faces hit; fails on any box that hits no face (a false positive)."""
    hit = set()
    for det in detections:
        cx, cy = det.box.center
        near = [
            i
            for i, (fx, fy, size) in enumerate(faces)
            if math.hypot(cx - fx, cy - fy) < 0.5 * size and 0.5 * size < det.box.w < 2.5 * size
        ]
        assert near, f"false positive {det} (faces at {faces})"
        hit.update(near)
    return hit


def check_contract(detections, image: np.ndarray, detector: FaceDetector) -> None:
    height, width = image.shape[:2]
    scores = [d.score for d in detections]
    assert scores == sorted(scores, reverse=True)
    for d in detections:
        assert isinstance(d.box.x, float) and isinstance(d.score, float)
        assert 0 <= d.box.x and d.box.x + d.box.w <= width + 1e-6
        assert 0 <= d.box.y and d.box.y + d.box.h <= height + 1e-6
        assert detector.min_score <= d.score <= 1.0
        assert min(d.box.w, d.box.h) >= detector.min_size


@pytest.fixture(scope="module")
def detectors(shared_data):
    """All detectors with local files here; min_size 8 so the 128 px BlazeFace images work."""
    folder = shared_data / "blazeface"
    built = {"opencv": create_detector("opencv", min_size=8)}
    for name, (weights, anchors) in BLAZEFACE_FILES.items():
        built[name] = create_detector(
            name, path_to_detector=folder / weights, path_to_anchor=folder / anchors, min_size=8
        )
    return built


def test_registry_names():
    assert set(DETECTORS) == {"opencv", "blazeface", "blazeface_back", "sfd", "mtcnn", "dlib_hog", "dlib_cnn"}
    with pytest.raises(ValueError, match="unknown face detector"):
        create_detector("mediapipe")


@pytest.mark.parametrize("name", ["opencv", "blazeface", "blazeface_back"])
@pytest.mark.parametrize(
    "filename, faces",
    [("astronaut.png", ASTRONAUT), ("grace_hopper_512x512.jpg", GRACE_HOPPER)],
)
def test_single_face_photos(detectors, shared_data, name, filename, faces):
    image = read_rgb(shared_data / "images" / filename)
    found = detectors[name].detect(image)
    check_contract(found, image, detectors[name])
    assert len(found) == 1, found
    assert matched_faces(found, faces) == {0}


@pytest.mark.parametrize("name, least", [("opencv", 4), ("blazeface", 4), ("blazeface_back", 5)])
def test_multi_face_photo(detectors, shared_data, name, least):
    image = read_rgb(shared_data / "images" / "multi_face.jpg")
    found = detectors[name].detect(image)
    check_contract(found, image, detectors[name])
    assert len(matched_faces(found, MULTI_FACE)) >= least
    assert len(found) <= len(MULTI_FACE)


@pytest.mark.parametrize(
    "name, counts",
    [
        # (1face, 3faces, 4faces): the 4faces faces are ~10 px wide, beyond the front model.
        ("opencv", (1, 3, 1)),
        ("blazeface", (1, 3, 1)),
        ("blazeface_back", (1, 3, 4)),
    ],
)
def test_blazeface_test_images(detectors, shared_data, name, counts):
    for filename, least in zip(("1face.png", "3faces.png", "4faces.png"), counts):
        image = read_rgb(shared_data / "blazeface" / filename)
        found = detectors[name].detect(image)
        check_contract(found, image, detectors[name])
        assert least <= len(found) <= int(filename[0]), (filename, found)
        centres_y = [d.box.center[1] for d in found]
        assert all(30 < y < 70 for y in centres_y), (filename, found)  # all faces are in one row


def test_blazeface_letterboxes_instead_of_cropping(detectors, astronaut):
    """A face at the edge of a wide frame: face-alignment's centre crop would cut it off."""
    canvas = np.full((320, 640, 3), 128, np.uint8)
    canvas[:, :200] = astronaut[:320, 124:324]  # face centre now at (100, 120)
    for name in ("blazeface", "blazeface_back"):
        found = detectors[name].detect(canvas)
        assert len(found) == 1 and matched_faces(found, [(100, 120, 100)]) == {0}, (name, found)


def test_no_false_positives_without_faces(detectors, shared_data):
    """face_noface.mov: the face frames (0-71) all have a face; the cartoon frames none (OpenCV)."""
    capture = cv2.VideoCapture(str(shared_data / "videos" / "face_noface.mov"))
    frames = []
    while (frame := capture.read())[0]:
        frames.append(cv2.cvtColor(frame[1], cv2.COLOR_BGR2RGB))
    assert len(frames) > 150
    opencv = create_detector("opencv")
    assert all(len(opencv.detect(frames[i])) == 1 for i in range(0, 72, 6))
    assert sum(len(opencv.detect(frames[i])) for i in range(76, len(frames), 3)) == 0


def test_bad_image_is_one_clear_error(detectors):
    for detector in detectors.values():
        with pytest.raises(ImageError):
            detector.detect(np.zeros((10, 10), np.uint8))
        with pytest.raises(ImageError):
            detector.detect(np.zeros((10, 10, 3), np.float32))
        assert detector.detect(np.zeros((48, 64, 3), np.uint8)) == []


@pytest.mark.parametrize(
    "name, filename", [("blazeface", "blazeface.pth"), ("blazeface_back", "blazefaceback.pth"), ("sfd", "s3fd")]
)
def test_missing_weights_name_the_file_and_how_to_get_it(name, filename, tmp_path):
    with pytest.raises(WeightsMissingError) as no_path:
        create_detector(name)
    assert isinstance(no_path.value, FileNotFoundError)
    assert filename in str(no_path.value) and "models/fetch" in str(no_path.value)
    missing = tmp_path / "nowhere" / "weights.pth"
    with pytest.raises(WeightsMissingError, match="nowhere/weights.pth"):
        create_detector(name, path_to_detector=missing, path_to_anchor=missing)


def test_missing_anchors_named(shared_data, tmp_path):
    weights = shared_data / "blazeface" / "blazeface.pth"
    with pytest.raises(WeightsMissingError, match="anchors.npy"):
        create_detector("blazeface", path_to_detector=weights)
    with pytest.raises(WeightsMissingError, match="missing.npy"):
        create_detector("blazeface", path_to_detector=weights, path_to_anchor=tmp_path / "missing.npy")


def test_sfd_code_path_with_random_weights(tmp_path, astronaut):
    """The S3FD weights are not available here: load a randomly initialised S3FD from a file
    through the real loading path and check the output contract (boxes are meaningless)."""
    torch = pytest.importorskip("torch")
    from face_alignment.detection.sfd.net_s3fd import s3fd

    torch.manual_seed(0)
    path = tmp_path / "s3fd-random.pth"
    torch.save(s3fd().state_dict(), path)
    detector = create_detector("sfd", path_to_detector=path, min_score=0.0, min_size=0)
    assert detector.name == "sfd"
    image = np.ascontiguousarray(astronaut[:128, :128])
    found = detector.detect(image)
    check_contract(found, image, detector)
    raw = detector.detector.detect_from_image(image)  # x0, y0, x1, y1, score; may leave the image
    inside = [b for b in raw if min(b[2], 128) > max(b[0], 0) and min(b[3], 128) > max(b[1], 0)]
    assert len(found) == len(inside) > 0
    x0, y0, x1, y1, score = max(inside, key=lambda b: b[4])
    assert found[0].score == pytest.approx(score)
    box = found[0].box
    assert (box.x, box.y, box.x + box.w, box.y + box.h) == pytest.approx(
        (max(x0, 0), max(y0, 0), min(x1, 128), min(y1, 128))
    )


def test_invalid_settings():
    with pytest.raises(ValueError, match="min_score"):
        create_detector("opencv", min_score=1.5)
    with pytest.raises(ValueError, match="device"):
        create_detector("blazeface", device="tpu", path_to_detector=__file__, path_to_anchor=__file__)


def test_reference_box_conversions_by_hand():
    """A detector that boxes faces half as wide, twice as tall, 0.1 side right and 0.1 side up
    of the reference: the reference box (0, 0)-(100, 100) is its (35, -60)-(85, 140), and back."""
    on_reference = (0.5, 2.0, 0.1, -0.1)
    reference = np.array([[0.0, 0.0, 100.0, 100.0, 0.9]])
    raw = np.array([[35.0, -60.0, 85.0, 140.0, 0.9]])
    np.testing.assert_allclose(from_reference(reference, on_reference), raw)
    np.testing.assert_allclose(to_reference(raw, on_reference), reference)


def test_relative_box_by_hand():
    """(10, 20, 50x100) against (0, 0, 100x100): half as wide, as tall, centre (35, 70) against
    (50, 50), i.e. -0.15 and +0.2 sides: the BOX_ON_REFERENCE form to_reference undoes."""
    box, reference = Box(10, 20, 50, 100), Box(0, 0, 100, 100)
    relative = relative_box(box, reference)
    assert relative == pytest.approx((0.5, 1.0, -0.15, 0.2))
    np.testing.assert_allclose(to_reference(np.array([[10.0, 20.0, 60.0, 120.0, 1.0]]), relative),
                               [[0.0, 0.0, 100.0, 100.0, 1.0]], atol=1e-9)
