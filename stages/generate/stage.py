"""Generate: problems in, thinking traces out, each step carrying the model's own confidence.

The GPU hours go here, so the stage wastes none: problems are batched into one engine call per
chunk (vLLM's continuous batching and prefix caching do the rest), each problem's samples are
seeded from the problem id (a resumed run regenerates exactly the same traces), and a chunk's
output is written before the next starts. Bad problems are refused with a reason code instead
of failing the batch; each sample becomes a `traces` row as an imported trace does
(`stages/trace_rows.py`). How the `n` samples are spent is the `strategy` section (`stages.prune`):
plain sampling, or a confidence-pruned strategy whose pruned traces go to the rejects with a
`pruned:<strategy>` reason and the tokens they cost (`tokens_generated` / `tokens_pruned` stats).
"""

from __future__ import annotations

import hashlib
import json

from pydantic import Field

from schemas import PROBLEMS, TRACES
from stages.base import ModelStageConfig, ShardStage, reject
from stages.engine import EngineUnavailable, Generation, SamplingConfig
from stages.prune import StrategyConfig, run_strategy
from stages.segment import SegmentConfig
from stages.trace_rows import build_trace, check_problem


class GenerateConfig(ModelStageConfig):
    PURPOSES = ("generator",)
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(n=4, max_tokens=400))
    prompt_template: str = "{problem}"
    store_logprobs: bool = False  # keep per-token arrays in the traces (large)
    chunk_size: int = 32  # problems per engine call and per output shard
    min_new_tokens: int = 16  # a prompt leaving less room than this in the context is refused
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    # how the `n` samples are spent: plain sampling, or a confidence-pruned strategy (`stages.prune`)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)

    def sampling_json(self) -> str:
        """What a trace records as its sampling (and its id hashes): the sampling parameters, with
        the strategy when it is not plain sampling (a pruned run's traces are other traces; plain
        sampling's ids stay what they were)."""
        if self.strategy.kind == "sample":
            return self.sampling.model_dump_json()
        return json.dumps({**self.sampling.model_dump(), "strategy": self.strategy.model_dump()})


def problem_seed(problem_id: str, seed: int | None) -> int:
    return int(hashlib.sha256(f"{seed}\x00{problem_id}".encode()).hexdigest()[:8], 16)


class Generate(ShardStage):
    name = "generate"
    in_features = PROBLEMS
    out_features = TRACES

    def _generate(self, prompts: list[str], sampling: SamplingConfig, seeds: list[int]) -> list[Generation]:
        """One batched call; if the batch fails, isolate the failing prompts one by one. A dead
        engine is not a bad prompt: `EngineUnavailable` fails the chunk (unwritten, so resumed).
        Nor is an engine that fails every prompt of a chunk alone (a broken kernel cache made
        each call raise a compile error): rejecting them all would drop the rows for good."""
        try:
            return self.engine("generator").generate(prompts, sampling, seeds)
        except EngineUnavailable:
            raise
        except Exception as batch_error:  # noqa: BLE001 - one bad prompt must not kill the chunk
            out = []
            for p, s in zip(prompts, seeds):
                try:
                    out += self.engine("generator").generate([p], sampling, [s])
                except EngineUnavailable:
                    raise
                except Exception as exc:  # noqa: BLE001
                    out.append(Generation(p, [], error=f"{type(exc).__name__}: {exc}"[:500]))
            if len(prompts) > 1 and all(g.error for g in out):
                raise EngineUnavailable(f"every prompt of the chunk failed alone: {out[0].error}") from batch_error
            return out

    def process_chunk(self, rows: list[dict]) -> tuple[list[dict], list[dict]]:
        rejects, todo, prompts = [], [], []
        engine = self.engine("generator")
        limit = engine.max_model_len
        for row in rows:
            if bad := check_problem(row):
                rejects.append(reject(row.get("problem_id"), self.name, *bad, row))
                continue
            prompt = engine.chat_prompt(self.cfg.prompt_template.format(problem=row["problem"]))
            n_tokens = engine.count_tokens(prompt)
            if limit and n_tokens is not None and n_tokens + self.cfg.min_new_tokens > limit:
                rejects.append(
                    reject(
                        row["problem_id"],
                        self.name,
                        "prompt_too_long",
                        f"prompt has {n_tokens} tokens; context is {limit}",
                        row,
                    )
                )
                continue
            todo.append(row)
            prompts.append(prompt)
        sampling_json = self.cfg.sampling_json()
        seeds = [problem_seed(r["problem_id"], self.cfg.sampling.seed) for r in todo]
        strategy = self.cfg.strategy
        outcomes = (
            run_strategy(strategy, self._generate, prompts, seeds, self.cfg.sampling, engine.name) if todo else []
        )
        traces, as_row = [], (self.cfg.segment, self.cfg.store_logprobs)
        for row, prompt, out in zip(todo, prompts, outcomes):
            self.stat_update("tokens_generated", value=out.tokens_generated)
            if strategy.kind != "sample":
                self.stat_update("tokens_pruned", value=out.tokens_pruned)
            for p in out.pruned:  # pruned traces go to the rejects with their reason and cost
                detail = f"{p.detail}; {p.tokens} tokens" if p.reason.startswith("pruned:") else p.detail
                payload = row | {"sample_index": p.index, "tokens": p.tokens, "completion": p.sample and p.sample.text}
                rejects.append(reject(row["problem_id"], self.name, p.reason, detail, payload))
            traces += [build_trace(row, i, s, engine.name, sampling_json, prompt, *as_row) for i, s in out.kept]
        return traces, rejects
