"""Readers for the DFEW and FERV39k video-emotion datasets, and the clip dataset the loops use.

Both readers turn a split file into ``ClipRecord``s (frame folders + canonical label) and check the
whole list up front, so a missing or empty clip folder, an unknown label or a bad row stops the run
at once with one error that names the split file and line — not hours later inside a worker.

DFEW (``root`` = the dataset folder)::

    Clip/clip_224x224/<clip id>/*.jpg             frames (folder names may be zero-padded: 00001)
    EmoLabel_DataSplit/train(single-labeled)/set_<fold>.csv   header "video_name,label"
    EmoLabel_DataSplit/test(single-labeled)/set_<fold>.csv    labels 1..7 = DFEW's order

DFEW's ``clip_224x224`` frames are face-aligned crops: they hold no scene. ``emotion-train
prepare-dfew`` (training/prepare_dfew.py) decodes ``Clip/original/<clip id>.mp4`` into scene
frames and re-crops the face from each very same frame; with ``prepared_root`` the reader pairs
``<prepared>/faces/<id>/<k>.jpg`` with ``<prepared>/scenes/<id>/<k>.jpg`` frame by frame. A
``scenes_root`` with the same clip folders as ``clip_224x224`` is the other way to give scenes.
Without either, DFEW clips have no scene stream, and ``ClipDataset`` refuses to feed a model that
uses the scene unless ``scene_from_face`` says the face crop may stand in for it.

FERV39k (each path can be overridden)::

    2_ClipsforFaceCrop/<Scene>/<Emotion>/<clip>/*.jpg      face crops
    3_ClipsforScenImages/<Scene>/<Emotion>/<clip>/*.jpg    original scene frames (same clip paths)
    4_setups/All_scenes/{train,test}_All.csv               rows "<clip path> <label>"

FERV39k rows are separated by a space (a comma also works); the label is a class name or a
0-based id in FERV39k's alphabetical order (Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise).
Both datasets are mapped to the canonical class order by class name.
"""
from __future__ import annotations

import csv
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..labels import CLASS_NAMES, class_id, polarity_target
from .augment import AugmentConfig, ClipDraw, apply_clip, draw_clip
from .sampling import frame_names, matching_indices, sample_indices

log = logging.getLogger(__name__)

DFEW_CLASS_ORDER = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")  # labels 1..7
FERV39K_CLASS_ORDER = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")  # ids 0..6
DFEW_SPLIT_DIRS = {"train": "train(single-labeled)", "test": "test(single-labeled)"}
DFEW_FOLDS = (1, 2, 3, 4, 5)


class DatasetError(ValueError):
    """A dataset file or folder is malformed; the message names the file (and line)."""


@dataclass(frozen=True)
class ClipRecord:
    name: str  # clip id (DFEW) or relative clip path (FERV39k)
    label: int  # canonical class id
    face_dir: Path
    face_frames: tuple[str, ...]  # file names, natural order
    scene_dir: Path | None = None  # None: the dataset gives no scene for this clip
    scene_frames: tuple[str, ...] = ()
    source: str = ""  # "split file:line", for error messages


def _record(name: str, label: int, face_dir: Path, scene_dir: Path | None, where: str) -> ClipRecord:
    """A clip of a split file; its frame folders are listed now, so a bad one names the csv line."""
    return ClipRecord(
        name=name,
        label=label,
        face_dir=face_dir,
        face_frames=list_frames(face_dir, where),
        scene_dir=scene_dir,
        scene_frames=list_frames(scene_dir, where) if scene_dir is not None else (),
        source=where,
    )


def list_frames(folder: Path, source: str) -> tuple[str, ...]:
    """The image files of a clip folder in natural order; a missing or empty folder is an error."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        raise DatasetError(f"{source}: clip folder {folder} does not exist") from None
    except NotADirectoryError:
        raise DatasetError(f"{source}: {folder} is not a folder") from None
    frames = frame_names(names)
    if not frames:
        raise DatasetError(f"{source}: clip folder {folder} holds no image frames")
    return tuple(frames)


def _clip_id_key(name: str) -> str:
    """DFEW clip ids compare as numbers where they are numbers ("00001" == "1")."""
    name = name.strip()
    return str(int(name)) if name.isdigit() else name


# --------------------------------------------------------------------------------------- DFEW


def dfew_split_file(root: Path, fold: int, split: str) -> Path:
    if fold not in DFEW_FOLDS:
        raise DatasetError(f"DFEW fold must be one of {DFEW_FOLDS}, got {fold}")
    if split not in DFEW_SPLIT_DIRS:
        raise DatasetError(f"DFEW split must be 'train' or 'test', got {split!r}")
    return Path(root) / "EmoLabel_DataSplit" / DFEW_SPLIT_DIRS[split] / f"set_{fold}.csv"


def read_dfew(
    root: str | Path,
    fold: int,
    split: str,
    *,
    clips_root: str | Path | None = None,
    scenes_root: str | Path | None = None,
    prepared_root: str | Path | None = None,
) -> list[ClipRecord]:
    """The clips of one DFEW fold's train or test list.

    ``prepared_root`` (the output of ``prepare-dfew``) gives each clip paired face and scene
    frames; a clip in which the detector found no face keeps DFEW's own crops as its face stream,
    paired with its scene frames by relative time.
    """
    root = Path(root)
    clips_root = Path(clips_root) if clips_root else root / "Clip" / "clip_224x224"
    csv_path = dfew_split_file(root, fold, split)
    if not csv_path.is_file():
        raise DatasetError(f"DFEW split file {csv_path} does not exist")
    if prepared_root and scenes_root:
        raise DatasetError("give DFEW either prepared_root (prepare-dfew output) or scenes_root, not both")
    prepared = Path(prepared_root) if prepared_root else None
    if prepared is not None:
        prepared_scenes = _folder_index(prepared / "scenes", "prepared DFEW scene")
        prepared_faces = _folder_index(prepared / "faces", "prepared DFEW face")
    scene_folders = _folder_index(Path(scenes_root), "DFEW scene") if scenes_root else None
    # DFEW's own crops: with prepared clips only those without a detected face need them.
    folders = None if prepared is not None else _folder_index(clips_root, "DFEW clip")

    records = []
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f)
        for line_no, row in enumerate(rows, start=1):
            where = f"{csv_path}:{line_no}"
            if line_no == 1:
                if [c.strip().lower() for c in row] != ["video_name", "label"]:
                    raise DatasetError(f"{where}: expected the header 'video_name,label', got {','.join(row)!r}")
                continue
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 2 or not row[0].strip():
                raise DatasetError(f"{where}: expected 'video_name,label', got {','.join(row)!r}")
            name, raw_label = row[0].strip(), row[1].strip()
            try:
                number = int(raw_label)
            except ValueError:
                number = 0
            if not 1 <= number <= len(DFEW_CLASS_ORDER):
                raise DatasetError(f"{where}: unknown DFEW label {raw_label!r} (expected 1..7)")
            label = class_id(DFEW_CLASS_ORDER[number - 1])
            key = _clip_id_key(name)
            if prepared is not None:
                scene = prepared_scenes.get(key)
                if scene is None:
                    raise DatasetError(f"{where}: video {name!r} was not prepared: no {prepared / 'scenes'}/{name}; "
                                       "run 'emotion-train prepare-dfew' (see its clips.csv for videos it could not read)")
                face = prepared_faces.get(key)
                if face is not None:
                    record = _record(name, label, prepared / "faces" / face, prepared / "scenes" / scene, where)
                    if record.face_frames != record.scene_frames:
                        raise DatasetError(f"{where}: prepared faces and scenes of video {name!r} do not pair "
                                           "frame by frame; delete both folders and re-run prepare-dfew")
                    records.append(record)
                    continue
                scene_dir = prepared / "scenes" / scene
            elif scene_folders is not None:
                scene_folder = scene_folders.get(key)
                if scene_folder is None:
                    raise DatasetError(f"{where}: scene folder for video {name!r} not found in {scenes_root}")
                scene_dir = Path(scenes_root) / scene_folder
            else:
                scene_dir = None
            if folders is None:
                folders = _folder_index(clips_root, "DFEW clip")
            folder = folders.get(key)
            if folder is None:
                raise DatasetError(f"{where}: clip folder for video {name!r} not found in {clips_root}")
            records.append(_record(name, label, clips_root / folder, scene_dir, where))
    if not records:
        raise DatasetError(f"{csv_path}: no clips listed")
    return records


def _folder_index(parent: Path, what: str) -> dict[str, str]:
    if not parent.is_dir():
        raise DatasetError(f"{what} folder {parent} does not exist")
    return {_clip_id_key(e.name): e.name for e in os.scandir(parent) if e.is_dir()}


# ------------------------------------------------------------------------------------ FERV39k


def ferv39k_label(raw: str) -> int:
    """A FERV39k label (class name, or 0-based id in FERV39k's order) -> canonical id."""
    raw = raw.strip()
    if raw.isdigit():
        number = int(raw)
        if number >= len(FERV39K_CLASS_ORDER):
            raise ValueError(f"FERV39k label id {number} out of range 0..{len(FERV39K_CLASS_ORDER) - 1}")
        return class_id(FERV39K_CLASS_ORDER[number])
    return class_id(raw)


def read_ferv39k(
    root: str | Path,
    split: str,
    *,
    faces_root: str | Path | None = None,
    scenes_root: str | Path | None = None,
    split_file: str | Path | None = None,
    use_scenes: bool = True,
) -> list[ClipRecord]:
    """The clips of FERV39k's train or test list, faces paired with their scene frames.

    With ``use_scenes`` and no ``scenes_root``, ``<root>/3_ClipsforScenImages`` is used if it
    exists; otherwise the clips have no scene stream (logged; ``ClipDataset`` then refuses a model
    that uses the scene unless told ``scene_from_face``).
    """
    root = Path(root)
    if split not in ("train", "test"):
        raise DatasetError(f"FERV39k split must be 'train' or 'test', got {split!r}")
    faces_root = Path(faces_root) if faces_root else root / "2_ClipsforFaceCrop"
    csv_path = Path(split_file) if split_file else root / "4_setups" / "All_scenes" / f"{split}_All.csv"
    if not csv_path.is_file():
        raise DatasetError(f"FERV39k split file {csv_path} does not exist")
    if not faces_root.is_dir():
        raise DatasetError(f"FERV39k face-crop folder {faces_root} does not exist")
    if use_scenes and scenes_root is None:
        default = root / "3_ClipsforScenImages"
        if default.is_dir():
            scenes_root = default
        else:
            log.warning("no FERV39k scene frames at %s: the clips have no scene stream", default)
    elif scenes_root is not None and not Path(scenes_root).is_dir():
        raise DatasetError(f"FERV39k scene folder {scenes_root} does not exist")
    if not use_scenes:
        scenes_root = None

    records = []
    with open(csv_path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            where = f"{csv_path}:{line_no}"
            text = line.strip()
            if not text:
                continue
            fields = [c.strip() for c in (text.split(",") if "," in text else text.split())]
            if line_no == 1 and len(fields) == 2 and fields[1].lower() in ("label", "labels", "emotion", "class"):
                continue  # header
            if len(fields) != 2 or not fields[0]:
                raise DatasetError(f"{where}: expected '<clip path> <label>', got {text!r}")
            rel, raw_label = fields[0].replace("\\", "/").strip("/"), fields[1]
            try:
                label = ferv39k_label(raw_label)
            except ValueError:
                raise DatasetError(
                    f"{where}: unknown FERV39k label {raw_label!r} (expected one of {', '.join(CLASS_NAMES)})"
                ) from None
            scene_dir = Path(scenes_root) / rel if scenes_root is not None else None
            records.append(_record(rel, label, faces_root / rel, scene_dir, where))
    if not records:
        raise DatasetError(f"{csv_path}: no clips listed")
    return records


def read_split(kind: str, root: str | Path, split: str, *, fold: int | None = None, **options) -> list[ClipRecord]:
    """Dispatch on the dataset kind ('dfew' needs a fold; options go to the reader)."""
    if kind == "dfew":
        if fold is None:
            raise DatasetError("DFEW needs a fold (1..5)")
        return read_dfew(root, int(fold), split, **options)
    if kind == "ferv39k":
        return read_ferv39k(root, split, **options)
    raise DatasetError(f"unknown dataset kind {kind!r}; expected 'dfew' or 'ferv39k'")


def stratified_split(
    records: list[ClipRecord], fraction: float, seed: int
) -> tuple[list[ClipRecord], list[ClipRecord]]:
    """Carve a validation subset off a training list, per class, reproducibly.

    Each class with at least two clips gives ``round(fraction * count)`` clips (at least one) to
    validation, so a model is selected on data that it was not trained on and never on the test fold.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    by_class: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_class[r.label].append(i)
    rng = np.random.default_rng(seed)
    val_idx: set[int] = set()
    for label in sorted(by_class):
        members = by_class[label]
        if len(members) < 2:
            continue
        n_val = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
        val_idx.update(rng.choice(members, size=n_val, replace=False).tolist())
    train = [r for i, r in enumerate(records) if i not in val_idx]
    val = [r for i, r in enumerate(records) if i in val_idx]
    return train, val


# -------------------------------------------------------------------------------- the dataset


def read_image(path: Path, size: int) -> np.ndarray:
    """An image file as RGB uint8 [size, size, 3], the whole image resized (as the engine does).

    The streaming engine squashes the whole camera frame to the scene size and resizes square face
    crops, so training does the same: no centre crop that would hide scene context at the edges.
    """
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot read image {path}")
    h, w = bgr.shape[:2]
    if (h, w) != (size, size):
        interp = cv2.INTER_AREA if h > size or w > size else cv2.INTER_LINEAR
        bgr = cv2.resize(bgr, (size, size), interpolation=interp)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def clip_loader(dataset: "ClipDataset", batch_size: int, num_workers: int, *, shuffle: bool,
                pin_memory: bool = False, sampler=None) -> DataLoader:
    """A DataLoader over clips. Workers are *spawned*, not forked.

    A forked worker inherits OpenCV's thread pool in whatever state the parent left it; once the
    parent has run a parallel cv2 call (resizing, a test writing frames), ``cv2.resize`` in the
    worker can deadlock. Spawned workers start clean; they are persistent, so the start-up cost
    (importing torch and cv2, a few seconds) is paid once per run.
    """
    workers = num_workers > 0
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,  # a sampler (torchrun's shards) orders itself
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=workers,
        multiprocessing_context="spawn" if workers else None,
        worker_init_fn=_worker_init if workers else None,
    )


def _worker_init(_worker_id: int) -> None:
    """Workers decode clips in parallel already; one OpenCV thread each avoids oversubscription."""
    cv2.setNumThreads(1)


@dataclass(frozen=True)
class ClipSample:
    """One draw of a clip: frame indices and validity mask [T] (-1 = padding), the clip's
    augmentation (None at test time), and the scene frames paired with the face frames (the face
    indices when the face doubles as the scene)."""

    indices: np.ndarray
    mask: np.ndarray
    augment: ClipDraw | None
    scene_indices: np.ndarray


class ClipDataset(Dataset):
    """Sampled clips as the model's training input.

    An item is a dict: ``face`` uint8 [T, S, S, 3], ``scene`` uint8 [T, S', S', 3] (when
    ``with_scene``), ``mask`` bool [T], ``label`` and ``polarity`` (int64, polarity implied by the
    label), ``index``. Training draws random frames within segments and, with ``augment``, one
    augmentation per clip (training/augment.py) applied to every frame of both streams;
    evaluation is deterministic and never augments.

    A model that uses the scene (``with_scene``) needs clips with scene frames: a clip without
    them would hand it the face crop as its scene, which silently trains a different method, so
    that is refused unless ``scene_from_face`` asks for it.
    """

    def __init__(
        self,
        records: list[ClipRecord],
        *,
        num_frames: int = 16,
        face_size: int = 224,
        scene_size: int = 224,
        with_scene: bool = True,
        scene_from_face: bool = False,
        train: bool = False,
        augment: AugmentConfig | None = None,
    ):
        if not records:
            raise DatasetError("a dataset needs at least one clip")
        if with_scene and not scene_from_face:
            sceneless = [r for r in records if r.scene_dir is None]
            if sceneless:
                raise DatasetError(
                    f"{len(sceneless)} of {len(records)} clips have no scene frames (first: {sceneless[0].source}) "
                    "and this model uses the scene, so it would see the face crop as its scene. DFEW: run "
                    "'emotion-train prepare-dfew' and set dataset.prepared_root; FERV39k: give "
                    "dataset.scenes_root (3_ClipsforScenImages). To train on the face as its own scene on "
                    "purpose, set dataset.scene_from_face: true"
                )
        if augment is not None:
            augment.validate()
        self.records = list(records)
        self.num_frames = num_frames
        self.face_size = face_size
        self.scene_size = scene_size
        self.with_scene = with_scene
        self.train = train
        self.augment = augment if train else None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records], dtype=np.int64)

    def draw(self, index: int) -> ClipSample:
        """The frames (and augmentation) item ``index`` shows this time: random in training, fixed
        at test. The feature cache's dataset makes the very same draw, so sampling stays exact."""
        record = self.records[index]
        # Torch's RNG is seeded per DataLoader worker and epoch, so draws differ across workers.
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ())) if self.train else 0)
        n = len(record.face_frames)
        indices, mask = sample_indices(n, self.num_frames, train=self.train, rng=rng)
        augment = draw_clip(self.augment, rng) if self.augment is not None else None
        scene = indices if record.scene_dir is None else matching_indices(indices, mask, n, len(record.scene_frames))
        return ClipSample(indices, mask, augment, scene)

    def item(self, index: int, sample: ClipSample, face: torch.Tensor, scene: torch.Tensor | None = None) -> dict:
        """The item dict around a clip's face (and scene) tensors."""
        label = self.records[index].label
        item = {
            "face": face,
            "mask": torch.from_numpy(sample.mask),
            "label": torch.tensor(label, dtype=torch.int64),
            "polarity": torch.tensor(polarity_target(label), dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
        }
        if scene is not None:
            item["scene"] = scene
        return item

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        sample = self.draw(index)

        def load(folder, frames, idx, size):
            pixels = self._load(record, folder, frames, idx, size)
            return apply_clip(pixels, sample.augment, sample.mask) if sample.augment is not None else pixels

        face = load(record.face_dir, record.face_frames, sample.indices, self.face_size)
        scene = None
        if self.with_scene:
            if record.scene_dir is None:  # scene_from_face
                scene = face if self.scene_size == self.face_size else load(
                    record.face_dir, record.face_frames, sample.indices, self.scene_size)
            else:
                scene = load(record.scene_dir, record.scene_frames, sample.scene_indices, self.scene_size)
            scene = torch.from_numpy(scene)
        return self.item(index, sample, torch.from_numpy(face), scene)

    @staticmethod
    def _load(record, folder: Path, frames: tuple[str, ...], indices: np.ndarray, size: int) -> np.ndarray:
        out = np.zeros((len(indices), size, size, 3), dtype=np.uint8)  # padding slots stay black
        for slot, idx in enumerate(indices):
            if idx >= 0:
                try:
                    out[slot] = read_image(folder / frames[idx], size)
                except DatasetError as e:
                    raise DatasetError(f"{record.source}: {e}") from None
        return out
