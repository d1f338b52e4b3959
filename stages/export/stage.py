"""Export: labeled traces, pairs and frontier decisions into the configs TRL trainers load.

Pure functions from rows to rows of `schemas.outputs` (sft, prm, dpo, traces). The frontier
filters what trains the student (`sft`, `dpo` by default); the `traces` config keeps everything,
annotated, for researchers.

`export_configs` streams: it works one labeled shard at a time, joined with the pairs and
frontier shards made from it (named `<labeled stem>-<chunk>.parquet`), and writes one shard per
config per labeled shard. All traces of a problem sit in one labeled shard, so the per-shard join
is exact; the one global fact, whether any frontier decision exists at all, comes from footers.
Memory is that of one labeled shard, whatever the corpus size.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Literal

import pyarrow as pa

from schemas import CONFIGS, FRONTIER, LABELED_TRACES, PAIRS, empty_table
from stages.answers import prompt_opening
from stages.base import StageConfig, StageContext
from stages.shards import read_table, row_count, shard_paths, to_table, write_table

# What `sft_row`, `sft_eligible` and `prm_row` read from a labeled trace (the rest stays in Arrow).
EXPORT_COLUMNS = ["trace_id", "problem_id", "problem", "prompt", "completion", "thinking", "answer_text", "steps"] + [
    "final_correct",
    "thinking_answer_agrees",
    "consensus",
    "first_error",
    "finish_reason",
]


class ExportConfig(StageConfig):
    reasoning: Literal["inline", "field"] = "inline"  # sft: <think> inline, or in `reasoning_content`
    prm_labels: Literal["consensus", "mc"] = "consensus"
    prm_threshold: float = 0.5  # mc: a step is correct when its soft MC value reaches this
    frontier_applies_to: list[Literal["sft", "prm", "dpo"]] = ["sft", "dpo"]


def sft_row(t: dict, reasoning: str) -> dict:
    user = {"role": "user", "content": t["problem"], "reasoning_content": None}
    if reasoning == "inline":
        # the opening an R1-style template put in the prompt belongs to the assistant's text
        text = prompt_opening(t["prompt"]) + t["completion"]
        assistant = {"role": "assistant", "content": text.strip(), "reasoning_content": None}
    else:
        assistant = {
            "role": "assistant",
            "content": t["answer_text"].strip(),
            "reasoning_content": t["thinking"].strip(),
        }
    return {"messages": [user, assistant], "trace_id": t["trace_id"], "problem_id": t["problem_id"]}


def sft_eligible(t: dict) -> bool:
    """Correct, faithful (thinking agrees with the answer) and flawless by consensus."""
    return bool(
        t["final_correct"]
        and t["thinking_answer_agrees"]
        and t["consensus"] == "agree"
        and t["first_error"] == -1
        and t["finish_reason"] == "stop"
    )


def prm_row(t: dict, cfg: ExportConfig) -> dict | None:
    """Steps up to the first unlabeled one, with boolean labels (TRL casts labels with int())."""
    completions, labels = [], []
    for s in t["steps"]:
        if cfg.prm_labels == "mc":
            label = s["mc_label"] if s["mc_value"] is None else s["mc_value"] >= cfg.prm_threshold
        else:
            label = s["label"]
        if label is None:
            break
        completions.append(s["text"])
        labels.append(bool(label))
    if not completions:
        return None
    return {
        "prompt": t["problem"],
        "completions": completions,
        "labels": labels,
        "trace_id": t["trace_id"],
        "problem_id": t["problem_id"],
    }


def dpo_row(p: dict) -> dict:
    return {
        "prompt": [{"role": "user", "content": p["problem"]}],
        "chosen": [{"role": "assistant", "content": p["prefix"] + p["chosen"]}],
        "rejected": [{"role": "assistant", "content": p["prefix"] + p["rejected"]}],
        "margin": p["margin"],
        "kind": p["kind"],
        "pair_id": p["pair_id"],
        "problem_id": p["problem_id"],
        "provenance": json.dumps(
            {
                **json.loads(p["provenance"]),
                "source": p["source"],
                "chosen_confidence": p["chosen_confidence"],
                "rejected_confidence": p["rejected_confidence"],
            },
            sort_keys=True,
        ),
    }


def select(
    traces: list[dict], pairs: list[dict], frontier: list[dict], cfg: ExportConfig, frontier_used: bool | None = None
) -> dict[str, list[dict]]:
    """Rows of the training configs (sft, prm, dpo). `frontier` rows say which traces (and so problems)
    are kept; `frontier_used` says whether the run has frontier decisions at all (default: any in
    `frontier`), so a shard without decisions is filtered as the whole run is."""
    kept_traces = {f["trace_id"] for f in frontier if f["keep"]}
    band_problems = {f["problem_id"] for f in frontier if f["drop_reason"] in ("", "ifd_too_high")}
    judged = {f["trace_id"] for f in frontier}
    used = bool(frontier) if frontier_used is None else frontier_used

    def in_frontier(config: str, trace_id: str | None = None, problem_id: str | None = None) -> bool:
        if config not in cfg.frontier_applies_to or not used:
            return True
        if trace_id is not None:
            return trace_id in kept_traces or trace_id not in judged
        return problem_id in band_problems

    sft = [sft_row(t, cfg.reasoning) for t in traces if sft_eligible(t) and in_frontier("sft", t["trace_id"])]
    prm = [r for t in traces if in_frontier("prm", t["trace_id"]) and (r := prm_row(t, cfg))]
    dpo = [dpo_row(p) for p in pairs if in_frontier("dpo", problem_id=p["problem_id"])]
    return {"sft": sft, "prm": prm, "dpo": dpo}


def export(traces: list[dict], pairs: list[dict], frontier: list[dict], cfg: ExportConfig) -> dict[str, list[dict]]:
    """Rows of every config, from rows held in memory (small inputs; `export_configs` streams shards)."""
    return select(traces, pairs, frontier, cfg) | {"traces": traces}


def shard_groups(labeled: Path, pairs: Path | None, frontier: Path | None) -> dict[str, dict[str, list[Path]]]:
    """Per labeled shard stem, in order: its labeled shard and the pairs and frontier shards made from it
    (`<stem>-<chunk>.parquet`). A pairs or frontier shard whose labeled shard is gone forms its own group."""
    groups: dict[str, dict[str, list[Path]]] = defaultdict(lambda: {"labeled": [], "pairs": [], "frontier": []})
    for path in shard_paths(labeled):
        groups[path.stem]["labeled"].append(path)
    for kind, folder in (("pairs", pairs), ("frontier", frontier)):
        for path in shard_paths(folder) if folder else []:
            groups[path.stem.rsplit("-", 1)[0]][kind].append(path)
    return dict(sorted(groups.items()))


def _read(paths: list[Path], features) -> pa.Table:
    tables = [read_table(p, features) for p in paths]
    return pa.concat_tables(tables) if tables else empty_table(features)


def export_shard(group: dict[str, list[Path]], cfg: ExportConfig, frontier_used: bool) -> dict[str, pa.Table]:
    """Every config's table for one labeled shard and its pairs and frontier shards. The `traces` config
    is the labeled table itself; only the columns the training configs need become Python rows."""
    labeled = _read(group["labeled"], LABELED_TRACES)
    pairs, frontier = _read(group["pairs"], PAIRS).to_pylist(), _read(group["frontier"], FRONTIER).to_pylist()
    rows = select(labeled.select(EXPORT_COLUMNS).to_pylist(), pairs, frontier, cfg, frontier_used)
    tables = {name: to_table(r, CONFIGS[name]) for name, r in rows.items()} | {"traces": labeled}
    # Sorted by id, the order publishing writes them in: it can then slice instead of copying rows.
    return {name: t.sort_by("pair_id" if name == "dpo" else "trace_id") for name, t in tables.items()}


def export_configs(
    labeled: Path, pairs: Path | None, frontier: Path | None, cfg: ExportConfig, out: Path
) -> dict[str, int]:
    """Read labeled traces, pairs and frontier decisions (shard folders; None: the run has none)
    shard by shard, write `out/<config>/<labeled stem>.parquet` for every config (replacing what
    `out/<config>/` held), and return the row count of each config."""
    out = Path(out)
    for stale in out.glob(".export-*"):  # left by a killed export
        shutil.rmtree(stale, ignore_errors=True)
    staging = out / f".export-{os.getpid()}"
    frontier_used = any(row_count(p) for p in shard_paths(frontier)) if frontier else False
    counts = dict.fromkeys(CONFIGS, 0)
    try:
        for stem, group in shard_groups(labeled, pairs, frontier).items():
            for name, table in export_shard(group, cfg, frontier_used).items():
                write_table(table, staging / name / f"{stem}.parquet", CONFIGS[name])
                counts[name] += table.num_rows
        for name in CONFIGS:
            if not (staging / name).is_dir():  # no labeled shard at all: an empty shard keeps the schema
                write_table(empty_table(CONFIGS[name]), staging / name / f"{name}.parquet", CONFIGS[name])
            shutil.rmtree(out / name, ignore_errors=True)
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def run_export(ctx: StageContext) -> dict:
    """The pipeline's `export` stage: the training configs from the label, pairs and frontier outputs."""
    pairs = ctx.inputs.get("pairs")
    counts = export_configs(ctx.inputs["label"], pairs, ctx.inputs.get("frontier"), ctx.config, ctx.output)
    result = {"status": "ran", "rows_out": sum(counts.values()), "configs": counts}
    if pairs is not None:  # `select` drops a pair only when its problem is outside the frontier band
        pairs_in = sum(row_count(p) for p in shard_paths(pairs))
        result |= {"pairs_in": pairs_in, "dropped_pairs_outside_frontier": pairs_in - counts["dpo"]}
    return result
