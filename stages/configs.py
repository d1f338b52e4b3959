"""Export: labeled traces, pairs and frontier decisions into the configs TRL trainers load.

Pure functions from rows to rows of `schemas.outputs` (sft, prm, dpo, traces). The frontier
filters what trains the student (`sft`, `dpo` by default); the `traces` config keeps everything,
annotated, for researchers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from schemas import CONFIGS, FRONTIER, LABELED_TRACES, PAIRS
from stages.shards import read_table, shard_paths, to_table, write_table


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reasoning: Literal["inline", "field"] = "inline"  # sft: <think> inline, or in `reasoning_content`
    prm_labels: Literal["consensus", "mc"] = "consensus"
    prm_threshold: float = 0.5  # mc: a step is correct when its soft MC value reaches this
    frontier_applies_to: list[Literal["sft", "prm", "dpo"]] = ["sft", "dpo"]


def sft_row(t: dict, reasoning: str) -> dict:
    user = {"role": "user", "content": t["problem"], "reasoning_content": None}
    if reasoning == "inline":
        assistant = {"role": "assistant", "content": t["completion"].strip(), "reasoning_content": None}
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


def export(traces: list[dict], pairs: list[dict], frontier: list[dict], cfg: ExportConfig) -> dict[str, list[dict]]:
    """Rows of every config. `frontier` rows say which traces (and so problems) are kept."""
    kept_traces = {f["trace_id"] for f in frontier if f["keep"]}
    band_problems = {f["problem_id"] for f in frontier if f["drop_reason"] in ("", "ifd_too_high")}
    judged = {f["trace_id"] for f in frontier}

    def in_frontier(config: str, trace_id: str | None = None, problem_id: str | None = None) -> bool:
        if config not in cfg.frontier_applies_to or not frontier:
            return True
        if trace_id is not None:
            return trace_id in kept_traces or trace_id not in judged
        return problem_id in band_problems

    sft = [sft_row(t, cfg.reasoning) for t in traces if sft_eligible(t) and in_frontier("sft", t["trace_id"])]
    prm = [r for t in traces if in_frontier("prm", t["trace_id"]) and (r := prm_row(t, cfg))]
    dpo = [dpo_row(p) for p in pairs if in_frontier("dpo", problem_id=p["problem_id"])]
    return {"sft": sft, "prm": prm, "dpo": dpo, "traces": traces}


def _rows(folder: Path, features) -> list[dict]:
    tables = [read_table(p, features) for p in shard_paths(folder)]
    return pa.concat_tables(tables).to_pylist() if tables else []


def export_configs(root: Path, cfg: ExportConfig, out: Path) -> dict[str, int]:
    """Read a run's labeled traces, pairs and frontier decisions under `root`, write one shard
    per config under `out/<config>/`, and return the row count of each config."""
    rows = export(
        _rows(root / "labeled", LABELED_TRACES), _rows(root / "pairs", PAIRS), _rows(root / "frontier", FRONTIER), cfg
    )
    for name, config_rows in rows.items():
        write_table(to_table(config_rows, CONFIGS[name]), out / name / f"{name}.parquet", CONFIGS[name])
    return {name: len(r) for name, r in rows.items()}
