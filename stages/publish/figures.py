"""Diagnostic figures for the dataset card, drawn from the labeled-traces table.

They show what a reader needs before training on the data: whether step confidence is
calibrated against the consensus labels, where first errors fall, how thinking length relates to
accuracy, and how often the thinking's answer agrees with the final one. Statistics are small
pure functions over Arrow columns; drawing uses matplotlib's object API on the Agg canvas (no
global pyplot state) with a fixed size, dpi and no `Software` metadata, so re-runs write
byte-identical PNGs. Empty or all-null data gives an empty plot with a note, never an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

FIGSIZE = (6.0, 4.0)
DPI = 100
BINS = 10
MAX_BARS = 60  # first-error histogram: one bar per step index up to this many
FIGURES = {
    "calibration": "Step confidence calibration (exp(mean logprob) vs consensus label)",
    "first_error": "Position of the first wrong step",
    "thinking_length": "Thinking length vs final-answer accuracy",
    "agreement": "Thinking-answer agreement",
}


def _column(table: pa.Table, name: str) -> pa.ChunkedArray | None:
    return table.column(name) if name in table.column_names else None


def step_confidence_labels(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, label) for every step with both a mean logprob and a consensus label."""
    steps = _column(table, "steps")
    if steps is None or len(steps) == 0:
        return np.zeros(0), np.zeros(0, bool)
    flat = pc.list_flatten(steps)
    if len(flat) == 0:
        return np.zeros(0), np.zeros(0, bool)
    logprob, label = pc.struct_field(flat, "mean_logprob"), pc.struct_field(flat, "label")
    keep = pc.and_(pc.is_valid(logprob), pc.is_valid(label))
    conf = np.exp(pc.filter(logprob, keep).to_numpy(zero_copy_only=False).astype(np.float64))
    return conf, pc.filter(label, keep).to_numpy(zero_copy_only=False).astype(bool)


def reliability(conf: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[tuple[float, float, int]]:
    """Per non-empty bin of [0, 1]: (mean confidence, fraction labeled correct, steps)."""
    idx = np.minimum((np.clip(conf, 0.0, 1.0) * bins).astype(int), bins - 1)
    return [
        (float(conf[idx == b].mean()), float(labels[idx == b].mean()), int((idx == b).sum()))
        for b in range(bins)
        if (idx == b).any()
    ]


def _valid_ints(table: pa.Table, name: str) -> np.ndarray:
    col = _column(table, name)
    if col is None:
        return np.zeros(0, np.int64)
    return pc.drop_null(col).to_numpy().astype(np.int64)


def length_accuracy(table: pa.Table, bins: int = BINS) -> list[tuple[float, float, int]]:
    """Traces binned by thinking tokens (equal-width bins): (bin centre, fraction final-correct, traces)."""
    tokens, correct = _column(table, "thinking_tokens"), _column(table, "final_correct")
    if tokens is None or correct is None:
        return []
    keep = pc.and_(pc.is_valid(tokens), pc.is_valid(correct))
    x = pc.filter(tokens, keep).to_numpy().astype(np.float64)
    y = pc.filter(correct, keep).to_numpy(zero_copy_only=False).astype(bool)
    if len(x) == 0:
        return []
    edges = np.linspace(x.min(), x.max() if x.max() > x.min() else x.min() + 1, bins + 1)
    idx = np.minimum(np.searchsorted(edges, x, side="right") - 1, bins - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    return [
        (float(centres[b]), float(y[idx == b].mean()), int((idx == b).sum())) for b in range(bins) if (idx == b).any()
    ]


def agreement_counts(table: pa.Table) -> dict[str, int]:
    col = _column(table, "thinking_answer_agrees")
    if col is None:
        return {"agrees": 0, "disagrees": 0, "unknown": 0}
    agrees = int(pc.sum(col).as_py() or 0)
    valid = len(col) - col.null_count
    return {"agrees": agrees, "disagrees": valid - agrees, "unknown": col.null_count}


def _figure(title: str) -> tuple[Figure, object]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    return fig, ax


def _note_empty(ax, note: str = "no data") -> None:
    ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes, fontsize=12, color="gray")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def plot_calibration(table: pa.Table, path: Path) -> Path:
    fig, ax = _figure(FIGURES["calibration"])
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence exp(mean logprob)", ylabel="fraction of steps correct")
    points = reliability(*step_confidence_labels(table))
    if points:
        x, y, n = zip(*points)
        ax.plot(x, y, marker="o", label="steps")
        for xi, yi, ni in points:
            ax.annotate(str(ni), (xi, yi), textcoords="offset points", xytext=(0, 5), fontsize=7, ha="center")
        ax.legend(loc="upper left", fontsize=8)
    else:
        _note_empty(ax, "no steps with both confidence and consensus label")
    return _save(fig, path)


def plot_first_error(table: pa.Table, path: Path) -> Path:
    fig, ax = _figure(FIGURES["first_error"])
    ax.set(xlabel="first wrong step index (-1: no error)", ylabel="traces")
    values = _valid_ints(table, "first_error")
    if len(values):
        lo, hi = int(values.min()), int(values.max())
        bins = np.arange(lo, hi + 2) - 0.5 if hi - lo < MAX_BARS else MAX_BARS
        ax.hist(values, bins=bins, color="tab:red", edgecolor="white")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        _note_empty(ax, "no consensus first errors")
    return _save(fig, path)


def plot_thinking_length(table: pa.Table, path: Path) -> Path:
    fig, ax = _figure(FIGURES["thinking_length"])
    ax.set(xlabel="thinking tokens (bin centre)", ylabel="fraction final answers correct", ylim=(0, 1))
    points = length_accuracy(table)
    if points:
        x, y, _ = zip(*points)
        ax.plot(x, y, marker="o", color="tab:green")
    else:
        _note_empty(ax, "no traces with thinking length and verdict")
    return _save(fig, path)


def plot_agreement(table: pa.Table, path: Path) -> Path:
    counts = agreement_counts(table)
    decided = counts["agrees"] + counts["disagrees"]
    rate = f" (rate {counts['agrees'] / decided:.1%} of {decided} decided)" if decided else ""
    fig, ax = _figure(FIGURES["agreement"] + rate)
    ax.bar(list(counts), list(counts.values()), color=["tab:green", "tab:red", "tab:gray"])
    ax.set(ylabel="traces")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if not decided:
        _note_empty(ax, "no traces with both answers")
    return _save(fig, path)


PLOTS = {
    "calibration": plot_calibration,
    "first_error": plot_first_error,
    "thinking_length": plot_thinking_length,
    "agreement": plot_agreement,
}


def write_figures(table: pa.Table, out_dir: Path) -> dict[str, Path]:
    """Every figure as `out_dir/<name>.png`; returns name -> path."""
    return {name: plot(table, Path(out_dir) / f"{name}.png") for name, plot in PLOTS.items()}
