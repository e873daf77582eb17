"""Frozen-feature cache: every frame of every clip encoded once by the frozen backbone.

OUS (and zero-shot CLIP) never train the CLIP vision encoder, yet training from pixels encodes
T frames x 2 streams of every clip in every epoch. ``emotion-train cache`` runs the model's own
per-frame encoders (``encode_faces``, ``encode_scenes``: for OUS the scene feature already holds
the early-block class tokens the polarity encoder reads) over *all* frames of every clip, once per
flip state when training flips. ``CachedClipDataset`` then makes the same draw as ``ClipDataset``
(train-time random frames, test-time segment middles, the flip) and picks the matching rows, so
both samplings stay exact; padding slots are zeros, which no head reads (they are masked).

Folder layout::

    manifest.json            what the features depend on + every clip's shard and rows
    r<rank>-<k>.face.npy     [F, rows, face_dim]   F = 1, or 2 = (as is, flipped)
    r<rank>-<k>.scene.npy    [F, rows, scene_dim]  (models that use the scene)

The manifest pins the encoder (model class, backbone tensors' SHA-256, input sizes, pixel
normalisation, how frames are read, feature dims and dtype, flips) and the dataset (kind, root,
reader options, each clip's label and frame lists); any difference is one ``CacheMismatchError``.
Each rank of a torchrun world encodes clips ``rank::world`` and writes its own shards; rank 0
writes the manifest last, so a folder without one is an unfinished cache.

Not cacheable: DuSE (its prompts enter the vision encoder), and pixel augmentations other than
the flip (random crop, rotation, colour jitter draw new pixels every epoch, so no fixed feature is
exact): such a config is refused, never approximated. The flip is cached as a second copy.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import open_clip
import torch
from tqdm import tqdm

from . import distributed
from .augment import AugmentConfig, ClipDraw, apply_clip
from .datasets import ClipDataset, ClipRecord

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# How frames become encoder input before the model's own normalisation (datasets.read_image).
FRAME_READING = "datasets.read_image: whole image resized (cv2 INTER_AREA down, INTER_LINEAR up), RGB uint8"
UNCACHEABLE = {
    "duse": "DuSE cannot use the feature cache: its learnable prompts enter the vision encoder, "
            "so frame features change with every training step",
}
FLIP = ClipDraw(flip=True)
MAX_BATCH_FRAMES = 256  # frames per encoder call; a clip is encoded alone (chunked if longer)


class CacheMismatchError(ValueError):
    """The cache does not hold what this run would encode; the message lists every difference."""


def check_cacheable(kind: str) -> None:
    """One clear refusal for a model kind whose frame features are not fixed."""
    reason = UNCACHEABLE.get(kind)
    if reason:
        raise ValueError(reason)


def cached_flips(augment: AugmentConfig | None) -> int:
    """Flip states a cache needs for these train-time augmentations: 1, or 2 with flips.

    Raises for augmentations that no fixed feature can reproduce: every setting but the flip that
    differs from ``AugmentConfig``'s defaults (which augment nothing but flip), new ones included.
    """
    if augment is None:
        return 1
    off = AugmentConfig()
    changing = [f.name for f in dataclasses.fields(augment)
                if f.name != "flip" and getattr(augment, f.name) != getattr(off, f.name)]
    if changing:
        raise ValueError(
            f"the feature cache holds fixed frames, but augment.{', augment.'.join(changing)} draws new pixels "
            "every epoch: train from pixels (no dataset.feature_cache) or leave only augment.flip on"
        )
    return 2 if augment.flip > 0 else 1


def vision_tower(model) -> torch.nn.Module:
    return model.clip.visual if hasattr(model, "clip") else model.visual


def tensors_sha256(module: torch.nn.Module) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of every tensor of ``module`` (weights hash)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def encoder_fingerprint(model, flips: int, amp: bool) -> dict:
    """What cached features depend on, from the model itself (not its profile's name)."""
    tower = vision_tower(model)
    pre = open_clip.get_model_preprocess_cfg(tower)
    return {
        "format": FORMAT_VERSION,
        "model": type(model).__name__,
        "backbone_sha256": tensors_sha256(tower),
        "face_size": int(model.face_size),
        "scene_size": int(model.scene_size),
        "uses_scene": bool(model.uses_scene),
        "mean": [float(x) for x in pre.get("mean", open_clip.OPENAI_DATASET_MEAN)],
        "std": [float(x) for x in pre.get("std", open_clip.OPENAI_DATASET_STD)],
        "frame_reading": FRAME_READING,
        "frames": "all",  # sampling happens when reading: train-time random and test-time uniform
        "flips": int(flips),
        "amp": bool(amp),
    }


def clip_digest(record: ClipRecord) -> str:
    """Which frame files a clip is made of, in order (the folders follow from the pinned dataset)."""
    spec = [list(record.face_frames), record.scene_dir is not None, list(record.scene_frames)]
    return hashlib.sha1(json.dumps(spec).encode()).hexdigest()


def dataset_pin(kind: str, root, options: dict) -> dict:
    return {"kind": kind, "root": str(Path(root).resolve()), "options": {k: str(v) for k, v in sorted(options.items())}}


# ------------------------------------------------------------------------------------- writing


def build_cache(
    folder: str | Path,
    model,
    records: list[ClipRecord],
    datasets: list[dict],
    *,
    flips: int,
    device: torch.device,
    amp: bool = False,
    world: distributed.World = distributed.World(),
    shard_bytes: int = 1 << 30,
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Encode every frame of ``records`` into ``folder``; returns the manifest.

    ``datasets`` are the ``dataset_pin`` dicts of the lists ``records`` come from. Each rank
    encodes ``records[rank::size]``; rank 0 writes the manifest once every rank is done.
    """
    check_cacheable(getattr(model, "kind", ""))
    folder = Path(folder)
    if world.main:
        if (folder / MANIFEST).exists() and not force:
            raise ValueError(f"{folder} already holds a feature cache; pass --force to rebuild it")
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    distributed.barrier()
    amp = amp and device.type == "cuda"
    fingerprint = encoder_fingerprint(model, flips, amp)
    writer = _ShardWriter(folder, world.rank, shard_bytes)
    mine = records[world.rank::world.size]
    bar = tqdm(mine, desc=f"cache r{world.rank}", disable=not (progress and world.main), dynamic_ncols=True)
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
        for record in bar:
            face, scene = encode_clip(model, record, flips)
            writer.add(record, face, scene)
    bar.close()
    writer.close()
    parts = distributed.all_gather((writer.clips, writer.dtype))
    manifest = None
    if world.main:
        clips = {name: entry for part, _ in parts for name, entry in part.items()}
        dtypes = {d for _, d in parts if d is not None}
        manifest = {**fingerprint, "dtype": dtypes.pop() if dtypes else "float32",
                    "datasets": datasets, "clips": dict(sorted(clips.items()))}
        tmp = folder / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        tmp.replace(folder / MANIFEST)
        log.info("feature cache of %d clips written to %s (%.1f MB)", len(clips), folder, _folder_mb(folder))
    distributed.barrier()
    return manifest


def encode_clip(model, record: ClipRecord, flips: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Features of every frame of a clip: face [F, n, Df] and scene [F, m, Ds] (or None)."""
    everything = np.arange(len(record.face_frames))
    faces = ClipDataset._load(record, record.face_dir, record.face_frames, everything, model.face_size)
    scenes = None
    if model.uses_scene:
        if record.scene_dir is not None:
            scene_all = np.arange(len(record.scene_frames))
            scenes = ClipDataset._load(record, record.scene_dir, record.scene_frames, scene_all, model.scene_size)
        elif model.scene_size != model.face_size:
            scenes = ClipDataset._load(record, record.face_dir, record.face_frames, everything, model.scene_size)
        else:
            scenes = faces
    face_out, scene_out = [], []
    for flipped in range(flips):
        # the flip exactly as training applies it (augment.apply_clip)
        face_out.append(_encode(model.encode_faces, apply_clip(faces, FLIP) if flipped else faces))
        if scenes is not None:
            scene_out.append(_encode(model.encode_scenes, apply_clip(scenes, FLIP) if flipped else scenes))
    return np.stack(face_out), (np.stack(scene_out) if scenes is not None else None)


def _encode(encoder, frames: np.ndarray) -> np.ndarray:
    chunks = [encoder(torch.from_numpy(frames[i:i + MAX_BATCH_FRAMES]))
              for i in range(0, len(frames), MAX_BATCH_FRAMES)]
    out = torch.cat(chunks)
    if out.dtype == torch.bfloat16:
        out = out.float()
    return out.cpu().numpy()


class _ShardWriter:
    """Appends clips' features to this rank's current shard; a full shard goes to disk as .npy."""

    def __init__(self, folder: Path, rank: int, shard_bytes: int):
        self.folder, self.rank, self.shard_bytes = folder, rank, shard_bytes
        self.clips: dict[str, dict] = {}
        self.dtype: str | None = None
        self._count = 0
        self._start()

    def _start(self) -> None:
        self.name = f"r{self.rank:03d}-{self._count:05d}"
        self._face, self._scene, self._rows, self._scene_rows, self._bytes = [], [], 0, 0, 0

    def add(self, record: ClipRecord, face: np.ndarray, scene: np.ndarray | None) -> None:
        self.dtype = str(face.dtype)
        self.clips[record.name] = {
            "label": int(record.label), "digest": clip_digest(record), "shard": self.name,
            "face_row": self._rows, "face_frames": int(face.shape[1]),
            "scene_row": self._scene_rows, "scene_frames": int(scene.shape[1]) if scene is not None else 0,
        }
        self._face.append(face)
        self._rows += face.shape[1]
        self._bytes += face.nbytes
        if scene is not None:
            self._scene.append(scene)
            self._scene_rows += scene.shape[1]
            self._bytes += scene.nbytes
        if self._bytes >= self.shard_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._face:
            return
        np.save(self.folder / f"{self.name}.face.npy", np.concatenate(self._face, axis=1))
        if self._scene:
            np.save(self.folder / f"{self.name}.scene.npy", np.concatenate(self._scene, axis=1))
        self._count += 1
        self._start()

    def close(self) -> None:
        self._flush()


def _folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / 1e6


# ------------------------------------------------------------------------------------- reading


class FeatureCache:
    """A finished cache folder: its manifest, and memory-mapped shards opened on first use."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.is_file():
            hint = "unfinished (no manifest)" if self.folder.is_dir() else "missing"
            raise CacheMismatchError(f"feature cache {self.folder} is {hint}; run: emotion-train cache --config ...")
        self.manifest = json.loads(path.read_text())
        self._arrays: dict[str, np.ndarray] = {}

    def __getstate__(self):  # DataLoader workers reopen the memory maps themselves
        return {**self.__dict__, "_arrays": {}}

    def check(self, model, records: list[ClipRecord], dataset: dict, *, flips: int, amp: bool) -> None:
        """Refuse, with every difference in one message, a cache that does not hold this run's features."""
        m = self.manifest
        expected = encoder_fingerprint(model, flips, amp)
        problems = []
        for key, value in expected.items():
            have = m.get(key)
            if key == "flips":
                if have is None or have < value:
                    problems.append(f"flips: cache has {have}, training with flip needs {value}")
            elif have != value:
                problems.append(f"{key}: cache has {_short(have)}, this run {_short(value)}")
        if dataset not in m.get("datasets", []):
            problems.append(f"dataset {dataset} is not one the cache was built from ({m.get('datasets')})")
        clips = m.get("clips", {})
        missing = [r.name for r in records if r.name not in clips]
        changed = [r.name for r in records if r.name in clips
                   and (clips[r.name]["digest"] != clip_digest(r) or clips[r.name]["label"] != r.label)]
        if missing:
            problems.append(f"{len(missing)} clips not in the cache (e.g. {missing[0]!r})")
        if changed:
            problems.append(f"{len(changed)} clips changed since caching (frames or label; e.g. {changed[0]!r})")
        if problems:
            raise CacheMismatchError(
                f"stale feature cache {self.folder}: " + "; ".join(problems)
                + ". Rebuild it: emotion-train cache --config ... --force"
            )

    def _array(self, shard: str, stream: str) -> np.ndarray:
        key = f"{shard}.{stream}"
        if key not in self._arrays:
            self._arrays[key] = np.load(self.folder / f"{key}.npy", mmap_mode="r")
        return self._arrays[key]

    def rows(self, name: str, stream: str, flip: bool, indices: np.ndarray) -> torch.Tensor:
        """Features of frames ``indices`` (-1 = padding, zeros) of one clip's stream, [T, D]."""
        entry = self.manifest["clips"][name]
        data = self._array(entry["shard"], stream)
        start = entry[f"{stream}_row"]
        valid = indices >= 0
        out = np.zeros((len(indices), data.shape[-1]), dtype=data.dtype)
        out[valid] = data[int(flip), start + indices[valid]]
        return torch.from_numpy(out)


class CachedClipDataset(ClipDataset):
    """``ClipDataset`` on cached features: items hold ``face`` [T, Df] and ``scene`` [T, Ds] floats."""

    features = True

    def __init__(self, records: list[ClipRecord], cache: FeatureCache, *, num_frames: int, with_scene: bool,
                 scene_from_face: bool = False, train: bool = False, augment: AugmentConfig | None = None):
        super().__init__(records, num_frames=num_frames, with_scene=with_scene, scene_from_face=scene_from_face,
                         train=train, augment=augment)
        if cached_flips(self.augment) > cache.manifest["flips"]:
            raise CacheMismatchError(f"feature cache {cache.folder} holds no flipped features; augment.flip needs them")
        self.cache = cache

    def __getitem__(self, index: int) -> dict:
        name = self.records[index].name
        sample = self.draw(index)
        flip = sample.augment is not None and sample.augment.flip
        face = self.cache.rows(name, "face", flip, sample.indices)
        scene = self.cache.rows(name, "scene", flip, sample.scene_indices) if self.with_scene else None
        return self.item(index, sample, face, scene)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
