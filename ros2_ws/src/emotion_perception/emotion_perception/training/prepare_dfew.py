"""``emotion-train prepare-dfew``: DFEW's original videos -> scene frames + faces cropped from them.

DFEW's ``Clip/clip_224x224`` frames are face-aligned crops, so they hold no scene, and OUS is
about the scene. This decodes ``Clip/original/<clip id>.mp4``, keeps each decoded frame as the
scene (resized so its longer side is at most ``scene_max_side``) and crops the face from the very
same frame with the project's face detector (the profile's, as the robot runs it) and the
engine's crop geometry (``faces.crop_face``, square, ``face_margin`` of context). Frames where
the detector finds no face are left out of both streams, as DFEW's own crops leave them out,
so ``faces/<id>/<k>.jpg`` and ``scenes/<id>/<k>.jpg`` always come from the same decoded frame k.
Where a frame holds several faces the largest is the clip's subject (DFEW clips are movie shots
centred on one person).

Written under ``out``::

    faces/<id>/<k>.jpg     square face crops, face_size px (k = 1-based frame number in the video)
    scenes/<id>/<k>.jpg    the whole frames
    clips.csv              id, frames decoded, frames with a face
    prepare.json           the settings (detector, margin, sizes)

A clip in which no frame has a face gets all its frames under ``scenes/<id>`` and no
``faces/<id>``; the reader then takes DFEW's own crops as its face stream, paired with the scene
by relative time. A video that cannot be decoded gets neither (clips.csv says 0 frames). Each
clip is written to a temporary folder and renamed when complete, so an interrupted run resumes
where it stopped.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..faces import crop_face

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")
DEFAULT_PROFILE = "ous-vitl14"  # the detector DFEW-trained heads run with on the robot


def decode_frames(video: Path):
    """RGB frames of a video, in order (none for a file OpenCV cannot decode)."""
    capture = cv2.VideoCapture(str(video))
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def _fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _write(path: Path, rgb: np.ndarray, quality: int) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"cannot write {path}")


def prepare_clip(video: Path, detector, out: Path, clip_id: str, *, face_size: int = 224,
                 face_margin: float = 0.25, scene_max_side: int = 448, quality: int = 95) -> tuple[int, int]:
    """Write one clip's paired frames under ``out``; returns (frames decoded, frames with a face)."""
    tmp_faces, tmp_scenes = out / "faces" / f".{clip_id}.tmp", out / "scenes" / f".{clip_id}.tmp"
    for tmp in (tmp_faces, tmp_scenes, out / "faces" / clip_id, out / "scenes" / clip_id):
        shutil.rmtree(tmp, ignore_errors=True)  # a run interrupted before clips.csv recorded this clip
    tmp_faces.mkdir(parents=True)
    tmp_scenes.mkdir(parents=True)
    decoded, with_face = 0, 0
    for k, rgb in enumerate(decode_frames(video), start=1):
        decoded = k
        name = f"{k:05d}.jpg"
        detections = detector.detect(rgb)
        if detections:
            box = max(detections, key=lambda d: d.box.w * d.box.h).box
            face = cv2.resize(crop_face(rgb, box, face_margin), (face_size, face_size), interpolation=cv2.INTER_AREA)
            _write(tmp_faces / name, face, quality)
            with_face += 1
        _write(tmp_scenes / name, _fit(rgb, scene_max_side), quality)
    if with_face:  # only the frames that have a face, in both streams
        for path in tmp_scenes.iterdir():
            if not (tmp_faces / path.name).exists():
                path.unlink()
        tmp_faces.rename(out / "faces" / clip_id)
    else:
        shutil.rmtree(tmp_faces)
    if decoded:
        tmp_scenes.rename(out / "scenes" / clip_id)
    else:
        shutil.rmtree(tmp_scenes)
    return decoded, with_face


def list_videos(root: Path) -> list[Path]:
    folder = Path(root) / "Clip" / "original"
    if not folder.is_dir():
        raise FileNotFoundError(f"DFEW original videos not found: {folder} does not exist")
    videos = sorted((p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES), key=lambda p: p.stem)
    if not videos:
        raise FileNotFoundError(f"{folder} holds no videos ({', '.join(VIDEO_SUFFIXES)})")
    return videos


def prepare_dfew(root: str | Path, out: str | Path, detector, *, settings: dict | None = None,
                 progress: bool = True, **clip_options) -> dict:
    """Prepare every video of ``<root>/Clip/original`` not yet prepared; returns counts."""
    out = Path(out)
    videos = list_videos(Path(root))
    (out / "faces").mkdir(parents=True, exist_ok=True)
    (out / "scenes").mkdir(parents=True, exist_ok=True)
    (out / "prepare.json").write_text(json.dumps({**(settings or {}), **clip_options}, indent=2))
    table = out / "clips.csv"
    done = set()
    if table.is_file():
        with open(table, newline="") as f:
            done = {row["id"] for row in csv.DictReader(f)}
    else:
        table.write_text("id,frames,frames_with_face\n")
    counts = {"videos": len(videos), "skipped": 0, "prepared": 0, "no_face": 0, "unreadable": 0}
    with open(table, "a", newline="") as f:
        writer = csv.writer(f)
        for video in tqdm(videos, desc="prepare-dfew", disable=not progress, dynamic_ncols=True):
            if video.stem in done:
                counts["skipped"] += 1
                continue
            decoded, with_face = prepare_clip(video, detector, out, video.stem, **clip_options)
            writer.writerow([video.stem, decoded, with_face])
            f.flush()
            if not decoded:
                log.warning("%s: no frame could be decoded", video)
                counts["unreadable"] += 1
            elif not with_face:
                log.warning("%s: no face in any of %d frames; its face stream will be DFEW's own crops",
                            video, decoded)
                counts["no_face"] += 1
            counts["prepared"] += 1
    return counts


def prepare_main(argv: list[str] | None = None) -> int:
    from ..errors import WeightsMissingError
    from ..models.registry import get_profile
    from ..pipeline import make_detector
    from ..engine.device import resolve_device

    parser = argparse.ArgumentParser(
        prog="emotion-train prepare-dfew",
        description="Decode DFEW's Clip/original videos into scene frames and face crops of the same frames.")
    parser.add_argument("--root", required=True, help="DFEW folder (holds Clip/original)")
    parser.add_argument("--out", required=True, help="output folder; set it as dataset.prepared_root")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="whose face detector to use (default %(default)s)")
    parser.add_argument("--detector", help="detector name instead of the profile's (opencv, blazeface, sfd, ...)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--weights-dir", help="folder of the detector's weight files (default: the profile's)")
    parser.add_argument("--min-face-score", type=float, help="detector score threshold (default: the profile's)")
    parser.add_argument("--face-size", type=int, default=224, help="face crop side in pixels")
    parser.add_argument("--face-margin", type=float, default=0.25,
                        help="context around the face box, fraction of its side (the engine's default)")
    parser.add_argument("--scene-max-side", type=int, default=448, help="longest side of a stored scene frame")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        device = resolve_device(args.device)
        profile = get_profile(args.profile)
        weights = Path(args.weights_dir) if args.weights_dir else None
        detector, note = make_detector(args.detector, profile, device, weights, args.min_face_score)
        settings = {"detector": type(detector).__name__, "profile": profile.name, "device": str(device),
                    "min_face_score": args.min_face_score, "detector_note": note}
        counts = prepare_dfew(args.root, args.out, detector, settings=settings, progress=not args.no_progress,
                              face_size=args.face_size, face_margin=args.face_margin,
                              scene_max_side=args.scene_max_side)
    except (FileNotFoundError, WeightsMissingError, KeyError, ValueError, OSError) as e:
        print(f"emotion-train prepare-dfew: error: {e}", file=sys.stderr)
        return 2
    print(f"{counts['prepared']} videos prepared ({counts['no_face']} without a face, {counts['unreadable']} "
          f"unreadable), {counts['skipped']} already done -> {args.out}")
    return 0
