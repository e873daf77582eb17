"""eval-set accuracy by face height and by class (evaluation/breakdown.py), against hand-worked counts."""
from __future__ import annotations

import json

import pytest

from emotion_perception.evaluation import breakdown, evalset
from emotion_perception.types import Box

from test_evalset import HAPPY, NEUTRAL, SAD, PlannedEngine, make_set


@pytest.mark.parametrize("height, name", [
    (10, "< 64 px"), (63.9, "< 64 px"), (64, "64-96 px"), (95, "64-96 px"), (96, "96-160 px"),
    (159.5, "96-160 px"), (160, ">= 160 px"), (4000, ">= 160 px"), (None, "unknown"), (float("nan"), "unknown"),
])
def test_size_bins_edges(height, name):
    assert breakdown.SIZE_BINS[breakdown.size_bin(height)] == name


def test_a_miss_takes_the_height_of_the_same_persons_nearest_found_frame():
    samples = [("left", 0, 50.0), ("left", 1, None), ("left", 6, 120.0), ("left", 5, None), ("left", 3, None),
               ("right", 0, None), ("right", 2, 70.0), ("nobody", 0, None)]
    # frame 3 is 3 from frame 0 (50) and 3 from frame 6 (120): the earlier one wins the tie
    assert breakdown.fill_missing_heights(samples) == [50.0, 50.0, 120.0, 120.0, 50.0, 70.0, 70.0, None]


def test_eval_set_counts_by_face_height_and_class(tmp_path):
    # 6 labelled frames of one person: 0-2 happy, 3-5 neutral (confident); the planned engine:
    # 0 happy at h 50, 1 happy at h 50, 2 missed (nearest found: frame 1, h 50), 3 sad at h 100,
    # 4 neutral at h 100, 5 neutral at h 200; the photo (reset: frame 0 again) is found happy with
    # the 50 px box, which holds its labelled 40 px box's centre: counted at the label's height
    root = make_set(tmp_path, "0,3,happy,only face\n3,6,neutral,only face\n",
                    image_rows="photo.png,0,10,10,40,40,happy,high,\n")
    small, mid, large = Box(0, 0, 50, 50), Box(0, 0, 100, 100), Box(0, 0, 200, 200)
    plan = {0: [("a", small, HAPPY)], 1: [("a", small, HAPPY)], 3: [("a", mid, SAD)], 4: [("a", mid, NEUTRAL)],
            5: [("a", large, NEUTRAL)]}

    result = evalset.run_eval_set(PlannedEngine(plan), evalset.load_eval_set(root), progress=False)
    data = result.to_dict()["overall"]
    bins = {row["bin"]: row for row in data["by_face_height"]["confident"]}
    assert set(bins) == {"< 64 px", "96-160 px", ">= 160 px"}
    # < 64: video frames 0, 1, 2 (miss) + the photo (its labelled box is 40 high) -> 3 of 4
    assert (bins["< 64 px"]["samples"], bins["< 64 px"]["correct"], bins["< 64 px"]["faces_found"]) == (4, 3, 3)
    assert bins["< 64 px"]["accuracy"] == 0.75 and bins["< 64 px"]["per_class"] == {"happy": [3, 4]}
    assert (bins["96-160 px"]["samples"], bins["96-160 px"]["correct"]) == (2, 1)
    assert bins["96-160 px"]["per_class"] == {"neutral": [1, 2]}
    assert (bins[">= 160 px"]["samples"], bins[">= 160 px"]["correct"]) == (1, 1)
    assert data["by_face_height"]["lowconf"] == []
    by_class = data["by_class"]["confident"]
    assert by_class["happy"] == {"samples": 4, "correct": 3, "recall": 0.75, "mistaken_for": {"no face": 1}}
    assert by_class["neutral"] == {"samples": 3, "correct": 2, "recall": 2 / 3, "mistaken_for": {"sad": 1}}
    assert set(by_class) == {"happy", "neutral"}

    paths = evalset.write_eval_set_report(result, tmp_path / "report")
    md = paths["markdown"].read_text()
    assert "| < 64 px | confident | 75.0% (3 of 4) | 3 of 4 | happy 3/4 |" in md
    assert "| neutral | confident | 66.7% (2 of 3) | sad 1 |" in md
    assert "96-160 px" in paths["html"].read_text()
    assert json.loads(paths["json"].read_text())["overall"]["by_face_height"]["confident"][0]["bin"] == "< 64 px"
