"""`emotion-perception`: record, run and evaluate recordings without ROS, and the demo.

    emotion-perception record VIDEO|CAMERA OUT_BAG      video file / camera -> rosbag2 of images
    emotion-perception run INPUT --out DIR              bag / video / camera -> results bag + JSON-lines
    emotion-perception eval RESULTS --labels CSV --out DIR   score against labels -> report
    emotion-perception eval-set DIR [--profile P]      score on a labelled set of real faces -> report
    emotion-perception calibrate DIR [--profile P]     fit the profile's temperature on a labelled set
    emotion-perception demo [--out runs/demo]           all of the above on a built-in clip

Every failure the user can fix (missing topic, damaged bag, bad labels, missing weights) ends
the program with one line on stderr and exit status 1 (EMOTION_PERCEPTION_TRACEBACK=1 shows the
traceback); Ctrl-C exits with 130 after closing what was written, so partial results stay readable.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

FETCH_HINT = ("better profiles (zero-shot CLIP, OUS, DuSE) need downloaded weights: run `emotion-fetch` "
              "(`models/fetch` in a checkout) on a machine with internet, then pass --weights-dir or use the default")


def _stamp(seconds: float | None) -> int | None:
    return None if seconds is None else int(round(seconds * 1e9))


def _add_bag_options(p: argparse.ArgumentParser) -> None:
    from .evaluation.bag_format import BAG_VERSIONS, DEFAULT_BAG_VERSION, DEFAULT_STORAGE, STORAGE_NAMES

    p.add_argument("--storage", choices=sorted(STORAGE_NAMES), default=DEFAULT_STORAGE,
                   help="rosbag2 storage plugin (default: %(default)s)")
    p.add_argument("--bag-version", type=int, choices=BAG_VERSIONS, default=DEFAULT_BAG_VERSION,
                   help="rosbag2 metadata version: 8 is read by Humble and Jazzy, 9 by Jazzy only "
                        "(default: %(default)s)")


# the settings every engine command takes as options of their own (the others: --set NAME=VALUE)
ENGINE_OPTIONS = ("profile", "device", "precision", "detector", "weights_dir", "threads", "identity")


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    from .settings import SETTINGS_BY_NAME

    for name in ENGINE_OPTIONS:
        setting = SETTINGS_BY_NAME[name]
        p.add_argument(f"--{name.replace('_', '-')}", type=setting.parse, default=setting.default,
                       metavar=setting.kind.upper(), help=setting.summary().replace("%", "%%"))


def _add_setting_options(p: argparse.ArgumentParser) -> None:
    from .settings import ENGINE_SETTINGS, SETTINGS_BY_NAME

    min_score = SETTINGS_BY_NAME["min_face_score"]
    p.add_argument("--min-face-score", type=min_score.parse, default=None, metavar="FLOAT",
                   help=min_score.summary())
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                   help="set an engine setting, repeatable (e.g. face_margin=0.1 min_hits=3 smoothing=none); "
                        "not set: the profile's value or the default. The settings: "
                        + "; ".join(s.summary().replace("%", "%%") for s in ENGINE_SETTINGS))


def _add_context_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--context-config", type=Path, default=None, metavar="PARAMS_YAML",
                   help="\"what the LLM hears\": the LLM bridge's parameters file whose context: block to replay "
                        "the estimates with (default: the node's defaults, config/llm_bridge.yaml)")
    p.add_argument("--context-set", action="append", default=[], metavar="NAME=VALUE",
                   help="override one context setting, e.g. smoothing_s=0.5, min_confidence=0.3; repeatable")


def _context_config(args):
    from .evaluation.context_eval import load_context_config

    return load_context_config(args.context_config, args.context_set)


def parse_settings(pairs: list[str]) -> dict:
    """``["face_margin=0.1", ...]`` -> EngineConfig overrides, each parsed and checked by its row
    of settings.ENGINE_SETTINGS."""
    from . import settings

    try:
        return settings.parse_settings(pairs)
    except ValueError as err:
        raise ValueError(f"--set {err}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotion-perception",
        description="Record, replay and evaluate emotion perception on recordings, without ROS.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `emotion-perception demo` for the whole chain on a built-in clip.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("record", help="turn a video file or a camera into a rosbag2 of images",
                       description="Record a video file or a camera (device index, e.g. 0) into a new rosbag2 "
                                   "of sensor_msgs/Image (rgb8/bgr8) or CompressedImage (jpeg/png). Stamps "
                                   "follow the video's timing from --start-time (default: now), or the wall "
                                   "clock for a camera.")
    p.add_argument("source", help="video file, or camera index (0, 1, ...)")
    p.add_argument("out", type=Path, help="bag directory to create (must not exist)")
    p.add_argument("--topic", default=None,
                   help="image topic (default: /camera/image_raw, or /camera/image_raw/compressed for jpeg/png)")
    p.add_argument("--format", dest="encoding", default="rgb8", choices=["rgb8", "bgr8", "jpeg", "png"],
                   help="Image encoding, or jpeg/png for CompressedImage (default: %(default)s)")
    p.add_argument("--frame-id", default="camera", help="header frame_id (default: %(default)s)")
    p.add_argument("--start-time", type=float, default=None,
                   help="stamp of the first video frame, seconds since the epoch (default: now)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: all / until Ctrl-C)")
    p.add_argument("--duration", type=float, default=0.0, help="camera: stop after N seconds (0: until Ctrl-C)")
    _add_bag_options(p)

    p = sub.add_parser("run", help="run the perception engine over a bag, video or camera",
                       description="Feed a bag (an Image or CompressedImage topic), a video file or a camera "
                                   "through the perception engine, with a progress bar. Writes DIR/results (a bag of "
                                   "EmotionStateArray on --results-topic with the input images copied in, for "
                                   "Foxglove or `ros2 bag play`; video/camera frames are stored as jpeg "
                                   "CompressedImage on /camera/image_raw/compressed), DIR/results.jsonl (one line "
                                   "per frame: stamp, faces with id, box, class, probs, polarity; latency) and "
                                   "DIR/run.json; optionally an annotated video.")
    p.add_argument("input", help="bag directory / .mcap / .db3, video file, or camera index")
    p.add_argument("--out", type=Path, default=Path("runs/run"), help="output directory (default: %(default)s)")
    p.add_argument("--topic", default=None, help="image topic of a bag input (default: its only image topic)")
    p.add_argument("--rate", choices=["max", "recorded"], default="max",
                   help="max: every frame, as fast as possible; recorded: at the recording's pace, dropping "
                        "stale frames when the engine is slower, as on the robot (default: %(default)s)")
    p.add_argument("--results-topic", default="/emotions", help="EmotionStateArray topic (default: %(default)s)")
    p.add_argument("--label-topic", default=None, help="std_msgs/String label topic of a bag input to copy along")
    p.add_argument("--video-out", type=Path, default=None,
                   help="write an annotated video at the input's frame rate: .webm (VP8, plays in browsers), "
                        ".mp4 (H.264 where this OpenCV has an encoder, else mp4v) or .avi (MJPG)")
    p.add_argument("--start-time", type=float, default=None, help="video input: stamp of the first frame (s)")
    p.add_argument("--frame-id", default="camera", help="video/camera input: header frame_id")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_engine_options(p)
    _add_setting_options(p)
    _add_bag_options(p)

    p = sub.add_parser("eval", help="score results against labels and write a report",
                       description="Score a run's results (results.jsonl or the results bag) against a labels "
                                   "CSV (start,end,label[,face_id]; half-open ranges in frames or seconds; no "
                                   "face_id = the main face, the largest box) or a std_msgs/String label topic "
                                   "in the results bag. Writes report.json, report.md, report.html and PNG plots "
                                   "(confusion matrix, timeline, latency).")
    p.add_argument("results", type=Path, help="results.jsonl, or a results bag")
    p.add_argument("--labels", type=Path, default=None, help="labels CSV")
    p.add_argument("--units", choices=["frames", "seconds"], default="frames",
                   help="units of the CSV ranges (seconds: since the first frame) (default: %(default)s)")
    p.add_argument("--label-topic", default=None, help="label topic in the results bag, instead of --labels")
    p.add_argument("--results-topic", default="/emotions", help="results bag: EmotionStateArray topic")
    p.add_argument("--image-topic", default=None, help="results bag: image topic (default: its only one)")
    p.add_argument("--out", type=Path, default=None, help="report directory (default: <results dir>/report)")
    _add_context_options(p)
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 when the labels cannot fit the run (ranges after the last frame, "
                        "frame numbers read as seconds, a face_id the run never produced); without it these "
                        "are warnings and the status is 0")

    p = sub.add_parser("eval-set", help="score a profile on a labelled set of real faces (videos + photos)",
                       description="Run the engine over every labelled video and photo of DIR (DIR/videos/"
                                   "<video>.labels.csv and .labels_lowconf.csv: start_frame,end_frame_exclusive,"
                                   "label,face_hint; DIR/images/labels.csv: file,face_id,x,y,w,h,label,confidence,"
                                   "note) and report, per item and overall, WAR and UAR over all labelled faces "
                                   "(a missed face is wrong), faces found, phantom faces, track ids per person per "
                                   "appearance, per-class recall and the confusion matrix; low-confidence labels "
                                   "apart. Writes report.json, report.md, report.html and confusion PNGs.")
    p.add_argument("directory", type=Path, help="the labelled folder (e.g. ../shared/data/eval)")
    p.add_argument("--out", type=Path, default=Path("runs/eval-set"), help="report directory (default: %(default)s)")
    p.add_argument("--named-images", type=Path, action="append", default=[],
                   help="also score the photos of this folder, labelled by file name (happy-1.jpg); the "
                        "largest face is the person (repeatable)")
    p.add_argument("--identities", type=Path, default=None,
                   help="who is who (CSV file,face,person): also score re-identification, each labelled file "
                        "an appearance in the order played: returns, false merges, groups "
                        "(default: DIR/identities.csv when there is one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_engine_options(p)
    _add_setting_options(p)
    _add_context_options(p)

    p = sub.add_parser("calibrate", help="fit a profile's probability temperature on a labelled set of real faces",
                       description="Run the engine (temperature 1) over every labelled video and photo of DIR "
                                   "(the eval-set format), fit the temperature that makes the published class "
                                   "probabilities calibrated (least negative log-likelihood of the labelled "
                                   "classes) and print the expected calibration error before and after; with "
                                   "--write, store it as calibration.temperature in the profile's YAML file.")
    p.add_argument("directory", type=Path, help="the labelled folder (e.g. ../shared/data/eval)")
    p.add_argument("--named-images", type=Path, action="append", default=[],
                   help="also use the photos of this folder, labelled by file name (repeatable)")
    p.add_argument("--write", action="store_true", help="write the temperature into the profile's YAML file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_engine_options(p)
    _add_setting_options(p)

    p = sub.add_parser("demo", help="the main job: record, run and score a built-in clip (offline, CPU, no ROS)",
                       description="Build a short recording from scikit-image's astronaut photo (pan/zoom over a "
                                   "smiling face, then frames without a face), write it as a bag, run the best "
                                   "model profile available, score it against the labels it wrote (happy) and "
                                   "print where the report is.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory (default: %(default)s)")
    p.add_argument("--no-video", action="store_true", help="skip the annotated video")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_engine_options(p)

    p = sub.add_parser("persons", help="list or erase the persons of an opt-in gallery file (docs/persons.md)",
                       description="The perception node keeps persons' face embeddings (never images) on disk "
                                   "only when gallery_path is set. List who is in such a file, or erase one "
                                   "person or everyone from it. A running node keeps its own copy in memory: "
                                   "call its forget_persons service instead (or as well).")
    p.add_argument("action", choices=("list", "forget"))
    p.add_argument("gallery", type=Path, help="the gallery file (the node's gallery_path)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--person", default="", help="forget: this person id (e.g. person_3)")
    who.add_argument("--all", action="store_true", help="forget: everyone")
    return parser


# ------------------------------------------------------------------------------------------ commands

def _engine(args, **overrides):
    """(engine, info dict) for the chosen profile; says which profile runs and why."""
    from .pipeline import create_engine

    overrides.setdefault("threads", args.threads)  # eval-set's --set threads=N says the same
    engine, choice = create_engine(profile=args.profile, device=args.device, precision=args.precision,
                                   detector=args.detector, weights_dir=args.weights_dir, identity=args.identity,
                                   **overrides)
    threads = engine.threads["torch_intra_op"]
    info = {"profile": choice.profile.name, "reason": choice.reason, "threads": threads}
    print(f"model profile: {choice.profile.name} on {engine.device}, {threads} CPU thread(s)\n  why: {choice.reason}")
    return engine, info


def _print_run(summary) -> None:
    print(f"processed {summary.processed} of {summary.frames} frames ({summary.dropped} dropped, "
          f"{summary.faces} face estimates) in {summary.wall_s:.1f} s = {summary.fps:.1f} frames/s")
    for name, path in summary.outputs.items():
        print(f"  {name}: {path}")
    if summary.video_note:
        print(f"  note: {summary.video_note}")


def _finish_run(summary, command: str) -> int:
    if summary.error:
        print(f"emotion-perception {command}: error: {summary.error} (the results of the {summary.processed} "
              "frames before it are kept, see above)", file=sys.stderr)
        return 1
    if summary.interrupted:
        print("interrupted; the results so far are kept (above)", file=sys.stderr)
        return 130
    return 0


def cmd_record(args) -> int:
    from .evaluation import jobs
    from .evaluation.bags import default_image_topic

    topic = args.topic or default_image_topic(args.encoding)
    start = time.perf_counter()
    try:
        count = jobs.record(args.source, args.out, topic, args.encoding, args.storage, args.bag_version,
                            args.frame_id, _stamp(args.start_time), args.max_frames, args.duration)
    except KeyboardInterrupt:
        print(f"interrupted; the frames recorded so far are in {args.out}", file=sys.stderr)
        return 130
    print(f"recorded {count} frames to {args.out} ({args.storage}, bag version {args.bag_version}, topic {topic}) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_run(args) -> int:
    from .evaluation import jobs
    from .evaluation.video import check_video_path

    if args.video_out is not None:
        check_video_path(args.video_out)  # before the input is opened and the model loaded
    settings = parse_settings(args.settings)
    inp = jobs.open_input(args.input, args.topic, args.label_topic, _stamp(args.start_time), args.frame_id,
                          args.max_frames)
    try:
        engine, info = _engine(args, min_face_score=args.min_face_score, **settings)
    except BaseException:
        inp.close()
        raise
    print(f"input: {inp.description}, rate {args.rate}")
    summary = jobs.run(inp, engine, args.out, args.rate, args.results_topic, args.storage, args.bag_version,
                       args.video_out, not args.no_progress, info={**info, "rate": args.rate})
    _print_run(summary)
    return _finish_run(summary, "run")


def cmd_eval(args) -> int:
    from .evaluation import jobs

    out = args.out or args.results.parent / "report"
    context = _context_config(args)
    ev, paths = jobs.evaluate_results(args.results, out, args.labels, args.units, args.label_topic,
                                      args.results_topic, args.image_topic, context=context)
    _print_scores(ev)
    print(f"report: {paths['html']} (also {paths['markdown'].name}, {paths['json'].name} and PNG plots)")
    for warning in ev.warnings:
        print(f"emotion-perception eval: warning: {warning}", file=sys.stderr)
    return 1 if args.strict and ev.warnings else 0


def _print_scores(ev) -> None:
    data = ev.to_dict()
    lat = data["latency_ms"]

    def pct(v):
        return "n/a" if v is None or v != v else f"{v:.1%}"

    def ms(v):
        return "n/a" if v is None else f"{v:.1f}"

    print(f"UAR {pct(data['uar'])}  WAR {pct(data['war'])}  ({data['scored_samples']} scored samples, "
          f"{data['missed_faces']} labelled frames without a face, {data['dropped_frames']} dropped frames)")
    print(f"latency ms p50 {ms(lat['p50'])}  p95 {ms(lat['p95'])}  p99 {ms(lat['p99'])}")


def cmd_eval_set(args) -> int:
    from .evaluation import context_eval, evalset, identity_score

    items = evalset.load_eval_set(args.directory)  # bad labels fail before the model loads
    context = _context_config(args)
    for folder in args.named_images:
        items += evalset.named_image_items(folder)
    identities_path = args.identities or (args.directory / "identities.csv")
    identities = None
    if args.identities is not None or identities_path.is_file():
        identities = identity_score.load_identities(identities_path)
    engine, info = _engine(args, min_face_score=args.min_face_score, **parse_settings(args.settings))
    info.update(detector=getattr(engine.detector, "name", type(engine.detector).__name__),
                settings=" ".join(args.settings) or "profile defaults", data=str(args.directory))
    result = evalset.run_eval_set(engine, items, progress=not args.no_progress, context=context,
                                  identities=identities)
    paths = evalset.write_eval_set_report(result, args.out, f"Accuracy on {args.directory}", info)
    overall = result.overall.to_dict()
    print(evalset.summary_line(overall))
    if result.identity is not None:
        print("who is who: " + "; ".join(f"{k} {v}" for k, v in evalset.identity_rows(result.identity)[:3]))
    print("what the LLM hears: " + "; ".join(f"{k} {v}" for k, v in context_eval.summary_rows(overall)[:2]))
    print(f"report: {paths['html']} (also {paths['markdown'].name}, {paths['json'].name})")
    return 0


def cmd_calibrate(args) -> int:
    import json

    from .evaluation import calibration, evalset
    from .models.registry import get_profile

    items = evalset.load_eval_set(args.directory)
    for folder in args.named_images:
        items += evalset.named_image_items(folder)
    settings = {**parse_settings(args.settings), "temperature": 1.0}  # fit on the model's own probabilities
    engine, info = _engine(args, min_face_score=args.min_face_score, **settings)
    info["detector"] = getattr(engine.detector, "name", type(engine.detector).__name__)
    result = evalset.run_eval_set(engine, items, progress=not args.no_progress)
    report = calibration.calibration_report(*calibration.labelled_probabilities(result.items))
    print(json.dumps({"profile": info["profile"], "data": str(args.directory), **report}, indent=1))
    if args.write:
        profile = get_profile(info["profile"])
        data = " + ".join(str(d) for d in (args.directory, *args.named_images))
        note = (f"fitted by `emotion-perception calibrate` on {data}, detector {info['detector']} "
                f"({report['samples']} labelled faces, {time.strftime('%Y-%m-%d')}): "
                f"ECE {report['ece_before']:.3f} -> {report['ece_after']:.3f}")
        calibration.write_profile_temperature(profile.path, report["temperature"], note)
        print(f"wrote calibration.temperature {report['temperature']:.3f} to {profile.path}")
    return 0


def cmd_demo(args) -> int:
    from .evaluation import demo, jobs

    start = time.perf_counter()
    print("emotion-perception demo: offline, on this machine's CPU/GPU, no ROS needed")
    out = demo.prepare(args.out)
    bag, labels, count = demo.make_recording(out)
    print(f"recording: {bag} ({count} frames at {demo.FPS} fps from scikit-image's astronaut photo: "
          f"pan/zoom over the face, then {demo.AWAY_FRAMES} frames without a face); labels: {labels}")
    engine, info = _engine(args)
    inp = jobs.open_input(str(bag), demo.TOPIC)
    summary = jobs.run(inp, engine, out, "max", video_out=None if args.no_video else out / demo.VIDEO,
                       progress=not args.no_progress, info={**info, "rate": "max"})
    _print_run(summary)
    status = _finish_run(summary, "demo")
    if status:
        return status
    ev, paths = jobs.evaluate_results(out / "results.jsonl", out / "report", labels,
                                      info={**info, "input": inp.description},
                                      title="emotion-perception demo (astronaut, labelled happy)")
    _print_scores(ev)
    print(f"model profile that ran: {info['profile']} — {FETCH_HINT}")
    print(f"demo finished in {time.perf_counter() - start:.1f} s")
    print(f"report: {paths['html']} (also {paths['markdown'].name}, {paths['json'].name})")
    return 0


def cmd_persons(args) -> int:
    from datetime import datetime, timezone

    from .persons import PersonGallery, forget_persons

    if not args.gallery.is_file():
        raise FileNotFoundError(f"no gallery file at {args.gallery}")
    gallery = PersonGallery(path=args.gallery)  # its saved retention applies: expired persons go now
    if args.action == "list":
        ids = gallery.ids()
        print(f"{args.gallery}: {len(ids)} person(s), kept {gallery.retention_s:g} s after last seen")
        for person_id in ids:
            seen = datetime.fromtimestamp(gallery.last_seen(person_id), timezone.utc)
            print(f"  {person_id}  last seen {seen:%Y-%m-%d %H:%M:%S} UTC")
        return 0
    if not args.person and not args.all:
        raise ValueError("forget needs --person ID or --all")
    ok, _, message = forget_persons(gallery, args.person)
    print(f"{args.gallery}: {message}")
    return 0 if ok else 1


COMMANDS = {"record": cmd_record, "run": cmd_run, "eval": cmd_eval, "eval-set": cmd_eval_set,
            "calibrate": cmd_calibrate, "demo": cmd_demo, "persons": cmd_persons}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input or a missing file: reported in one line, no traceback."""
    from .evaluation.bags import BagError
    from .evaluation.labels_file import LabelsError
    from .evaluation.results import ResultsError
    from .evaluation.video import VideoError
    from .images import ImageError
    from .persons import GalleryError

    # FileNotFoundError covers WeightsMissingError; KeyError an unknown profile; ValueError a bad
    # option value (device, precision); RuntimeError an engine failure during a run.
    return (BagError, LabelsError, ResultsError, VideoError, ImageError, GalleryError, FileNotFoundError,
            KeyError, ValueError, RuntimeError, ImportError)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # our own message says what is wrong with a video
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _user_errors() as exc:
        if os.environ.get("EMOTION_PERCEPTION_TRACEBACK"):
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"emotion-perception {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
