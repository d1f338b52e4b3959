"""Diagnostic figures for the dataset card, drawn from statistics of the labeled-traces table.

They show what a reader needs before training on the data: whether step confidence is
calibrated against the consensus labels, where first errors fall, how thinking length relates to
accuracy, and how often the thinking's answer agrees with the final one. The statistics are
accumulated table by table (`TraceStats.add`, one published shard at a time) into counters and
per-bin sums, so a corpus of any size costs a few kilobytes: the only unbounded parts are keyed by
distinct first-error positions and thinking lengths, which are bounded by the generation limits.
Drawing uses matplotlib's object API on the Agg canvas (no global pyplot state) with a fixed size,
dpi and no `Software` metadata, so re-runs write byte-identical PNGs. Empty or all-null data gives
an empty plot with a note, never an error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
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
# What the statistics read from `traces` (step text and per-token arrays are skipped).
STATS_COLUMNS = [f"steps.list.element.{f}" for f in ("mean_logprob", "label", "symbolic")] + [
    "first_error",
    "final_correct",
    "thinking_tokens",
    "thinking_answer_agrees",
    "consensus",
    "model",
]


def _ints(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return pc.drop_null(arr).to_numpy().astype(np.int64)


def _histogram(values: np.ndarray) -> dict[int, int]:
    keys, counts = np.unique(values, return_counts=True)
    return {int(k): int(n) for k, n in zip(keys, counts)}


def _count(counter: Counter, arr) -> None:
    """Add each value's count to `counter` (nulls as "null")."""
    if len(arr):
        for v in pc.value_counts(pc.fill_null(arr, "null")).to_pylist():
            counter[str(v["values"])] += int(v["counts"])


@dataclass
class TraceStats:
    """Everything the figures and the card's label section show, summed over tables of traces."""

    columns: set[str] = field(default_factory=set)
    rows: int = 0
    bin_conf: np.ndarray = field(default_factory=lambda: np.zeros(BINS))  # per confidence bin: sum of confidences
    bin_correct: np.ndarray = field(default_factory=lambda: np.zeros(BINS))  # ... steps labeled correct
    bin_steps: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.int64))  # ... steps
    first_errors: Counter = field(default_factory=Counter)  # first_error -> traces
    lengths: Counter = field(default_factory=Counter)  # thinking tokens -> traces with a verdict
    lengths_correct: Counter = field(default_factory=Counter)  # thinking tokens -> final-correct traces
    agreement: Counter = field(default_factory=lambda: Counter(agrees=0, disagrees=0, unknown=0))
    steps: Counter = field(default_factory=Counter)  # total, correct, null (consensus step labels)
    symbolic: Counter = field(default_factory=Counter)
    consensus: Counter = field(default_factory=Counter)
    models: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, table: pa.Table | TraceStats | None) -> TraceStats:
        return table if isinstance(table, TraceStats) else cls().add(table if table is not None else pa.table({}))

    def add(self, table: pa.Table) -> TraceStats:
        self.columns |= set(table.column_names)
        self.rows += table.num_rows
        if "steps" in table.column_names and table.num_rows:
            self._add_steps(pc.list_flatten(table.column("steps")))
        if "first_error" in table.column_names:
            self.first_errors.update(_histogram(_ints(table.column("first_error"))))
        if {"thinking_tokens", "final_correct"} <= set(table.column_names):
            self._add_lengths(table.column("thinking_tokens"), table.column("final_correct"))
        if "thinking_answer_agrees" in table.column_names:
            col = table.column("thinking_answer_agrees")
            agrees = int(pc.sum(col).as_py() or 0)
            self.agreement.update(agrees=agrees, disagrees=len(col) - col.null_count - agrees, unknown=col.null_count)
        if "consensus" in table.column_names:
            _count(self.consensus, table.column("consensus"))
        if "model" in table.column_names:
            self.models |= set(pc.unique(table.column("model")).drop_null().to_pylist())
        return self

    def _add_steps(self, flat: pa.Array) -> None:
        if not len(flat):
            return
        logprob, label = pc.struct_field(flat, "mean_logprob"), pc.struct_field(flat, "label")
        self.steps.update(total=len(label), correct=int(pc.sum(label).as_py() or 0), null=label.null_count)
        _count(self.symbolic, pc.struct_field(flat, "symbolic"))
        keep = pc.and_(pc.is_valid(logprob), pc.is_valid(label))
        conf = np.exp(pc.filter(logprob, keep).to_numpy(zero_copy_only=False).astype(np.float64))
        labels = pc.filter(label, keep).to_numpy(zero_copy_only=False).astype(bool)
        idx = np.minimum((np.clip(conf, 0.0, 1.0) * BINS).astype(int), BINS - 1)
        self.bin_conf += np.bincount(idx, weights=conf, minlength=BINS)
        self.bin_correct += np.bincount(idx, weights=labels.astype(np.float64), minlength=BINS)
        self.bin_steps += np.bincount(idx, minlength=BINS)

    def _add_lengths(self, tokens, correct) -> None:
        keep = pc.and_(pc.is_valid(tokens), pc.is_valid(correct))
        x = pc.filter(tokens, keep).to_numpy().astype(np.int64)
        y = pc.filter(correct, keep).to_numpy(zero_copy_only=False).astype(bool)
        self.lengths.update(_histogram(x))
        self.lengths_correct.update(_histogram(x[y]))


def reliability(stats: TraceStats) -> list[tuple[float, float, int]]:
    """Per non-empty confidence bin of [0, 1]: (mean confidence, fraction labeled correct, steps)."""
    n = stats.bin_steps
    return [
        (float(stats.bin_conf[b] / n[b]), float(stats.bin_correct[b] / n[b]), int(n[b])) for b in range(BINS) if n[b]
    ]


def length_accuracy(stats: TraceStats, bins: int = BINS) -> list[tuple[float, float, int]]:
    """Traces binned by thinking tokens (equal-width bins): (bin centre, fraction final-correct, traces)."""
    if not stats.lengths:
        return []
    x = np.array(sorted(stats.lengths), np.float64)
    n = np.array([stats.lengths[int(k)] for k in x])
    c = np.array([stats.lengths_correct.get(int(k), 0) for k in x])
    edges = np.linspace(x.min(), x.max() if x.max() > x.min() else x.min() + 1, bins + 1)
    idx = np.minimum(np.searchsorted(edges, x, side="right") - 1, bins - 1)
    traces, correct = np.bincount(idx, n, bins), np.bincount(idx, c, bins)
    centres = (edges[:-1] + edges[1:]) / 2
    return [(float(centres[b]), float(correct[b] / traces[b]), int(traces[b])) for b in range(bins) if traces[b]]


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


def plot_calibration(stats: TraceStats, path: Path) -> Path:
    fig, ax = _figure(FIGURES["calibration"])
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence exp(mean logprob)", ylabel="fraction of steps correct")
    points = reliability(stats)
    if points:
        x, y, n = zip(*points)
        ax.plot(x, y, marker="o", label="steps")
        for xi, yi, ni in points:
            ax.annotate(str(ni), (xi, yi), textcoords="offset points", xytext=(0, 5), fontsize=7, ha="center")
        ax.legend(loc="upper left", fontsize=8)
    else:
        _note_empty(ax, "no steps with both confidence and consensus label")
    return _save(fig, path)


def plot_first_error(stats: TraceStats, path: Path) -> Path:
    fig, ax = _figure(FIGURES["first_error"])
    ax.set(xlabel="first wrong step index (-1: no error)", ylabel="traces")
    if stats.first_errors:
        values = np.array(sorted(stats.first_errors), np.int64)
        lo, hi = int(values.min()), int(values.max())
        bins = np.arange(lo, hi + 2) - 0.5 if hi - lo < MAX_BARS else MAX_BARS
        weights = [stats.first_errors[int(v)] for v in values]
        ax.hist(values, bins=bins, weights=weights, color="tab:red", edgecolor="white")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        _note_empty(ax, "no consensus first errors")
    return _save(fig, path)


def plot_thinking_length(stats: TraceStats, path: Path) -> Path:
    fig, ax = _figure(FIGURES["thinking_length"])
    ax.set(xlabel="thinking tokens (bin centre)", ylabel="fraction final answers correct", ylim=(0, 1))
    points = length_accuracy(stats)
    if points:
        x, y, _ = zip(*points)
        ax.plot(x, y, marker="o", color="tab:green")
    else:
        _note_empty(ax, "no traces with thinking length and verdict")
    return _save(fig, path)


def plot_agreement(stats: TraceStats, path: Path) -> Path:
    counts = {k: stats.agreement[k] for k in ("agrees", "disagrees", "unknown")}
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


def write_figures(traces: pa.Table | TraceStats, out_dir: Path) -> dict[str, Path]:
    """Every figure as `out_dir/<name>.png` from a traces table or its accumulated statistics; name -> path."""
    stats = TraceStats.of(traces)
    return {name: plot(stats, Path(out_dir) / f"{name}.png") for name, plot in PLOTS.items()}
