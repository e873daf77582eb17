"""Console entry points: ``emotion-train`` (fit a model profile on DFEW/FERV39k) and
``emotion-evaluate`` (score checkpoints on a test split, DFEW 5-fold averaging).

``emotion-train --config cfg.yaml [--resume last.pt] [--out DIR]`` writes to DIR: ``last.pt``
(every epoch, with optimizer/scheduler state for resuming), ``best.pt`` (best validation score),
``history.jsonl`` (one line per epoch) and ``config.yaml`` (the resolved config).

``emotion-train prepare-dfew --root DFEW --out DIR`` makes DFEW's scene stream first
(training/prepare_dfew.py; the config's ``dataset.prepared_root`` then points at DIR).

``emotion-evaluate --checkpoint 'runs/fold{fold}/best.pt' --dataset dfew --root DIR --fold all``
writes ``report.json`` (UAR, WAR, per-class recall, confusion matrix per fold, mean ± std over
folds), confusion-matrix PNGs and per-clip predictions.

The arguments are parsed before torch and the models are imported (training/jobs.py), so
``--help`` and a usage error answer at once.
"""
from __future__ import annotations

import argparse
import logging
import sys


def train_main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["prepare-dfew"]:
        from .prepare_dfew import prepare_main

        return prepare_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="emotion-train", description="Train an emotion model profile.",
        epilog="emotion-train prepare-dfew --root DFEW --out DIR: scene frames + faces from DFEW's original videos")
    parser.add_argument("--config", required=True, help="training config YAML (see training/configs/)")
    parser.add_argument("--resume", help="continue from this last.pt (model, optimizer, scheduler, epoch)")
    parser.add_argument("--out", help="output folder (overrides the config's 'out')")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    args = parser.parse_args(argv)
    _setup_logging()
    from . import jobs
    from .config import TrainConfig

    try:
        cfg = TrainConfig.from_yaml(args.config)
        if args.out:
            cfg.out = args.out
        summary = jobs.run_training(cfg, resume=args.resume, progress=not args.no_progress)
    except jobs.USER_ERRORS as e:
        print(f"emotion-train: error: {_message(e)}", file=sys.stderr)
        return 2
    best = summary["best"]
    print(f"best epoch {best['epoch']}: val UAR {best['uar']:.4f} WAR {best['war']:.4f} -> {summary['out']}")
    return 0


def evaluate_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emotion-evaluate", description="Score checkpoints on a test split.")
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint file, or a pattern with {fold} for --fold all")
    parser.add_argument("--dataset", required=True, choices=["dfew", "ferv39k"])
    parser.add_argument("--root", required=True, help="dataset root folder")
    parser.add_argument("--fold", help="DFEW fold 1..5, or 'all' (mean ± std over the five folds)")
    parser.add_argument("--out", help="report folder (default: <checkpoint folder>/evaluation)")
    parser.add_argument("--profile", help="model profile (default: the one the checkpoint names)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--weights-dir", help="folder of backbone weights (default: the profile's)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--num-frames", type=int, help="frames per clip (default: as trained)")
    parser.add_argument("--clips-root", help="DFEW: frame folders (default <root>/Clip/clip_224x224)")
    parser.add_argument("--faces-root", help="FERV39k: face crops (default <root>/2_ClipsforFaceCrop)")
    parser.add_argument("--scenes-root", help="scene frames with the same clip folders")
    parser.add_argument("--prepared-root", help="DFEW: output of 'emotion-train prepare-dfew' (faces + scenes)")
    parser.add_argument("--scene-from-face", action="store_true",
                        help="let a scene model see the face crop as its scene when the data has no scenes")
    parser.add_argument("--split-file", help="FERV39k: test list (default <root>/4_setups/All_scenes/test_All.csv)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    _setup_logging()
    from . import jobs

    try:
        jobs.run_evaluation(args)
    except jobs.USER_ERRORS as e:
        print(f"emotion-evaluate: error: {_message(e)}", file=sys.stderr)
        return 2
    return 0


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _message(e: Exception) -> str:
    return e.args[0] if isinstance(e, KeyError) and e.args else str(e)
