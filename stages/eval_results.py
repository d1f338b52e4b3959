"""Evaluation results: the leaderboard, comparisons, and the results published like the corpus.

The published dataset has two configs: `scores` (every model's per-sample scores, `eval_scores`)
and `summary` (every figure of every model's summary with its interval, `eval_summary`), plus a
card holding the leaderboard and each model's tables. It is built and swapped in locally, then
committed to the Hub when the target says so, with the same code the corpus uses (`stages/dataset/`).
The report stage's Evaluation tab shows the models side by side (`side_by_side`).
"""

from __future__ import annotations

import math
from pathlib import Path

from schemas import EVAL_SCORES, EVAL_SUMMARY
from stages.dataset.card import front_matter, markdown_table
from stages.dataset.shards import write_config_shards
from stages.dataset.target import DatasetTarget, publish_folder
from stages.secrets import scrub
from stages.shards import to_table

# The leaderboard's columns: (label, section of the summary, metric).
HEADLINE = [
    ("pass@1", "answers", "pass@1"),
    ("maj@8", "answers", "maj@8"),
    ("thinking acc", "thinking", "thinking_accuracy"),
    ("agreement", "thinking", "agreement"),
    ("first-error rate", "first_errors", "first_error_rate"),
    ("step AUROC", "calibration", "step_auroc"),
    ("step ECE", "calibration", "step_ece"),
    ("answer ECE", "calibration", "answer_ece"),
    ("DTR", "depth", "deep_thinking_ratio"),
]
SECTIONS = ("answers", "thinking", "first_errors", "calibration", "depth")


def metric(summary: dict, section: str, name: str) -> list[float | None]:
    """[estimate, low, high] of one figure of a summary (nulls where it does not apply)."""
    return list(summary.get(section, {}).get(name) or [None, None, None])


def _num(x) -> str:
    return "?" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def leaderboard_markdown(board: dict[str, dict]) -> str:
    """One row per model, each figure as `estimate [low, high]`."""
    fmt = lambda v: "-" if v[0] is None else f"{_num(v[0])} [{_num(v[1])}, {_num(v[2])}]"  # noqa: E731
    rows = [
        (f"`{model}`", s["problems"], *(fmt(metric(s, section, name)) for _, section, name in HEADLINE))
        for model, s in board.items()
    ]
    return markdown_table(("model", "problems", *(h for h, _, _ in HEADLINE)), rows)


def intervals_overlap(a: list, b: list) -> bool | None:
    """Whether two `[estimate, low, high]` intervals overlap; None when either bound is unknown."""
    if None in (*a[1:], *b[1:]):
        return None
    return not (b[2] < a[1] or a[2] < b[1])


def compare(a: dict, b: dict) -> list[dict]:
    """Per headline figure: B - A, and whether the two intervals overlap (no overlap: a
    difference beyond the intervals)."""
    out = []
    for label, section, name in HEADLINE:
        va, vb = metric(a, section, name), metric(b, section, name)
        if va[0] is None or vb[0] is None:
            continue
        out.append(
            {"metric": label, "a": va[0], "b": vb[0], "delta": vb[0] - va[0], "overlap": intervals_overlap(va, vb)}
        )
    return out


def summary_rows(model: str, summary: dict) -> list[dict]:
    """Every interval of a summary as `eval_summary` rows (nested tables as `table.<cell>`)."""
    rows = []

    def add(section: str, name: str, value) -> None:
        if (
            isinstance(value, list | tuple)
            and len(value) == 3
            and all(v is None or isinstance(v, int | float) for v in value)
        ):
            rows.append({"model": model, "section": section, "metric": name,
                         **dict(zip(("estimate", "low", "high"), value))})  # fmt: skip
        elif isinstance(value, dict):
            for key, inner in value.items():
                add(section, f"{name}.{key}", inner)

    for section in SECTIONS:
        for name, value in summary.get(section, {}).items():
            add(section, name, value)
    return rows


def model_section(model: str, s: dict) -> str:
    """A model's 2x2 table of thinking vs answer, and its accuracy by thinking length and by DTR."""
    counts = s["thinking"]["table_counts"]
    parts = [
        f"### `{model}`",
        f"{s['samples']} samples over {s['problems']} problems; first errors from "
        f"{s['first_errors']['first_error_source']}.",
        markdown_table(("", "answer right", "answer wrong"), [
            ("thinking right", counts["both_right"], counts["knows_but_says_otherwise"]),
            ("thinking wrong", counts["right_answer_wrong_thinking"], counts["both_wrong"]),
        ]),
    ]  # fmt: skip
    bins = [("thinking tokens", s.get("overthinking", {}).get("accuracy_by_length", []))]
    bins.append(("deep-thinking ratio", s.get("depth", {}).get("accuracy_by_dtr", [])))
    for label, table in bins:
        if table:
            rows = [(f"{_num(b['from'])}–{_num(b['to'])}", b["samples"], _num(b["accuracy"])) for b in table]
            parts.append(markdown_table((label, "samples", "accuracy"), rows))
    return "\n\n".join(parts)


def results_card(board: dict[str, dict], shards: dict, meta: dict, repo_id: str | None) -> str:
    features = {"scores": EVAL_SCORES, "summary": EVAL_SUMMARY}
    name = meta.get("name", "evaluation")
    repo = repo_id or "org/name"
    sections = [
        front_matter(shards, features, "summary", {"pretty_name": f"Thoughtmill evaluation: {name}"}),
        f"# Thoughtmill evaluation: {name}\n\n{meta.get('description', '')}\n\nEach figure is an estimate "
        "with its bootstrap 95% interval over problems. Agreement: the answer concluded in the thinking "
        "equals the final answer; DTR: the deep-thinking ratio (arXiv 2602.13517).",
        "## Leaderboard\n\n" + leaderboard_markdown(board),
        "## Per model\n\n" + "\n\n".join(model_section(m, s) for m, s in board.items()),
        "## Configs\n\n" + markdown_table(("config", "rows", "contents"), [
            ("`scores`", sum(p.rows for p in shards.get("scores", [])), "one row per sample: correctness, "
             "agreement, first error, confidences, thinking tokens, deep-thinking ratio"),
            ("`summary`", sum(p.rows for p in shards.get("summary", [])), "one row per model and figure, "
             "with `estimate`, `low`, `high`"),
        ]),
        "```python\nfrom datasets import load_dataset\n\n"
        f'summary = load_dataset("{repo}", "summary", split="train")\n```',
    ]  # fmt: skip
    return scrub("\n\n".join(sections) + "\n")


def publish_results(
    board: dict[str, dict], score_files: list[Path], meta: dict, cfg: DatasetTarget, root: Path
) -> dict:
    """Publish the evaluation under `root/cfg.path` (and to the Hub for target `hub`)."""
    summary = to_table([r for m, s in board.items() for r in summary_rows(m, s)], EVAL_SUMMARY)

    def build(folder: Path) -> dict:
        shards = {
            "scores": write_config_shards(score_files, "scores", EVAL_SCORES, folder),
            "summary": write_config_shards(summary, "summary", EVAL_SUMMARY, folder),
        }
        (folder / "README.md").write_text(results_card(board, shards, meta, cfg.repo_id), encoding="utf-8")
        return {name: sum(s.rows for s in parts) for name, parts in shards.items()}

    result = publish_folder(build, cfg, root, {"README.md", "data"})
    return {**result, "rows": result.pop("built")}


def side_by_side(board: dict[str, dict]) -> dict:
    """The inspector's Evaluation tab: every interval figure as one row with each model's
    `[estimate, low, high]`, and where there are two models, whether their intervals overlap;
    plus each model's 2x2 counts and binned accuracy tables."""
    figures: dict[tuple[str, str], dict[str, list]] = {}
    for model, summary in board.items():
        for r in summary_rows(model, summary):
            figures.setdefault((r["section"], r["metric"]), {})[model] = [r["estimate"], r["low"], r["high"]]
    rows = []
    for (section, name), values in figures.items():
        both = len(board) == 2 and len(values) == 2
        rows.append({"section": section, "metric": name, "values": values,
                     "overlap": intervals_overlap(*values.values()) if both else None})  # fmt: skip
    models = {
        m: {
            "problems": s["problems"],
            "samples": s["samples"],
            "first_error_source": s["first_errors"]["first_error_source"],
            "table_counts": s["thinking"]["table_counts"],
            "accuracy_by_length": s.get("overthinking", {}).get("accuracy_by_length", []),
            "accuracy_by_dtr": s.get("depth", {}).get("accuracy_by_dtr", []),
        }
        for m, s in board.items()
    }
    return {"models": models, "rows": rows}
