"""Score the perception engine on a labelled set of real faces: videos and photos of people.

This is the project's format for labelled data (``../shared/data/eval`` is one such folder)::

    DIR/videos/<video>.labels.csv           start_frame,end_frame_exclusive,label,face_hint
    DIR/videos/<video>.labels_lowconf.csv   the same columns: labels raters disagreed with
    DIR/images/labels.csv                    file,face_id,x,y,w,h,label,confidence,note

Frames are 0-based in OpenCV decode order; ranges are half-open. ``face_hint`` names the person
by position when a video shows several, from the viewer's side, by its first word: ``left``,
``centre`` (or ``center``), ``right`` ("left (woman)"), or an ordinal from the left (``1``, ``2``,
``3``, ... for groups of any size; "2 (man in red)"); positions and ordinals do not mix in one
video. Any other hint means the video's only labelled person. Image boxes are
pixels of the file; a face with confidence ``low`` is scored with the low-confidence labels.
Unlisted frames and faces are not scored. Labels: happy, sad, neutral, angry, surprise, disgust,
fear (aliases as in ``labels.class_id``).

Scoring rules (the numbers the issue asks for, all from one confusion matrix per label set):

- A *sample* is one labelled face in one labelled frame. The prediction is the class of the
  estimate assigned to that person, or "no face" when none is: a missed face counts as wrong in
  WAR and UAR (the confusion matrix has an extra "no face" column). Face-found rate = samples
  with an estimate / samples.
- Assignment in videos: the people of a video are its distinct hints. In a labelled frame the
  largest len(people) estimates are the people, ordered left to right; with fewer estimates than
  people, each goes to the person whose place (k + 0.5) / n of the frame width is nearest.
  Further estimates are *phantoms* (a face where nobody is). In images an estimate is a labelled
  face when each box holds the other's centre (nearest first); unmatched estimates are phantoms.
  Phantom rate = labelled frames (or images) with at least one phantom / labelled frames.
- Track ids: per person and *appearance* (a run of consecutive labelled frames of that person in
  a video), the number of distinct face ids the engine gave that person; 1 is the target.
- Images are shown to the engine as a still camera for ``min_hits`` frames (a track is reported
  from its min_hits-th detection on) and the last frame is scored.
- Named images (``named_image_items``, e.g. ``../shared/data/images/emotion_labeled``) carry the
  label in the file name and no box: the largest estimate is the person, other faces are ignored
  (neither scored nor phantoms), since nobody says who else is in the photo.
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..images import ImageError
from ..labels import CLASS_NAMES, NUM_CLASSES, class_id
from ..llm.context import ContextConfig
from ..types import Box, Frame
from . import breakdown
from . import context_eval, identity_score
from .labels_file import LabelsError, non_negative_number
from .metrics import scores_from_confusion
from .plots import plot_confusion
from .report import format_value, write_pages
from .video import VideoSource

NO_FACE = "no face"
SCORE_CLASSES = (*CLASS_NAMES, NO_FACE)  # confusion columns: a missed face is predicted "no face"
MISSED = NUM_CLASSES
LABEL_SETS = ("confident", "lowconf")
POSITIONS = ("left", "centre", "right")  # face_hint order, from the viewer's side
HINT_HELP = ("with several labelled faces every face_hint must start with left, centre (or center), right, "
             "or an ordinal from the left (1, 2, 3, ...), as the viewer sees them")
ONLY = "only"
LARGEST = "largest"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_COLUMNS = ("start_frame", "end_frame_exclusive", "label")  # + face_hint with several faces
IMAGE_COLUMNS = ("file", "x", "y", "w", "h", "label")  # + face_id, confidence, note
STILL_FPS = 30.0  # spacing of the repeated frames of a photo


@dataclass(frozen=True)
class FaceLabel:
    person: str  # "left" / "centre" / "right" / "1", "2", ... / "only" (videos), the face_id (images), "largest" (named images)
    class_id: int
    confident: bool = True
    box: Box | None = None  # images: where the face is


@dataclass
class EvalItem:
    """One video or photo with its labels: frame index -> the faces labelled in that frame."""

    name: str
    kind: str  # video | image | named image
    path: Path
    labels: dict[int, list[FaceLabel]]
    people: tuple[str, ...]  # videos: left-to-right order


# ------------------------------------------------------------------------------------------ reading

def _csv_rows(path: Path, required: tuple[str, ...]) -> list[tuple[str, dict[str, str]]]:
    """(where, row by column name) per data row of a CSV whose header names ``required``."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise LabelsError(f"cannot read labels file {path}: {exc.strerror or exc}") from None
    rows = list(csv.reader(text.splitlines()))
    names = [c.strip().lower() for c in rows[0]] if rows else []
    if not set(required) <= set(names):
        raise LabelsError(f"{path}: the first row must be a header with the columns {','.join(required)}")
    out = []
    for number, cells in enumerate(rows[1:], start=2):
        if any(c.strip() for c in cells):
            out.append((f"{path}:{number}", {n: (cells[i].strip() if i < len(cells) else "") for i, n in enumerate(names)}))
    return out


def _class(text: str, where: str) -> int:
    try:
        return class_id(text)
    except ValueError as exc:
        raise LabelsError(f"{where}: {exc}") from None


def _int(text: str, what: str, where: str) -> int:
    value = non_negative_number(text, what, where)
    if value != int(value):
        raise LabelsError(f"{where}: {what} {text!r} is not an integer")
    return int(value)


def person_from_hint(hint: str) -> str:
    """``left`` / ``centre`` / ``right`` / an ordinal ("2") from a face_hint's first word; anything
    else is the only person."""
    words = re.findall(r"[a-z]+|[0-9]+", hint.lower())
    word = "centre" if words and words[0] == "center" else words[0] if words else ""
    if word.isdigit():
        return str(int(word)) if int(word) > 0 else ONLY
    return word if word in POSITIONS else ONLY


def _people_in_order(people: set[str], video: Path) -> tuple[str, ...]:
    """The labelled people of a video, left to right; LabelsError for hints that do not say who."""
    if len(people) == 1:
        return tuple(people)
    ordinals = sorted((p for p in people if p.isdigit()), key=int)
    if ONLY in people or (ordinals and len(ordinals) != len(people)):
        raise LabelsError(f"{video}: {HINT_HELP}; positions and ordinals do not mix in one video "
                          f"(found: {', '.join(sorted(people))})")
    return tuple(ordinals) if ordinals else tuple(p for p in POSITIONS if p in people)


def load_video_item(video: Path) -> EvalItem | None:
    """A video's labels from ``<video>.labels.csv`` and ``<video>.labels_lowconf.csv`` (None: no rows)."""
    labels: dict[int, list[FaceLabel]] = {}
    people: set[str] = set()
    for suffix, confident in ((".labels.csv", True), (".labels_lowconf.csv", False)):
        path = video.parent / (video.name + suffix)
        if not path.is_file():
            continue
        for where, row in _csv_rows(path, VIDEO_COLUMNS):
            start = _int(row.get("start_frame", ""), "start_frame", where)
            end = _int(row.get("end_frame_exclusive", ""), "end_frame_exclusive", where)
            if end <= start:
                raise LabelsError(f"{where}: end_frame_exclusive {end} must be greater than start_frame {start}")
            label = FaceLabel(person_from_hint(row.get("face_hint", "")), _class(row.get("label", ""), where), confident)
            for frame in range(start, end):
                if any(other.person == label.person for other in labels.get(frame, ())):
                    raise LabelsError(f"{where}: frame {frame} of the {label.person} face is labelled twice")
                labels.setdefault(frame, []).append(label)
            people.add(label.person)
    if not labels:
        return None
    order = _people_in_order(people, video)
    if not video.is_file():
        raise LabelsError(f"labels for {video.name} but no video file {video}")
    return EvalItem(video.name, "video", video, labels, order)


def load_image_items(labels_csv: Path) -> list[EvalItem]:
    """Photos with face boxes from ``images/labels.csv`` (confidence ``low``: low-confidence set)."""
    faces: dict[str, list[FaceLabel]] = {}
    for where, row in _csv_rows(labels_csv, IMAGE_COLUMNS):
        name = row.get("file", "")
        x, y, w, h = (_int(row.get(k, ""), k, where) for k in "xywh")
        if w == 0 or h == 0:
            raise LabelsError(f"{where}: empty face box")
        person = row.get("face_id", "") or str(len(faces.get(name, [])))
        if any(f.person == person for f in faces.get(name, ())):
            raise LabelsError(f"{where}: face_id {person} of {name} is listed twice")
        confident = row.get("confidence", "").lower() != "low"
        faces.setdefault(name, []).append(FaceLabel(person, _class(row.get("label", ""), where), confident, Box(x, y, w, h)))
    items = []
    for name, labelled in sorted(faces.items()):
        path = labels_csv.parent / name
        if not path.is_file():
            raise LabelsError(f"{labels_csv}: no image file {path}")
        items.append(EvalItem(name, "image", path, {0: labelled}, tuple(f.person for f in labelled)))
    return items


def load_eval_set(directory: str | Path) -> list[EvalItem]:
    """Every labelled video (``videos/``) and photo (``images/labels.csv``) of an eval folder."""
    root = Path(directory)
    if not root.is_dir():
        raise LabelsError(f"no evaluation folder at {root}")
    items = []
    videos = root / "videos"
    if videos.is_dir():
        names = {p.name.rsplit(".labels", 1)[0] for p in videos.glob("*.labels*.csv")}
        items += [i for i in (load_video_item(videos / n) for n in sorted(names)) if i is not None]
    if (root / "images" / "labels.csv").is_file():
        items += load_image_items(root / "images" / "labels.csv")
    if not items:
        raise LabelsError(f"{root} holds no labels: expected videos/*.labels.csv or images/labels.csv")
    return items


def named_image_items(directory: str | Path) -> list[EvalItem]:
    """Photos labelled by file name (``happy-baby.jpeg`` -> happy); other names are left out."""
    items = []
    for path in sorted(Path(directory).iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            cid = class_id(re.split(r"[-_ .]", path.stem)[0])
        except ValueError:
            continue
        items.append(EvalItem(path.name, "named image", path, {0: [FaceLabel(LARGEST, cid)]}, (LARGEST,)))
    return items


def read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------------------------------------ matching

def _greedy(pairs) -> dict:
    """Lowest-cost first: (cost, a, b) -> {a: b}, each a and b used once."""
    taken, used = {}, set()
    for _, a, b in sorted(pairs):
        if a not in taken and b not in used:
            taken[a] = b
            used.add(b)
    return taken


def _holds_centre(box: Box, other: Box) -> bool:
    cx, cy = other.center
    return box.x <= cx <= box.x + box.w and box.y <= cy <= box.y + box.h


def match_faces(item: EvalItem, labels: list[FaceLabel], boxes: list[Box], width: int) -> tuple[dict[str, int], list[int]]:
    """(person -> index into ``boxes``, indices of phantom boxes) for one labelled frame."""
    if item.kind == "named image":
        largest = max(range(len(boxes)), key=lambda i: boxes[i].area, default=None)
        return ({} if largest is None else {LARGEST: largest}), []
    if item.kind == "image":
        pairs = [
            (np.hypot(*np.subtract(b.center, f.box.center)) / max(f.box.w, f.box.h), f.person, i)
            for f in labels for i, b in enumerate(boxes)
            if _holds_centre(f.box, b) and _holds_centre(b, f.box)
        ]
        matched = _greedy(pairs)
        return matched, sorted(set(range(len(boxes))) - set(matched.values()))
    n = len(item.people)
    by_size = sorted(range(len(boxes)), key=lambda i: -boxes[i].area)
    kept, phantoms = by_size[:n], sorted(by_size[n:])
    if len(kept) == n:
        kept.sort(key=lambda i: boxes[i].center[0])
        return dict(zip(item.people, kept)), phantoms
    place = {p: (k + 0.5) / n for k, p in enumerate(item.people)}
    return _greedy((abs(boxes[i].center[0] / width - place[p]), p, i) for p in item.people for i in kept), phantoms


# ------------------------------------------------------------------------------------------ scoring

def _empty_confusion() -> np.ndarray:
    return np.zeros((len(SCORE_CLASSES), len(SCORE_CLASSES)), dtype=np.int64)


def _score_dict(confusion: np.ndarray) -> dict | None:
    """WAR/UAR/recall/confusion of one label set, with face-found rate; None without samples."""
    total = int(confusion.sum())
    if total == 0:
        return None
    data = scores_from_confusion(confusion).to_dict(SCORE_CLASSES)
    data["per_class_recall"].pop(NO_FACE)
    found = total - int(confusion[:, MISSED].sum())
    return {**data, "faces_found": found, "found_rate": found / total}


@dataclass
class ItemScore:
    """Counts for one item (or, summed, for a whole set)."""

    name: str
    kind: str
    frames: int = 0
    labelled_frames: int = 0
    phantom_frames: int = 0
    phantom_faces: int = 0
    confusion: dict[str, np.ndarray] = field(default_factory=lambda: {s: _empty_confusion() for s in LABEL_SETS})
    ids_per_appearance: list[int] = field(default_factory=list)  # videos: distinct ids per person-run
    # the same counts split by face height: [size bin, truth, prediction] (evaluation/breakdown.py)
    size_confusion: dict[str, np.ndarray] = field(
        default_factory=lambda: {s: breakdown.empty_size_confusion(len(SCORE_CLASSES)) for s in LABEL_SETS})
    context: context_eval.ContextScore = field(default_factory=context_eval.ContextScore)  # what the LLM hears
    context_frames: list[context_eval.ReplayFrame] = field(default_factory=list, repr=False)  # to replay again
    # labelled face -> how often each person id was given to it (identity on); the engine's
    # gallery outlives its per-item reset, so the same person in two items can share an id
    person_ids: dict[str, Counter] = field(default_factory=dict)

    def add(self, other: "ItemScore") -> None:
        for name in ("frames", "labelled_frames", "phantom_frames", "phantom_faces"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for s in LABEL_SETS:
            self.confusion[s] += other.confusion[s]
            self.size_confusion[s] += other.size_confusion[s]
        self.ids_per_appearance += other.ids_per_appearance
        self.context.add(other.context)
        self.person_ids.update({f"{other.name}:{face}": ids for face, ids in other.person_ids.items()})

    def to_dict(self) -> dict:
        ids = [n for n in self.ids_per_appearance if n > 0]
        return {
            "name": self.name,
            "kind": self.kind,
            "frames": self.frames,
            "labelled_frames": self.labelled_frames,
            **{s: _score_dict(self.confusion[s]) for s in LABEL_SETS},
            "all_labels": _score_dict(sum(self.confusion.values())),
            "phantom_frames": self.phantom_frames,
            "phantom_faces": self.phantom_faces,
            "phantom_rate": self.phantom_frames / self.labelled_frames if self.labelled_frames else None,
            "appearances": len(self.ids_per_appearance),
            "appearances_never_found": len(self.ids_per_appearance) - len(ids),
            "ids_per_appearance": float(np.mean(ids)) if ids else None,
            "max_ids_per_appearance": max(ids, default=None),
            "appearances_with_one_id": (sum(n == 1 for n in ids) / len(ids)) if ids else None,
            "by_face_height": {s: breakdown.size_rows(self.size_confusion[s], SCORE_CLASSES, MISSED) for s in LABEL_SETS},
            "by_class": {s: breakdown.class_rows(self.confusion[s], SCORE_CLASSES) for s in LABEL_SETS},
            **self.context.to_dict(),
            "person_ids": {face: ids.most_common(1)[0][0] for face, ids in sorted(self.person_ids.items())},
            "person_ids_per_face": (float(np.mean([len(ids) for ids in self.person_ids.values()]))
                                    if self.person_ids else None),
        }


def _appearance_ids(frames_ids: dict[str, dict[int, str | None]]) -> list[int]:
    """Distinct ids per run of consecutive labelled frames, for each person."""
    counts = []
    for per_frame in frames_ids.values():
        run: set[str] = set()
        previous = None
        for frame in sorted(per_frame):
            if previous is not None and frame != previous + 1:
                counts.append(len(run))
                run = set()
            if per_frame[frame] is not None:
                run.add(per_frame[frame])
            previous = frame
        if previous is not None:
            counts.append(len(run))
    return counts


def _frames(item: EvalItem, repeats: int):
    """(index, Frame) of an item: a video's frames, or a photo repeated as a still camera."""
    if item.kind == "video":
        for index, frame in enumerate(VideoSource(item.path, start_ns=0, source=item.name)):
            yield index, frame
        return
    image = read_image(item.path)
    for k in range(repeats):
        yield (0 if k == repeats - 1 else None), Frame(image, int(k * 1e9 / STILL_FPS), "camera", item.name)


def frame_count(item: EvalItem, repeats: int) -> int:
    return len(VideoSource(item.path)) if item.kind == "video" else repeats


def score_item(engine, item: EvalItem, repeats: int = 1, progress=None,
               context: ContextConfig | None = None) -> ItemScore:
    """Run ``item`` through ``engine`` (its tracks reset before and after) and count the outcome;
    then replay its estimates through the LLM bridge's context tracker (``context`` config)."""
    result = ItemScore(item.name, item.kind)
    ids: dict[str, dict[int, str | None]] = {}
    samples = []  # (person, frame, face height or None, label set, truth, prediction)
    engine.reset()
    try:
        for index, frame in _frames(item, repeats):
            estimates = engine.process(frame)
            result.frames += 1
            if progress is not None:
                progress.update(1)
            replayed = context_eval.ReplayFrame(frame.stamp_ns, estimates, index=result.frames - 1)
            result.context_frames.append(replayed)
            labels = item.labels.get(index) if index is not None else None
            if not labels:
                continue
            matched, phantoms = match_faces(item, labels, [e.box for e in estimates], frame.image.shape[1])
            result.labelled_frames += 1
            result.phantom_faces += len(phantoms)
            result.phantom_frames += bool(phantoms)
            for label in labels:
                est = estimates[matched[label.person]] if label.person in matched else None
                target_set = LABEL_SETS[0] if label.confident else LABEL_SETS[1]
                predicted = MISSED if est is None else est.class_id
                result.confusion[target_set][label.class_id, predicted] += 1
                ids.setdefault(label.person, {})[index] = None if est is None else str(est.face_id)
                height = label.box.h if label.box is not None else (None if est is None else est.box.h)
                samples.append((label.person, index, height, target_set, label.class_id, predicted))
                replayed.labels[label.person] = label.class_id
                if est is not None:
                    replayed.subjects[label.person] = str(est.subject_id)
                if est is not None and est.person_id:
                    result.person_ids.setdefault(label.person, Counter())[est.person_id] += 1
    finally:
        engine.reset()
    heights = breakdown.fill_missing_heights([s[:3] for s in samples])
    for height, (_, _, _, target_set, truth, predicted) in zip(heights, samples):
        result.size_confusion[target_set][breakdown.size_bin(height), truth, predicted] += 1
    if item.kind == "video":
        result.ids_per_appearance = _appearance_ids(ids)
    result.context = context_eval.replay(result.context_frames, context or ContextConfig(), item.kind == "video")
    return result


@dataclass
class EvalSetResult:
    items: list[ItemScore]
    overall: ItemScore
    identity: dict | None = None  # identity_score.score_identity, with an identities file

    def to_dict(self) -> dict:
        return {"overall": self.overall.to_dict(), "items": [i.to_dict() for i in self.items],
                "class_order": list(SCORE_CLASSES), "identity": self.identity}


def identity_appearances(items: list[ItemScore], identities: dict[tuple[str, str], str]):
    """Each scored item as one appearance of the real people its listed faces show."""
    appearances = []
    for item in items:
        seen: dict[str, Counter] = {}
        for face, ids in item.person_ids.items():
            person = identity_score.person_of(identities, item.name, face)
            if person is not None:
                seen.setdefault(person, Counter()).update(ids)
        appearances.append((item.name, seen))
    return appearances


def run_eval_set(engine, items: list[EvalItem], progress: bool = True,
                 context: ContextConfig | None = None, identities: dict | None = None) -> EvalSetResult:
    """Score every item with one engine; a progress bar over all frames when ``progress``;
    ``context``: the LLM bridge's context configuration for "what the LLM hears" (the node's defaults);
    ``identities`` (``identity_score.load_identities``): also score re-identification, the
    items in this order being the appearances (the engine's gallery outlives its per-item reset)."""
    repeats = max(1, int(getattr(engine.config, "min_hits", 1)))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(frame_count(i, repeats) for i in items), unit="frame", dynamic_ncols=True,
                   desc="eval-set")
    overall = ItemScore("overall", "all")
    scores = []
    try:
        for item in items:
            scored = score_item(engine, item, repeats, bar, context)
            scores.append(scored)
            overall.add(scored)
    finally:
        if bar is not None:
            bar.close()
    identity = None
    if identities is not None:
        identity = identity_score.score_identity(identity_appearances(scores, identities))
    return EvalSetResult(scores, overall, identity)


# ------------------------------------------------------------------------------------------ report

def _pct(value) -> str:
    return format_value(value, True)


def _summary_rows(data: dict) -> list[tuple[str, str]]:
    rows = []
    for label_set in (*LABEL_SETS, "all_labels"):
        s = data[label_set]
        if s is not None:
            rows += [(f"{label_set}: WAR / UAR", f"{_pct(s['war'])} / {_pct(s['uar'])} ({s['samples']} labelled faces)"),
                     (f"{label_set}: faces found", f"{_pct(s['found_rate'])} ({s['faces_found']})")]
    rows += [
        ("phantom-face rate (labelled frames with a face where nobody is)",
         f"{_pct(data['phantom_rate'])} ({data['phantom_frames']} of {data['labelled_frames']} frames, "
         f"{data['phantom_faces']} faces)"),
        ("track ids per person per appearance (videos)",
         f"mean {format_value(data['ids_per_appearance'])}, max {format_value(data['max_ids_per_appearance'])}, "
         f"exactly one in {_pct(data['appearances_with_one_id'])} of {data['appearances']}"),
    ]
    return rows


def _item_row(item: dict) -> tuple:
    conf, low = item["confident"], item["lowconf"]
    return (item["name"], item["kind"],
            "-" if conf is None else f"{_pct(conf['war'])} / {_pct(conf['uar'])}",
            "-" if low is None else f"{_pct(low['war'])} / {_pct(low['uar'])}",
            _pct(item["all_labels"]["found_rate"]), _pct(item["phantom_rate"]),
            "-" if item["ids_per_appearance"] is None else f"{item['ids_per_appearance']:.1f} (max {item['max_ids_per_appearance']})")


def write_eval_set_report(result: EvalSetResult, out_dir: str | Path, title: str = "Accuracy on a labelled set",
                          info: dict | None = None) -> dict[str, Path]:
    """report.json (everything in ``result.to_dict()`` plus ``info`` under "run"), report.md,
    report.html and one confusion-matrix PNG per label set with samples."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = {**result.to_dict(), "run": info or {}}
    overall = data["overall"]
    paths = {
        f"confusion ({s})": plot_confusion(result.overall.confusion[s], SCORE_CLASSES, out / f"confusion_{s}.png",
                                           f"{s} labels (rows: truth; 'no face' = missed)")
        for s in LABEL_SETS if overall[s] is not None
    }
    paths.update({
        f"what the LLM hears: {item.name}": context_eval.plot_context_timeline(
            item.context, out / f"context_{n}.png", f"{item.name}: the context sentence against the labels")
        for n, item in enumerate(result.items) if item.kind == "video" and item.context.timeline
    })
    data["plots"] = {k: p.name for k, p in paths.items()}
    paths["json"] = out / "report.json"
    paths["json"].write_text(json.dumps(data, indent=2) + "\n")
    recall = [(n, *(("-" if overall[s] is None else _pct(overall[s]["per_class_recall"][n])) for s in LABEL_SETS))
              for n in CLASS_NAMES]
    sections = [
        ("Scores (a missed face counts as wrong)", ("metric", "value"), _summary_rows(overall)),
        ("Per-class recall", ("class", *LABEL_SETS), recall),
        ("Per class, with counts", ("class", "labels", "recall", "most often read as"),
         breakdown.class_table(overall["by_class"])),
        ("By face height (box height in pixels; a missed face counts in the bin of its nearest found box)",
         ("face height", "labels", "accuracy", "faces found", "per class (correct/samples)"),
         breakdown.size_table(overall["by_face_height"])),
        ("Per item", ("item", "kind", "WAR / UAR", "low-confidence WAR / UAR", "faces found", "phantom rate",
                      "ids per appearance"), [_item_row(i) for i in data["items"]]),
        ("What the LLM hears (the context sentence, all labels)", ("metric", "value"),
         [("per-frame accuracy of the same samples (WAR, all labels)", _pct(overall["all_labels"]["war"])),
          *context_eval.summary_rows(overall)]),
        ("What the LLM hears, per item", ("item", "context accuracy", "per-frame WAR", "uncertain", "head count",
                                          "delay median / p90 s", "wrong s (episodes)"),
         [context_eval.item_row(i) for i in data["items"]]),
    ]
    if data["identity"] is not None:
        sections.append(("Who is who (re-identification, against the identities file)", ("metric", "value"),
                         identity_rows(data["identity"])))
    context = [(str(k), str(v)) for k, v in (info or {}).items()]
    paths.update(write_pages(out, title, context, sections, paths))
    return paths


def identity_rows(identity: dict) -> list[tuple[str, str]]:
    """The identity scores as (metric, value) rows, failures named."""
    rows = [
        ("returns that got their earlier person id",
         f"{identity['returns_matched']} of {identity['returns']} ({_pct(identity['return_match_rate'])})"),
        ("false merges (pairs of different people sharing a person id)",
         f"{identity['false_merges']} of {identity['pairs']} pairs"),
        ("groups given one person id each", f"{identity['groups_with_one_id_each']} of {len(identity['groups'])}"),
        ("person ids given / people", f"{identity['person_ids_given']} / {identity['people']}"),
    ]
    rows += [(f"missed return: {f['person']} in {f['appearance']}", f"{f['got']} (before: {f['before']})")
             for f in identity["return_failures"]]
    rows += [(f"merged: {' and '.join(m['people'])}", ", ".join(m["person_ids"])) for m in identity["merged_pairs"]]
    return rows


def summary_line(overall: dict) -> str:
    """One line for a terminal: the confident-label scores, faces found, phantoms and ids."""
    conf = overall["confident"] or overall["all_labels"]
    return (f"WAR {_pct(conf['war'])}  UAR {_pct(conf['uar'])}  faces found {_pct(conf['found_rate'])}  "
            f"phantom rate {_pct(overall['phantom_rate'])}  ids per appearance "
            f"{format_value(overall['ids_per_appearance'])} (max {format_value(overall['max_ids_per_appearance'])})")
