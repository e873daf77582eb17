"""Console entry points: ``emotion-train`` (fit a model profile on DFEW/FERV39k) and
``emotion-evaluate`` (score checkpoints on a test split, DFEW 5-fold averaging).

``emotion-train --config cfg.yaml [--resume last.pt] [--out DIR]`` writes to DIR: ``last.pt``
(every epoch, with optimizer/scheduler state for resuming), ``best.pt`` (best validation score),
``history.jsonl`` (one line per epoch) and ``config.yaml`` (the resolved config).

``emotion-train prepare-dfew --root DFEW --out DIR`` makes DFEW's scene stream first
(training/prepare_dfew.py; the config's ``dataset.prepared_root`` then points at DIR).

``emotion-train cache --config cfg.yaml`` encodes every frame once into ``dataset.feature_cache``
(training/feature_cache.py); training and evaluation then read features instead of pixels.
Under ``torchrun --nproc_per_node N --no-python emotion-train ...`` training, the cache and
evaluation run distributed (training/distributed.py); rank 0 alone prints and writes.

``emotion-evaluate --checkpoint 'runs/fold{fold}/best.pt' --dataset dfew --root DIR --fold all``
writes ``report.json`` (UAR, WAR, per-class recall, confusion matrix per fold, mean ± std over
folds), confusion-matrix PNGs and per-clip predictions.

The arguments are parsed before torch and the models are imported (the *_job.py modules), so
``--help`` and a usage error answer at once.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys


def train_main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["prepare-dfew"]:
        from .prepare_dfew import prepare_main

        return prepare_main(argv[1:])
    if argv[:1] == ["cache"]:
        return cache_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="emotion-train", description="Train an emotion model profile.",
        epilog="emotion-train prepare-dfew --root DFEW --out DIR: scene frames + faces from DFEW's original videos; "
               "emotion-train cache --config CFG: the frozen-feature cache")
    parser.add_argument("--config", required=True, help="training config YAML (see training/configs/)")
    parser.add_argument("--resume", help="continue from this last.pt (model, optimizer, scheduler, epoch)")
    parser.add_argument("--out", help="output folder (overrides the config's 'out')")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    args = parser.parse_args(argv)
    _setup_logging()

    def train():
        from .config import TrainConfig
        from .train_job import run_training

        cfg = TrainConfig.from_yaml(args.config)
        if args.out:
            cfg.out = args.out
        return run_training(cfg, resume=args.resume, progress=not args.no_progress)

    summary = _run_job("emotion-train", train)
    if summary is None:
        return 2
    best = summary["best"]
    if _main_rank():
        print(f"best epoch {best['epoch']}: val UAR {best['uar']:.4f} WAR {best['war']:.4f} -> {summary['out']}")
    return 0


def cache_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="emotion-train cache",
        description="Encode every frame of the config's clips once with the frozen backbone into dataset.feature_cache.",
    )
    parser.add_argument("--config", required=True, help="training config YAML; dataset.feature_cache names the folder")
    parser.add_argument("--splits", nargs="+", default=["train", "test"], choices=["train", "test"])
    parser.add_argument("--force", action="store_true", help="replace an existing cache")
    parser.add_argument("--shard-mb", type=int, default=1024, help="size of one shard file per rank (MB)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    _setup_logging()

    def cache():
        from .cache_job import run_cache
        from .config import TrainConfig

        cfg = TrainConfig.from_yaml(args.config)
        manifest = run_cache(cfg, splits=tuple(args.splits), force=args.force, progress=not args.no_progress,
                           shard_mb=args.shard_mb)
        return cfg.dataset.feature_cache, manifest

    done = _run_job("emotion-train cache", cache)
    if done is None:
        return 2
    folder, manifest = done
    if manifest is not None:  # rank 0
        print(f"cached {len(manifest['clips'])} clips -> {folder}")
    return 0


def evaluate_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emotion-evaluate", description="Score checkpoints on a test split.")
    parser.add_argument("--checkpoint",
                        help="checkpoint file, or a pattern with {fold} for --fold all "
                             "(leave out for a model without a trained head, e.g. --profile zeroshot-vitl14)")
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
    parser.add_argument("--feature-cache", help="folder of `emotion-train cache` holding the test clips")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    _setup_logging()
    def evaluate():
        from .evaluate_job import run_evaluation

        return run_evaluation(args)

    return 0 if _run_job("emotion-evaluate", evaluate) is not None else 2


def _run_job(prog: str, job):
    """``job()`` in the process group torchrun set up (if any); a user error is one line
    on stderr (from rank 0 only) and None."""
    from . import distributed, jobs

    try:
        return job()
    except jobs.USER_ERRORS as e:
        if _main_rank():
            print(f"{prog}: error: {_message(e)}", file=sys.stderr)
        return None
    finally:
        distributed.shutdown()


def _main_rank() -> bool:
    """Rank 0 of a torchrun world (or no torchrun): the process that prints and writes."""
    return os.environ.get("RANK", "0") == "0"


def _setup_logging() -> None:
    """INFO on rank 0; other ranks of a torchrun world log warnings and errors only."""
    level = logging.INFO if _main_rank() else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _message(e: Exception) -> str:
    return e.args[0] if isinstance(e, KeyError) and e.args else str(e)


def main(argv: list[str] | None = None) -> int:
    """``python -m emotion_perception.training.cli train|evaluate ...``: both console scripts in one
    module, for ``torchrun -m`` (``torchrun --no-python emotion-train ...`` works as well)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = {"train": train_main, "evaluate": evaluate_main}
    if not argv or argv[0] not in commands:
        print("usage: python -m emotion_perception.training.cli {train,evaluate} ...", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
