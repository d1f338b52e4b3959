"""A toy stage added the way a new stage is: one module (its config and its step) plus one entry
in a pipeline spec. It counts each labeled trace's steps; `tests/test_pipeline.py` runs it through
the `curate` flow (`pipeline="toy_stage:PIPELINE"`)."""

from __future__ import annotations

from datasets import Features, Value

from flows.pipeline import PIPELINE as PROJECT
from flows.pipeline import Stage
from schemas import LABELED_TRACES
from stages.base import ShardStage, StageConfig

STEP_COUNTS = Features({"trace_id": Value("string"), "steps": Value("int32")})


class StepCountConfig(StageConfig):
    min_steps: int = 0  # traces with fewer steps are left out
    chunk_size: int = 4096


class StepCount(ShardStage):
    name = "step_count"
    in_features = LABELED_TRACES
    out_features = STEP_COUNTS

    def process_chunk(self, rows: list[dict]) -> tuple[list[dict], list[dict]]:
        out = [{"trace_id": t["trace_id"], "steps": len(t["steps"])} for t in rows]
        return [r for r in out if r["steps"] >= self.cfg.min_steps], []


PIPELINE = PROJECT.with_stage(Stage("step_count", StepCountConfig, ("label",), "step_counts", step=StepCount))
