"""Re-identification scores (returns, false merges, groups) against hand-worked answers, the
identities file format, and the eval-set runner scoring its items as appearances."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from emotion_perception.evaluation import evalset
from emotion_perception.evaluation.identity_score import load_identities, person_of, score_identity
from emotion_perception.evaluation.labels_file import LabelsError
from emotion_perception.labels import class_id
from emotion_perception.types import Box

from test_evalset import PlannedEngine, make_set

HAPPY = class_id("happy")


def test_known_answer_scores():
    """ann: p1, p1 (a return), then mostly p3 (a missed return: p1 twice does not outvote p3
    three times); bob: p2, then p1 in a group with ann's p3 (a missed return, and ann and bob
    share p1: one false merge); cy: p4, never in a group. The group has 2 ids for 2 people."""
    appearances = [
        ("a1", {"ann": Counter(p1=5)}),
        ("b1", {"bob": Counter(p2=4)}),
        ("a2", {"ann": Counter(p1=7)}),
        ("c1", {"cy": Counter(p4=2)}),
        ("a3", {"ann": Counter(p3=3, p1=2)}),
        ("g", {"ann": Counter(p3=6), "bob": Counter(p1=6)}),
        ("empty", {"cy": Counter()}),  # a face never given an id: no appearance of cy
    ]
    s = score_identity(appearances)
    # returns: a2 ok (p1), a3 miss (p3 vs p1), g/ann ok (p3 vs p3), g/bob miss (p1 vs p2)
    assert (s["returns"], s["returns_matched"], s["return_match_rate"]) == (4, 2, 0.5)
    assert [(f["appearance"], f["person"], f["got"], f["before"]) for f in s["return_failures"]] == [
        ("a3", "ann", "p3", "p1"), ("g", "bob", "p1", "p2")]
    assert (s["people"], s["pairs"], s["false_merges"]) == (3, 3, 1)
    assert s["merged_pairs"] == [{"people": ["ann", "bob"], "person_ids": ["p1"]}]
    assert s["groups"] == [{"appearance": "g", "people": 2, "person_ids": 2}] and s["groups_with_one_id_each"] == 1
    assert s["person_ids_given"] == 4


def test_a_group_sharing_one_id_fails_the_group_check():
    s = score_identity([("g", {"ann": Counter(p1=3), "bob": Counter(p1=2, p2=1)})])
    assert s["groups"] == [{"appearance": "g", "people": 2, "person_ids": 1}] and s["groups_with_one_id_each"] == 0
    assert s["returns"] == 0 and s["return_match_rate"] is None and s["false_merges"] == 1


def test_identities_file(tmp_path):
    path = tmp_path / "identities.csv"
    path.write_text("file,face,person\nclip.avi,,ann\nduo.mp4,left,ann\nduo.mp4,right,bob\nphoto.png,0,cy\n")
    ids = load_identities(path)
    assert person_of(ids, "clip.avi", "only") == "ann"  # empty face: every face of the file
    assert (person_of(ids, "duo.mp4", "left"), person_of(ids, "duo.mp4", "right")) == ("ann", "bob")
    assert person_of(ids, "duo.mp4", "centre") is None and person_of(ids, "other.png", "0") is None


@pytest.mark.parametrize("text, message", [
    ("file,person\nclip.avi,ann\n", "columns file,face,person"),
    ("", "columns file,face,person"),
    ("file,face,person\nclip.avi,,\n", ":2: file and person must not be empty"),
    ("file,face,person\nclip.avi,left,ann\nclip.avi,left,bob\n", ":3: clip.avi face left is listed as two people"),
])
def test_bad_identities_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "identities.csv"
    path.write_text(text)
    with pytest.raises(LabelsError, match=message):
        load_identities(path)


def test_eval_set_scores_identity_over_its_items_in_order(tmp_path):
    """The clip and the photo are one person (ann): the photo returns with the clip's id."""
    root = make_set(tmp_path / "set", "0,2,happy,only face\n",
                    image_rows="photo.png,0,10,10,30,30,happy,high,\n")
    (root / "identities.csv").write_text("file,face,person\nclip.avi,,ann\nphoto.png,0,ann\n")
    face = Box(10, 10, 30, 30)

    class TwoItems(PlannedEngine):
        """The clip's plan, then (after the runner's resets around it) the photo's."""
        plans = iter([{0: [("a", face, HAPPY, "person_1")], 1: [("a", face, HAPPY, "person_1")]}, {},
                      {0: [("b", face, HAPPY, "person_2")]}, {}])

        def reset(self, source=None):
            super().reset(source)
            self.plan = next(self.plans)

    items = evalset.load_eval_set(root)
    assert [i.name for i in items] == ["clip.avi", "photo.png"]
    result = evalset.run_eval_set(TwoItems({}), items, progress=False,
                                  identities=load_identities(root / "identities.csv"))
    assert result.identity["returns"] == 1 and result.identity["returns_matched"] == 0
    assert result.identity["return_failures"][0]["got"] == "person_2"
    paths = evalset.write_eval_set_report(result, tmp_path / "report")
    assert json.loads(paths["json"].read_text())["identity"]["returns"] == 1
    assert "| returns that got their earlier person id | 0 of 1 (0.0%) |" in paths["markdown"].read_text()
    assert evalset.run_eval_set(PlannedEngine({}), items, progress=False).identity is None


def test_cli_eval_set_bad_identities_file_is_one_line_before_the_model_loads(tmp_path, capsys):
    from emotion_perception.cli import main

    make_set(tmp_path, "0,2,happy,only\n")
    (tmp_path / "identities.csv").write_text("file,face,person\nclip.avi,,\n")  # found by default
    assert main(["eval-set", str(tmp_path), "--profile", "no-such-profile"]) == 1
    err = capsys.readouterr().err
    assert "identities.csv:2: file and person must not be empty" in err and "\n" not in err.strip()
