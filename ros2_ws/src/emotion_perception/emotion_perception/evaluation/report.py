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
from .context_eval import plot_context_timeline
from .context_eval import summary_rows as context_summary_rows
from .plots import DPI, LATENCY_SIZE, TIMELINE_SIZE, figure, format_value, plot_confusion
from .scoring import Evaluation



def plot_timeline(ev: Evaluation, path: Path, title: str | None = None) -> Path:
    """Main-face prediction per frame (dots) over the labelled class (band); dropped frames as
    red ticks, processed frames without a face on the "no face" row."""
    fig = figure(TIMELINE_SIZE)
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
    fig = figure(LATENCY_SIZE)
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


def _rows(data: dict) -> list[tuple[str, str]]:
    lat = data["latency_ms"]
    return [
        ("UAR (mean per-class recall)", format_value(data["uar"], True)),
        ("WAR (accuracy)", format_value(data["war"], True)),
        ("scored samples", f"{data['scored_samples']} of {data['labelled_samples']} labelled"),
        ("labelled but no face found", str(data["missed_faces"])),
        ("frames / processed / dropped", f"{data['frames']} / {data['processed_frames']} / {data['dropped_frames']}"),
        ("frames with faces but no label", str(data["unlabelled_frames_with_faces"])),
        ("latency p50 / p95 / p99 (ms)", f"{format_value(lat['p50'])} / {format_value(lat['p95'])} / {format_value(lat['p99'])}"),
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
    if ev.context is not None and ev.context.timeline:
        paths["what the LLM hears"] = plot_context_timeline(ev.context, out / "context.png",
                                                            "the context sentence against the labels")
    data = {**ev.to_dict(), "run": extra or {}, "plots": {k: p.name for k, p in paths.items()}}
    paths["json"] = out / "report.json"
    paths["json"].write_text(json.dumps(data, indent=2) + "\n")

    recall = [(n, format_value(r, True)) for n, r in data["per_class_recall"].items()]
    context = [(str(k), str(v)) for k, v in (extra or {}).items()]
    context += [("results", str(data["source"])), ("labels", str(data["labels"]))]
    sections = [("Warnings", ("labels that cannot fit the run",), [(w,) for w in ev.warnings])] if ev.warnings else []
    sections += [("Scores", ("metric", "value"), _rows(data)), ("Per-class recall", ("class", "recall"), recall)]
    if ev.context is not None:
        sections.append(("What the LLM hears (the context sentence)", ("metric", "value"), context_summary_rows(data)))
    paths.update(write_pages(out, title, context, sections, paths))
    return paths


def write_pages(out: Path, title: str, context: list[tuple[str, str]], sections, plots: dict[str, Path]) -> dict[str, Path]:
    """report.md and report.html: a context list, tables and the PNG ``plots`` (name -> path).

    ``sections``: (heading, column names, rows of cells). Returns {"markdown": ..., "html": ...}.
    """
    images = [(k, p.name) for k, p in plots.items() if p.suffix == ".png"]
    md = [f"# {title}", ""]
    md += [f"- **{k}**: {v}" for k, v in context]
    for heading, columns, rows in sections:
        md += ["", f"## {heading}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        md += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    md += [""] + [f"![{k}]({name})" for k, name in images]
    written = {"markdown": out / "report.md", "html": out / "report.html"}
    written["markdown"].write_text("\n".join(md) + "\n")

    esc = html.escape

    def table(columns, rows):
        head = "<tr>" + "".join(f"<th>{esc(str(c))}</th>" for c in columns) + "</tr>" if columns else ""
        body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table>{head}{body}</table>"

    page = [
        "<!doctype html><meta charset='utf-8'>", f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1040px;margin:auto}th{text-align:left;padding-right:1em}"
        "td{padding-right:1em}</style>",
        f"<h1>{esc(title)}</h1>", table((), context),
        *[f"<h2>{esc(h)}</h2>{table(c, r)}" for h, c, r in sections],
        *[f"<h2>{esc(k)}</h2><img src='{esc(name)}' alt='{esc(k)}'>" for k, name in images],
    ]
    written["html"].write_text("\n".join(page) + "\n")
    return written
