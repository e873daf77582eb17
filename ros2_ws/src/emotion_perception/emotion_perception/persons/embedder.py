"""Face embeddings for re-identification: dlib's ResNet face-recognition model (128-d).

Both model files come in the ``face-recognition-models`` wheel (found without importing that
package, as ``faces/dlib_detectors.py`` does) and run in ``dlib-bin``:

- ``shape_predictor_5_face_landmarks.dat`` finds the eyes' corners and the nose under the box;
  dlib's ``get_face_chip`` rotates and scales the face to a 150x150 chip from them;
- ``dlib_face_recognition_resnet_model_v1.dat`` maps the chip to a 128-d vector; it was trained
  to put each identity in a ball of radius 0.6 (Euclidean) and scores 99.38 % on LFW (dlib-models
  README). ``PersonGallery`` matches at 0.5, stricter (docs/persons.md).

About 75 ms per face on one CPU core here (docs/persons.md), so the engine asks for an embedding
at a track's start and at whole-frame searches only (``identity.PersonIdentifier``).
"""
from __future__ import annotations

import numpy as np

from ..errors import WeightsMissingError
from ..faces.dlib_detectors import DLIB_HOW_TO_GET, import_dlib
from ..models.weights import installed_package_file
from ..types import Box

LANDMARKS_PACKAGE_FILE = "face_recognition_models:models/shape_predictor_5_face_landmarks.dat"
RESNET_PACKAGE_FILE = "face_recognition_models:models/dlib_face_recognition_resnet_model_v1.dat"
MODELS_HOW_TO_GET = "pip install --no-deps face-recognition-models==0.3.0"
CHIP_SIZE = 150  # the ResNet's input, pixels
CHIP_PADDING = 0.25  # dlib's default context around the landmarks' face


class DlibFaceEmbedder:
    """``embed(rgb, box)`` -> (128,) float32, the face under ``box``; None for a box under 2 px.

    Raises ImportError without dlib and WeightsMissingError (a FileNotFoundError) without the
    model files: ``create_embedder`` turns both into "identity off" with the reason.
    """

    name = "dlib_resnet_v1"
    dim = 128

    def __init__(self):
        dlib = import_dlib()
        paths = {}
        for role, spec in (("landmarks", LANDMARKS_PACKAGE_FILE), ("resnet", RESNET_PACKAGE_FILE)):
            path = installed_package_file(spec)
            if path is None:
                raise WeightsMissingError(spec.split("/")[-1], f"re-identification needs it: {MODELS_HOW_TO_GET}")
            paths[role] = path
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(paths["landmarks"]))
        self._resnet = dlib.face_recognition_model_v1(str(paths["resnet"]))

    def embed(self, rgb: np.ndarray, box: Box) -> np.ndarray | None:
        height, width = rgb.shape[:2]
        box = box.clipped(width, height)
        if box.w < 2 or box.h < 2:
            return None
        rect = self._dlib.rectangle(int(box.x), int(box.y), int(box.x + box.w) - 1, int(box.y + box.h) - 1)
        image = np.ascontiguousarray(rgb, dtype=np.uint8)
        shape = self._landmarks(image, rect)
        chip = self._dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return np.asarray(self._resnet.compute_face_descriptor(chip), dtype=np.float32)


def create_embedder() -> tuple[DlibFaceEmbedder | None, str]:
    """(embedder, "") where dlib and the model files are installed, else (None, why not)."""
    try:
        return DlibFaceEmbedder(), ""
    except ImportError as err:
        return None, f"identity off, person ids are face track ids (no dlib: {DLIB_HOW_TO_GET}; {err})"
    except FileNotFoundError as err:
        return None, f"identity off, person ids are face track ids ({err})"
