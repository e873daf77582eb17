"""Ground-truth labels for a recording: a CSV of frame or time ranges, or a label topic in a bag.

CSV format (``#`` starts a comment, a header row is optional)::

    start,end,label[,face_id]
    0,45,happy          # frames 0..44 of the main face (largest box) are happy
    45,60,neutral,face_3  # frames 45..59 of tracked face "face_3" are neutral

face_id is the tracker's id as in results.jsonl and EmotionState.face_id: ``face_<n>`` for one
camera, ``cam<i>_face_<n>`` from a node serving several cameras (live evaluation).

Ranges are half-open, ``[start, end)``, in frame indices (``units="frames"``, the recording's
0-based frame order) or in seconds since the first frame's stamp (``units="seconds"``). A range
without face_id labels the *main face* (the largest box in each frame). Two ranges of the same
face that overlap are an error, and so is a class name outside labels.CLASS_NAMES (aliases such as
"happiness" are accepted). Frames no range covers are not scored.

Label topic: ``std_msgs/String`` messages holding a class name; each one labels the main face
from its log time until the next message; an empty string or "none" ends the labelled span.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from ..labels import class_id, class_name

UNITS = ("frames", "seconds")
_HEADER = ("start", "end", "label")
_NO_LABEL = ("", "none", "-")


class LabelsError(ValueError):
    """A labels file or label topic that cannot be used; the message names the line."""


@dataclass(frozen=True)
class LabelRange:
    start: float
    end: float
    class_id: int
    face_id: str | None = None  # None: the main face
    line: int = 0  # where it came from, for error messages

    def covers(self, position: float) -> bool:
        return self.start <= position < self.end


@dataclass(frozen=True)
class Labels:
    ranges: tuple[LabelRange, ...]
    units: str = "frames"
    source: str = ""

    def __post_init__(self) -> None:
        if self.units not in UNITS:
            raise LabelsError(f"label units must be one of {', '.join(UNITS)}, got {self.units!r}")
        _check_overlaps(self.ranges, self.source)

    @property
    def face_ids(self) -> set[str | None]:
        """The faces labelled (None = main face)."""
        return {r.face_id for r in self.ranges}

    def target(self, frame_index: int, seconds: float, face_id: str | None = None) -> int | None:
        """Class id labelled for ``face_id`` (None = main face) at this frame, or None."""
        position = frame_index if self.units == "frames" else seconds
        for r in self.ranges:
            if r.face_id == face_id and r.covers(position):
                return r.class_id
        return None


def _check_overlaps(ranges, source: str) -> None:
    by_face: dict[str | None, list[LabelRange]] = {}
    for r in ranges:
        by_face.setdefault(r.face_id, []).append(r)
    for face, items in by_face.items():
        items = sorted(items, key=lambda r: (r.start, r.end))
        for a, b in zip(items, items[1:]):
            if b.start < a.end:
                who = "the main face" if face is None else f"face {face}"
                raise LabelsError(
                    f"{source or 'labels'}: overlapping ranges for {who}: line {a.line} "
                    f"[{a.start:g}, {a.end:g}) {class_name(a.class_id)} and line {b.line} "
                    f"[{b.start:g}, {b.end:g}) {class_name(b.class_id)}"
                )


def non_negative_number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LabelsError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise LabelsError(f"{where}: {what} {text!r} is not a finite number")
    if value < 0:
        raise LabelsError(f"{where}: {what} {value:g} is negative")
    return value


def load_labels(path: str | Path, units: str = "frames") -> Labels:
    """Parse a labels CSV (see the module docstring); raises LabelsError naming the bad line."""
    path = Path(path)
    if units not in UNITS:
        raise LabelsError(f"label units must be one of {', '.join(UNITS)}, got {units!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabelsError(f"cannot read labels file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise LabelsError(f"labels file {path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    ranges = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0]
        if not line.strip():
            continue
        cells = [c.strip() for c in next(csv.reader([line]))]
        while cells and not cells[-1]:
            cells.pop()
        if tuple(c.lower() for c in cells[:3]) == _HEADER:
            continue
        where = f"{path}:{number}"
        if len(cells) not in (3, 4):
            raise LabelsError(f"{where}: expected start,end,label[,face_id], got {len(cells)} columns")
        start = non_negative_number(cells[0], "start", where)
        end = non_negative_number(cells[1], "end", where)
        if end <= start:
            raise LabelsError(f"{where}: end {end:g} must be greater than start {start:g}")
        try:
            cid = class_id(cells[2])
        except ValueError as exc:
            raise LabelsError(f"{where}: {exc}") from None
        face = cells[3] if len(cells) == 4 and cells[3] else None
        ranges.append(LabelRange(start, end, cid, face, number))
    if not ranges:
        raise LabelsError(f"labels file {path} has no label ranges")
    return Labels(tuple(ranges), units, str(path))


def labels_from_messages(messages, t0_ns: int, end_ns: int, source: str = "label topic") -> Labels:
    """Labels (in seconds) from a label topic: ``messages`` = [(log_time_ns, text)] in time order.

    Each label holds until the next message, the last one until ``end_ns`` (inclusive).
    """
    ranges = []
    messages = sorted(messages)
    for i, (t_ns, text) in enumerate(messages):
        if text.strip().lower() in _NO_LABEL:
            continue
        try:
            cid = class_id(text)
        except ValueError as exc:
            raise LabelsError(f"{source}: message {i + 1} at {t_ns} ns: {exc}") from None
        stop_ns = messages[i + 1][0] if i + 1 < len(messages) else end_ns + 1
        if stop_ns > t_ns:
            ranges.append(LabelRange((t_ns - t0_ns) / 1e9, (stop_ns - t0_ns) / 1e9, cid, None, i + 1))
    if not ranges:
        raise LabelsError(f"{source} holds no class labels")
    return Labels(tuple(ranges), "seconds", source)


def write_labels(path: str | Path, ranges) -> Path:
    """Write ranges (LabelRange) as a labels CSV that ``load_labels`` reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["start", "end", "label", "face_id"])
        for r in ranges:
            out.writerow([f"{r.start:g}", f"{r.end:g}", class_name(r.class_id), r.face_id or ""])
    return path
