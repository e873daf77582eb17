"""Face detector backends behind one interface (faces/base.py), and ``create_detector``, the factory.

- ``opencv``: OpenCV's Haar cascade, the offline CPU fallback (needs no weight file).
- ``blazeface`` / ``blazeface_back``: MediaPipe's BlazeFace through face-alignment's detector
  class (front camera: 128 px input, near faces; back camera: 256 px input, farther faces).
- ``sfd``: face-alignment's S3FD, the accurate detector for robots with a GPU.

The neural detectors load *explicit local weight files* only. face-alignment would download
missing weights from the internet; a robot is offline, so a missing file is one clear
``WeightsMissingError`` instead. face-alignment and torch are imported lazily, so the ``opencv``
fallback costs neither.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..errors import WeightsMissingError
from .base import FaceDetector, check_device

log = logging.getLogger(__name__)

# Where face-alignment itself would download each file from (fetch them with models/fetch).
FACE_ALIGNMENT_URLS = {
    "blazeface.pth": "https://github.com/hollance/BlazeFace-PyTorch/blob/master/blazeface.pth?raw=true",
    "anchors.npy": "https://github.com/hollance/BlazeFace-PyTorch/blob/master/anchors.npy?raw=true",
    "blazefaceback.pth": (
        "https://github.com/hollance/BlazeFace-PyTorch/blob/master/blazefaceback.pth?raw=true"
    ),
    "anchorsback.npy": "https://github.com/hollance/BlazeFace-PyTorch/blob/master/anchorsback.npy?raw=true",
    "s3fd-619a316812.pth": "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
}


def _require_file(path: str | Path | None, default_name: str, argument: str) -> Path:
    """The weight file at ``path``, or one WeightsMissingError saying how to get it."""
    how = (
        f"Pass {argument}=<path to {default_name}>; get it with models/fetch on a machine with "
        f"internet, or download {FACE_ALIGNMENT_URLS[default_name]}"
    )
    if path is None:
        raise WeightsMissingError(default_name, f"No {argument} given. {how}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsMissingError(path, how)
    return path


class OpenCVCascadeDetector(FaceDetector):
    """OpenCV's frontal-face Haar cascade: the offline CPU fallback.

    Why this one: the cascade XML ships inside the opencv-python-headless wheel we already depend
    on (``cv2.data.haarcascades``), so it needs no download and no extra package. MediaPipe needs
    numpy < 2, dlib compiles for a long time, and ``cv2.FaceDetectorYN`` needs an ONNX model that
    is not in the wheel. (The wheel is pinned < 5 because OpenCV 5 dropped CascadeClassifier.)
    Tuned on the shared test photos and videos: ``alt2`` gave fewer false positives than
    ``default`` (astronaut: 1 box vs 2); scale step 1.15 with 4 neighbours found 4 of the 5 faces
    of multi_face.jpg (not the one in sunglasses), every face of the single-face photos, all 72
    face frames of face_noface.mov and no box in its 97 face-free frames, at about three
    quarters of the cost of step 1.1. Re-tuned on the whole dev set (``../shared/data/eval``,
    every 8th video frame, ``benchmarks/detector_accuracy.py --opencv-grid``): neighbours 2-5,
    steps 1.05-1.2 and search sizes 256-480 px all find 91-92 % of the faces (neighbours 2:
    0.920, 4: 0.916; step 1.05: 0.920 with a phantom face, at 2.5x the cost; 480 px: 0.924 at
    2.3x the cost), so the defaults stay. The
    misses are turned and rolled heads, which a frontal cascade cannot see; MTCNN finds them.

    Speed: the image is scaled so that the smallest wanted face (``min_size``) just fills the
    cascade's 20 px window, but to at most ``max_side`` pixels on its long side. The default 256
    searches a 640x480 frame at 256x192, so faces narrower than ~50 px (a person beyond ~1.5 m
    with a 60 degree lens) are not found; ``max_side=320`` finds faces from 40 px at ~1.6x the
    cost (benchmarks/detector_speed.py).

    Score: the cascade has no probability. We squash the number of merged neighbour windows n
    to ``1 - 0.5 ** (n / min_neighbors)``: 0.5 at the acceptance threshold, towards 1 above it.
    """

    name = "opencv"
    BOX_ON_REFERENCE = (0.96, 0.96, 0.0, 0.0)
    CASCADE = "haarcascade_frontalface_alt2.xml"
    WINDOW = 20  # the cascade's training window, pixels

    def __init__(
        self,
        min_score: float = 0.5,
        min_size: float = 20,
        max_side: int = 256,
        scale_factor: float = 1.15,
        min_neighbors: int = 4,
    ):
        super().__init__(min_score, min_size)
        path = Path(cv2.data.haarcascades) / self.CASCADE
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise FileNotFoundError(f"OpenCV cascade {path} is missing from the opencv wheel")
        self.max_side = int(max_side)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)

    def _detect_xyxy(self, rgb: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        scale = min(self.WINDOW / max(self.min_size, 1.0), self.max_side / max(gray.shape))
        if scale != 1.0:
            interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=interpolation)
        gray = cv2.equalizeHist(gray)
        rects, neighbours = self.cascade.detectMultiScale2(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.WINDOW, self.WINDOW),
        )
        if len(rects) == 0:
            return np.zeros((0, 5))
        rects = np.asarray(rects, dtype=np.float64) / scale
        scores = 1.0 - 0.5 ** (np.asarray(neighbours, dtype=np.float64).reshape(-1) / self.min_neighbors)
        return np.column_stack([rects[:, :2], rects[:, :2] + rects[:, 2:], scores])


class BlazeFaceDetector(FaceDetector):
    """MediaPipe BlazeFace, loaded by face-alignment's ``BlazeFaceDetector`` from local files.

    face-alignment's own ``detect_from_image`` centre-crops the frame to a square, which drops
    faces near the left and right edges of a 4:3 or 16:9 camera. We keep its network, anchors and
    weighted NMS but letterbox instead: pad to a square with black, resize to the network input
    (128 px front, 256 px back), and map the boxes back to input pixels.
    """

    def __init__(
        self,
        back_model: bool = False,
        device: str = "cpu",
        path_to_detector: str | Path | None = None,
        path_to_anchor: str | Path | None = None,
        min_score: float = 0.5,
        min_size: float = 20,
        nms_iou: float = 0.3,
    ):
        super().__init__(min_score, min_size)
        self.name = "blazeface_back" if back_model else "blazeface"
        self.BOX_ON_REFERENCE = (0.90, 0.90, 0.01, 0.126) if back_model else (0.90, 0.90, 0.0, 0.133)
        weights_name, anchors_name = (
            ("blazefaceback.pth", "anchorsback.npy") if back_model else ("blazeface.pth", "anchors.npy")
        )
        weights = _require_file(path_to_detector, weights_name, "path_to_detector")
        anchors = _require_file(path_to_anchor, anchors_name, "path_to_anchor")
        self.device = check_device(device)
        from face_alignment.detection.blazeface.blazeface_detector import BlazeFaceDetector as _FA

        detector = _FA(
            self.device,
            back_model=back_model,
            path_to_detector=str(weights),
            path_to_anchor=str(anchors),
            min_score_thresh=self.min_score,
            min_suppression_threshold=nms_iou,
        )
        import torch

        # channels-last convolutions: the back model's forward pass takes 0.73x the time on one
        # CPU thread (37 against 51 ms, interleaved runs), same boxes
        self.net = detector.face_detector.to(memory_format=torch.channels_last)
        self.input_size = 256 if back_model else 128

    def _detect_xyxy(self, rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        side = max(height, width)
        top, left = (side - height) // 2, (side - width) // 2
        square = cv2.copyMakeBorder(
            rgb, top, side - height - top, left, side - width - left, cv2.BORDER_CONSTANT, value=0
        )
        interpolation = cv2.INTER_AREA if side > self.input_size else cv2.INTER_LINEAR
        small = cv2.resize(square, (self.input_size, self.input_size), interpolation=interpolation)
        preds = self.net.predict_on_image(small).cpu().numpy()  # ymin, xmin, ymax, xmax (0..1), ..., score
        if len(preds) == 0:
            return np.zeros((0, 5))
        boxes = preds[:, [1, 0, 3, 2]] * side - np.array([left, top, left, top])
        return np.column_stack([boxes, preds[:, -1]])


class SFDDetector(FaceDetector):
    """face-alignment's S3FD (single-shot scale-invariant face detector), from a local file.

    Accurate on small and turned faces but a VGG-16 at full resolution: meant for GPU robots.
    """

    name = "sfd"

    def __init__(
        self,
        device: str = "cpu",
        path_to_detector: str | Path | None = None,
        min_score: float = 0.5,
        min_size: float = 20,
    ):
        super().__init__(min_score, min_size)
        weights = _require_file(path_to_detector, "s3fd-619a316812.pth", "path_to_detector")
        self.device = check_device(device)
        from face_alignment.detection.sfd.sfd_detector import SFDDetector as _FA

        self.detector = _FA(self.device, path_to_detector=str(weights), filter_threshold=self.min_score)

    def _detect_xyxy(self, rgb: np.ndarray) -> np.ndarray:
        boxes = self.detector.detect_from_image(rgb)  # RGB in; x0, y0, x1, y1, score per face
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 5)


# Builders: (device, path_to_detector, path_to_anchor, **options) -> detector. ``options`` holds
# min_score / min_size only when the caller set them, so each class keeps its own defaults.
def _opencv(device, path_to_detector, path_to_anchor, **options):
    return OpenCVCascadeDetector(**options)


def _blazeface(back_model: bool) -> Callable[..., FaceDetector]:
    def build(device, path_to_detector, path_to_anchor, **options):
        return BlazeFaceDetector(back_model, device, path_to_detector, path_to_anchor, **options)

    return build


def _sfd(device, path_to_detector, path_to_anchor, **options):
    return SFDDetector(device, path_to_detector, **options)


def _mtcnn(device, path_to_detector, path_to_anchor, **options):
    from .mtcnn import MTCNNDetector  # imported only when asked for, like face-alignment

    return MTCNNDetector(device, weights_dir=path_to_detector, **options)


def _dlib_hog(device, path_to_detector, path_to_anchor, **options):
    from .dlib_detectors import DlibHOGDetector

    return DlibHOGDetector(**options)


def _dlib_cnn(device, path_to_detector, path_to_anchor, **options):
    from .dlib_detectors import DlibCNNDetector

    return DlibCNNDetector(path_to_detector, **options)


DETECTORS: dict[str, Callable[..., FaceDetector]] = {
    "opencv": _opencv,
    "blazeface": _blazeface(back_model=False),
    "blazeface_back": _blazeface(back_model=True),
    "sfd": _sfd,
    "mtcnn": _mtcnn,
    "dlib_hog": _dlib_hog,
    "dlib_cnn": _dlib_cnn,
}


def create_detector(
    name: str,
    device: str = "cpu",
    path_to_detector: str | Path | None = None,
    path_to_anchor: str | Path | None = None,
    min_score: float | None = None,
    min_size: float | None = None,
    **options,
) -> FaceDetector:
    """Build the detector ``name`` (one of ``DETECTORS``); ``options`` go to its class.

    ``min_score`` / ``min_size`` None: the detector's own default. ``opencv`` and ``dlib_*`` run
    on the CPU and ignore ``device``; ``path_to_detector`` is MTCNN's folder of pnet/rnet/onet.pt
    (default: the facenet-pytorch wheel's) and dlib_cnn's .dat file (default: face-recognition-models').
    """
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose one of {sorted(DETECTORS)}")
    given = {"min_score": min_score, "min_size": min_size}
    options.update({k: v for k, v in given.items() if v is not None})
    detector = DETECTORS[name](device, path_to_detector, path_to_anchor, **options)
    log.info("face detector %s on %s", detector.name, device)
    return detector
