"""The evaluation report: report.json, a Markdown and an HTML page, and the PNG plots they embed
(confusion matrix, prediction timeline against the labels, latency histogram with p50/p95/p99).

Figures have fixed pixel sizes (TIMELINE_SIZE, LATENCY_SIZE) so pages lay out predictably.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from ..labels import CLASS_NAMES
from .plots import plot_confusion
from .scoring import Evaluation

DPI = 100
TIMELINE_SIZE = (1000, 400)  # width, height in pixels
LATENCY_SIZE = (600, 400)


def _figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def plot_timeline(ev: Evaluation, path: Path, title: str | None = None) -> Path:
    """Main-face prediction per frame (dots) over the labelled class (band); dropped frames as
    red ticks, processed frames without a face on the "no face" row."""
    fig = _figure(TIMELINE_SIZE)
    ax = fig.add_subplot()
    no_face = -1
    seconds = np.array([t for t, _, _ in ev.timeline], float)
    labels = ev.labels
    if labels is not None and None in labels.face_ids:
        target = [labels.target(i, t, None) for i, (t, _, _) in enumerate(ev.timeline)]
        ty = np.array([np.nan if c is None else c for c in target], float)
        ax.plot(seconds, ty, color="tab:green", linewidth=10, alpha=0.35, solid_capstyle="butt",
                drawstyle="steps-post", label="label")
    for face_id in sorted(f for f in (labels.face_ids if labels else ()) if f is not None):
        pts = [(s.seconds, s.target) for s in ev.samples if s.face_id == face_id]
        if pts:
            ax.scatter(*zip(*pts), marker="s", s=30, alpha=0.3, label=f"label face {face_id}")
    pred = [(t, c) for t, c, processed in ev.timeline if processed and c is not None]
    if pred:
        ax.scatter(*zip(*pred), s=12, color="tab:blue", label="prediction (main face)", zorder=3)
    none = [t for t, c, processed in ev.timeline if processed and c is None]
    if none:
        ax.scatter(none, [no_face] * len(none), marker="x", s=14, color="grey", label="no face")
    dropped = [t for t, _, processed in ev.timeline if not processed]
    if dropped:
        ax.vlines(dropped, no_face - 0.45, no_face - 0.15, color="tab:red", linewidth=1, label=f"dropped ({len(dropped)})")
    ax.set_yticks(range(no_face, len(CLASS_NAMES)), labels=["no face", *CLASS_NAMES])
    ax.set_ylim(no_face - 0.6, len(CLASS_NAMES) - 0.4)
    ax.set_xlabel("time since first frame (s)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize=7, ncol=3)
    ax.set_title(title or "prediction timeline")
    fig.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.13)
    fig.savefig(path, format="png", dpi=DPI)
    return Path(path)


def plot_latency(ev: Evaluation, path: Path, title: str | None = None) -> Path:
    """Histogram of per-frame latency with p50/p95/p99 marked."""
    fig = _figure(LATENCY_SIZE)
    ax = fig.add_subplot()
    lat = ev.latencies_ms
    if lat.size:
        ax.hist(lat, bins=min(40, max(5, lat.size // 3)), color="tab:blue", alpha=0.7)
        pct = ev.latency_percentiles()
        for name, colour in (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:red")):
            ax.axvline(pct[name], color=colour, linestyle="--", label=f"{name} {pct[name]:.1f} ms")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no latency recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("latency per frame (ms)")
    ax.set_ylabel("frames")
    ax.set_title(title or f"latency ({lat.size} frames, {ev.dropped} dropped)")
    fig.subplots_adjust(left=0.12, right=0.97, top=0.9, bottom=0.13)
    fig.savefig(path, format="png", dpi=DPI)
    return Path(path)


def _fmt(value, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.1%}" if pct else (f"{value:.1f}" if isinstance(value, float) else str(value))


def _rows(data: dict) -> list[tuple[str, str]]:
    lat = data["latency_ms"]
    return [
        ("UAR (mean per-class recall)", _fmt(data["uar"], True)),
        ("WAR (accuracy)", _fmt(data["war"], True)),
        ("scored samples", f"{data['scored_samples']} of {data['labelled_samples']} labelled"),
        ("labelled but no face found", str(data["missed_faces"])),
        ("frames / processed / dropped", f"{data['frames']} / {data['processed_frames']} / {data['dropped_frames']}"),
        ("frames with faces but no label", str(data["unlabelled_frames_with_faces"])),
        ("latency p50 / p95 / p99 (ms)", f"{_fmt(lat['p50'])} / {_fmt(lat['p95'])} / {_fmt(lat['p99'])}"),
    ]


def write_report(ev: Evaluation, out_dir: str | Path, title: str = "Emotion perception evaluation",
                 extra: dict | None = None) -> dict[str, Path]:
    """Write report.json, report.md, report.html and the plots into ``out_dir``; returns paths.

    ``extra`` (e.g. the model profile and why it was chosen) is stored under "run" in the JSON
    and listed at the top of the pages.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "confusion": plot_confusion(ev.scores.confusion, CLASS_NAMES, out / "confusion.png", "confusion matrix"),
        "timeline": plot_timeline(ev, out / "timeline.png"),
        "latency": plot_latency(ev, out / "latency.png"),
    }
    data = {**ev.to_dict(), "run": extra or {}, "plots": {k: p.name for k, p in paths.items()}}
    paths["json"] = out / "report.json"
    paths["json"].write_text(json.dumps(data, indent=2) + "\n")

    rows = _rows(data)
    recall = [(n, _fmt(r, True)) for n, r in data["per_class_recall"].items()]
    context = [(str(k), str(v)) for k, v in (extra or {}).items()]
    md = [f"# {title}", ""]
    md += [f"- **{k}**: {v}" for k, v in context + [("results", data["source"]), ("labels", data["labels"])]]
    md += ["", *[f"> warning: {w}" for w in ev.warnings], ""] if ev.warnings else []
    md += ["", "| metric | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], ""]
    md += ["| class | recall |", "|---|---|", *[f"| {k} | {v} |" for k, v in recall], ""]
    md += [f"![{k}]({p.name})" for k, p in paths.items() if p.suffix == ".png"]
    paths["markdown"] = out / "report.md"
    paths["markdown"].write_text("\n".join(md) + "\n")

    esc = html.escape

    def table(items):
        return "<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in items) + "</table>"

    page = [
        "<!doctype html><meta charset='utf-8'>", f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1040px;margin:auto}th{text-align:left;padding-right:1em}</style>",
        f"<h1>{esc(title)}</h1>", table(context + [("results", str(data["source"])), ("labels", str(data["labels"]))]),
        *[f"<p><b>warning:</b> {esc(w)}</p>" for w in ev.warnings],
        "<h2>Scores</h2>", table(rows), "<h2>Per-class recall</h2>", table(recall),
        *[f"<h2>{esc(k)}</h2><img src='{esc(p.name)}' alt='{esc(k)}'>" for k, p in paths.items() if p.suffix == ".png"],
    ]
    paths["html"] = out / "report.html"
    paths["html"].write_text("\n".join(page) + "\n")
    return paths
