"""`thoughtmill bench reliability`: faults injected, runs resumed, rows lost (0), duplicates (0),
hostile inputs tried and hangs (0), measured on real stages.

The full form of `tests/reliability/`: a larger synthetic corpus and more kills for the
model-free stages (label with the symbolic checker and verifier, pairs, export and publish), the
generate stage killed with its vLLM engine, the engine core alone killed mid-batch, a full disk,
corrupted input shards, the hostile-input corpus through generate (real vLLM), label (with the
teacher as judge), pairs and export, and the load run (100k vs 1M traces: throughput and peak
memory, which must stay flat).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from flows.bench.load import report as load_report
from flows.bench.load import run_load
from flows.pipeline import PIPELINE
from infra.reliability.engine_faults import engine_death, generate_resume
from infra.reliability.experiments import (
    baseline,
    can_mount,
    corrupt_input,
    disk_full,
    publish_resume,
    published_run,
    stage_resume,
)
from infra.reliability.faults import FaultRun
from infra.reliability.hostile import run_hostile
from infra.reliability.synthetic import write_synthetic_run
from stages.engine import EngineConfig
from stages.engine.pool import POOL

LABEL = {"labelers": ["symbolic"], "fidelity": {"info_gain": False}, "chunk_size": 96}
PAIRS = {"kinds": ["trace", "fidelity"], "chunk_size": 96}


def fault_runs(work: Path, traces: int, kills: int) -> tuple[list[FaultRun], dict]:
    """Kill-and-resume of every stage, plus the full-disk, corrupt-shard and engine-death cases."""
    write_synthetic_run(work / "run", traces, shard_problems=250)
    traces_dir = PIPELINE.path("generate", work / "run")
    runs = [stage_resume("label", traces_dir, work, LABEL, kills=kills, seed=1)]
    labeled = baseline("label", traces_dir, work, LABEL)
    runs.append(stage_resume("pairs", labeled, work, PAIRS, kills=kills, seed=2))
    run_root = published_run(work, {"label": labeled, "pairs": baseline("pairs", labeled, work, PAIRS)})
    runs.append(publish_resume(run_root, work, {}, kills=kills, seed=3))
    runs.append(generate_resume(work / "model", kills=max(2, kills // 2)))
    cases = {"corrupt_input": corrupt_input("label", traces_dir, work, LABEL)}
    if can_mount():
        cases["disk_full"] = disk_full("label", traces_dir, work, LABEL)
    cases["engine_death"] = engine_death(work / "model")
    for case in cases.values():
        runs.append(FaultRun(**case["resumed"]))
    return runs, cases


def hostile(work: Path) -> dict:
    engine = POOL.open(EngineConfig(model="tiny:teacher", enforce_eager=True, block_size=32))
    try:
        return run_hostile(work / "hostile", engine)
    finally:
        POOL.close()


def run(traces: int = 60_000, kills: int = 5, load_sizes: list[int] | None = None, work: Path | None = None) -> dict:
    work = Path(work or tempfile.mkdtemp(prefix="thoughtmill-reliability-"))
    start = time.time()
    runs, cases = fault_runs(work / "faults", traces, kills)
    result = {
        "faults_injected": sum(r.faults_injected for r in runs),
        "runs_resumed": sum(r.runs_resumed for r in runs),
        "rows_compared": sum(r.rows_compared for r in runs),
        "rows_lost": sum(r.rows_lost for r in runs),
        "duplicates": sum(r.duplicates for r in runs),
        "rows_added_or_differing": sum(r.rows_added + r.rows_differing for r in runs),
        "per_stage": [r.as_dict() for r in runs],
        "cases": cases,
        "hostile": hostile(work),
    }
    if load_sizes:
        result["load"] = run_load(load_sizes, work / "load")
    result["seconds"] = round(time.time() - start, 1)
    (work / "reliability.json").write_text(json.dumps(result, indent=2, default=str))
    result["json"] = str(work / "reliability.json")
    return result


def report(r: dict) -> None:
    h = r["hostile"]
    print("reliability bench")
    for s in r["per_stage"]:
        keys = ("faults_injected", "rows_compared", "rows_lost", "duplicates", "rows_added", "rows_differing")
        print(f"  {s['stage']:9s} " + ", ".join(f"{k} {s[k]}" for k in keys) + (f" {s['notes']}" if s["notes"] else ""))
    for name, case in r["cases"].items():
        print(f"  {name}: " + json.dumps({k: v for k, v in case.items() if k != "resumed"}))
    print(f"  hostile: max s/row {h['max_seconds_per_row']} (bounds {h['bounds']}); quarantined {h['quarantined']}")
    print(
        f"faults injected {r['faults_injected']}, runs resumed {r['runs_resumed']}, "
        f"rows compared {r['rows_compared']}, rows lost {r['rows_lost']} (must be 0), "
        f"duplicates {r['duplicates']} (must be 0), "
        f"hostile inputs tried {h['hostile_inputs']}, hangs {h['hangs']} (must be 0)"
    )
    if "load" in r:
        load_report(r["load"])
    print(f"took {r['seconds']} s; details in {r['json']}")


def main(traces: int = 60_000, kills: int = 5, load_sizes: list[int] | None = None) -> dict:
    r = run(traces, kills, load_sizes)
    report(r)
    return r
