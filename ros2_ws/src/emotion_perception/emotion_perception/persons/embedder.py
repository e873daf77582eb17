"""Face embeddings for re-identification: dlib's ResNet face-recognition model (128-d).

Both model files come in the ``face-recognition-models`` wheel (found without importing that
package, as ``faces/dlib_detectors.py`` does); ``dlib-bin`` runs the landmarks:

- ``shape_predictor_5_face_landmarks.dat`` finds the eyes' corners and the nose under the box;
  dlib's ``get_face_chip`` rotates and scales the face to a 150x150 chip from them (a few ms);
- ``dlib_face_recognition_resnet_model_v1.dat`` maps the chip to a 128-d vector; it was trained
  to put each identity in a ball of radius 0.6 (Euclidean) and scores 99.38 % on LFW (dlib-models
  README). ``PersonGallery`` matches at 0.5, stricter (docs/persons.md).

The ResNet runs in PyTorch (``dlib_resnet.py``: the same network and weights, read from the same
file; its vectors are dlib's to within 5e-7 on real faces), ~10x faster than ``dlib-bin``'s own
build on one CPU thread, or in dlib where torch cannot be imported or the file is not what the
port reads. ``name`` says which. Still ~10 ms per face or more (docs/persons.md), so the engine
asks for an embedding at a track's start and at whole-frame searches only
(``identity.PersonIdentifier``).
"""
from __future__ import annotations

import logging

import numpy as np

from ..errors import WeightsMissingError
from ..faces.dlib_detectors import DLIB_HOW_TO_GET, import_dlib
from ..models.weights import installed_package_file
from ..types import Box

LANDMARKS_PACKAGE_FILE = "face_recognition_models:models/shape_predictor_5_face_landmarks.dat"
RESNET_PACKAGE_FILE = "face_recognition_models:models/dlib_face_recognition_resnet_model_v1.dat"
log = logging.getLogger(__name__)

MODELS_HOW_TO_GET = "pip install --no-deps face-recognition-models==0.3.0"
CHIP_SIZE = 150  # the ResNet's input, pixels
CHIP_PADDING = 0.25  # dlib's default context around the landmarks' face


class DlibFaceEmbedder:
    """``embed(rgb, box)`` -> (128,) float32, the face under ``box``; None for a box under 2 px.
    ``embed_many(rgb, boxes)``: the faces of one frame in one forward pass.

    ``backend``: "auto" (the torch port, else dlib's own network), "torch" or "dlib". ``name`` is
    ``dlib_resnet_v1_torch`` or ``dlib_resnet_v1`` (the same model and vectors either way).
    Raises ImportError without dlib and WeightsMissingError (a FileNotFoundError) without the
    model files: ``create_embedder`` turns both into "identity off" with the reason.
    """

    dim = 128

    def __init__(self, backend: str = "auto"):
        if backend not in ("auto", "torch", "dlib"):
            raise ValueError(f"backend must be 'auto', 'torch' or 'dlib', got {backend!r}")
        dlib = import_dlib()
        paths = {}
        for role, spec in (("landmarks", LANDMARKS_PACKAGE_FILE), ("resnet", RESNET_PACKAGE_FILE)):
            path = installed_package_file(spec)
            if path is None:
                raise WeightsMissingError(spec.split("/")[-1], f"re-identification needs it: {MODELS_HOW_TO_GET}")
            paths[role] = path
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(paths["landmarks"]))
        self._net = self._resnet = None
        if backend != "dlib":
            self._net = _torch_port(paths["resnet"], required=backend == "torch")
        if self._net is None:
            self._resnet = dlib.face_recognition_model_v1(str(paths["resnet"]))
        self.name = "dlib_resnet_v1" if self._net is None else "dlib_resnet_v1_torch"

    def chip(self, rgb: np.ndarray, box: Box) -> np.ndarray | None:
        """The 150x150 RGB chip dlib aligns from the face's 5 landmarks; None for a box under 2 px."""
        height, width = rgb.shape[:2]
        box = box.clipped(width, height)
        if box.w < 2 or box.h < 2:
            return None
        rect = self._dlib.rectangle(int(box.x), int(box.y), int(box.x + box.w) - 1, int(box.y + box.h) - 1)
        image = np.ascontiguousarray(rgb, dtype=np.uint8)
        shape = self._landmarks(image, rect)
        return self._dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)

    def embed_chips(self, chips: list[np.ndarray]) -> np.ndarray:
        """(N, 128) float32 for N chips of 150x150x3 uint8 RGB."""
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        if self._net is not None:
            return self._net.embed(np.stack(chips))
        return np.asarray(self._resnet.compute_face_descriptor(list(chips)), dtype=np.float32).reshape(-1, self.dim)

    def embed(self, rgb: np.ndarray, box: Box) -> np.ndarray | None:
        chip = self.chip(rgb, box)
        return None if chip is None else self.embed_chips([chip])[0]

    def embed_many(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray | None]:
        """``embed`` of each box of one frame (None where a box is under 2 px), one forward pass."""
        chips = [self.chip(rgb, box) for box in boxes]
        vectors = iter(self.embed_chips([c for c in chips if c is not None]))
        return [None if c is None else next(vectors) for c in chips]


def _torch_port(path, required: bool):
    """The torch port of the ResNet in ``path``; None (and why, logged) when it cannot be had
    and ``required`` is False."""
    try:
        from .dlib_resnet import DlibModelFormatError, load_dlib_face_resnet
    except ImportError as err:
        if required:
            raise
        log.info("face embedder: dlib's own ResNet (torch port unavailable: %s)", err)
        return None
    try:
        return load_dlib_face_resnet(path)
    except DlibModelFormatError as err:
        if required:
            raise
        log.warning("face embedder: dlib's own ResNet, the torch port cannot read the model file (%s)", err)
        return None


def create_embedder() -> tuple[DlibFaceEmbedder | None, str]:
    """(embedder, "") where dlib and the model files are installed, else (None, why not)."""
    try:
        return DlibFaceEmbedder(), ""
    except ImportError as err:
        return None, f"identity off, person ids are face track ids (no dlib: {DLIB_HOW_TO_GET}; {err})"
    except FileNotFoundError as err:
        return None, f"identity off, person ids are face track ids ({err})"
