"""The face embedder's ResNet: dlib's own (dlib-bin) against the torch port (persons/dlib_resnet.py).

Six real faces of one 640x480 frame (six London portraits tiled 3x2, the labelled boxes,
engine_common's ``london6`` scene) are aligned once to dlib's 150x150 chips; then, in one
process, on the quiet machine and beside ``--load`` busy-looping processes:

- ``dlib``: ``face_recognition_model_v1.compute_face_descriptor`` (dlib-bin as installed);
- ``torch_1_thread`` / ``torch_default_threads``: the port with ``torch.set_num_threads(1)`` and
  with torch's default for this machine (its value is printed);

each as ``single`` (the six chips one forward each) and ``batch6`` (one forward of all six), in
``--rounds`` rounds that cycle through the configurations (so a noisy machine disturbs them
alike). Reported: ms per face (median and mean over rounds), the ratio to dlib's single-face
time in the same conditions, the alignment's own cost (landmarks + ``get_face_chip``, per face)
and the largest difference between the two networks' vectors. Prints one JSON object.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/embedder.py --load 2
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from engine_common import environment, scene
from lite_fps import busy_processes

from emotion_perception.persons.embedder import DlibFaceEmbedder

DEFAULT_THREADS = torch.get_num_threads()  # before anything sets it


def _ms(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) * 1e3


def measure(port: DlibFaceEmbedder, reference: DlibFaceEmbedder, frame, boxes, chips, rounds: int) -> dict:
    chip_batch = np.stack(chips)

    def dlib_single():
        for chip in chips:
            reference.embed_chips([chip])

    def dlib_batch():
        reference.embed_chips(chips)

    def torch_single():
        for chip in chips:
            port.embed_chips([chip])

    def torch_batch():
        port._net.embed(chip_batch)

    configs = {"dlib": (None, dlib_single, dlib_batch), "torch_1_thread": (1, torch_single, torch_batch),
               "torch_default_threads": (DEFAULT_THREADS, torch_single, torch_batch)}
    times = {(name, mode): [] for name in configs for mode in ("single", "batch6")}
    for name, (threads, single, batch) in configs.items():  # warm-up
        torch.set_num_threads(threads or DEFAULT_THREADS)
        single()
        batch()
    align = []
    for _ in range(rounds):
        align.append(_ms(lambda: [port.chip(frame, box) for box in boxes]) / len(boxes))
        for name, (threads, single, batch) in configs.items():
            torch.set_num_threads(threads or DEFAULT_THREADS)
            times[name, "single"].append(_ms(single) / len(chips))
            times[name, "batch6"].append(_ms(batch) / len(chips))
    torch.set_num_threads(DEFAULT_THREADS)
    base = float(np.median(times["dlib", "single"]))
    out = {"align_ms_per_face_median": float(np.median(align))}
    for (name, mode), values in times.items():
        median = float(np.median(values))
        out[f"{name}_{mode}"] = {"ms_per_face_median": round(median, 2), "ms_per_face_mean": round(float(np.mean(values)), 2),
                                 "speedup_vs_dlib_single": round(base / median, 2), "n_rounds": len(values)}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds per condition (each: 6 faces per configuration)")
    parser.add_argument("--load", type=int, default=2, help="busy-looping processes for the second condition (0: quiet only)")
    args = parser.parse_args(argv)

    port, reference = DlibFaceEmbedder("torch"), DlibFaceEmbedder("dlib")
    london = scene("london6", 1)
    frame, boxes = london.images[0], london.boxes
    chips = [port.chip(frame, box) for box in boxes]
    parity = float(np.abs(port.embed_chips(chips) - reference.embed_chips(chips)).max())

    out = {"benchmark": "embedder", "environment": environment(), "torch_default_threads": DEFAULT_THREADS,
           "faces": len(chips), "names": [port.name, reference.name], "max_abs_diff_torch_vs_dlib": parity,
           "quiet": measure(port, reference, frame, boxes, chips, args.rounds)}
    if args.load:
        with busy_processes(args.load):
            out[f"busy_{args.load}"] = measure(port, reference, frame, boxes, chips, args.rounds)
    out["loadavg_1min_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
