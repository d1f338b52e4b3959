"""Generate: problems in, thinking traces out, each step carrying the model's own confidence.

The GPU hours go here, so the stage wastes none: problems are batched into one engine call per
chunk (vLLM's continuous batching and prefix caching do the rest), each problem's samples are
seeded from the problem id (a resumed run regenerates exactly the same traces), and a chunk's
output is written before the next starts. Bad problems are refused with a reason code instead
of failing the batch. How the `n` samples are spent is the `strategy` section (`stages.prune`):
plain sampling, or a confidence-pruned strategy whose pruned traces go to the rejects with a
`pruned:<strategy>` reason and the tokens they cost (`tokens_generated` / `tokens_pruned` stats).
"""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
from pydantic import Field

from schemas import PROBLEMS, TRACES
from stages.answers import extract_answer, prompt_opening, split_thinking
from stages.base import ModelStageConfig, ShardStage, reject
from stages.engine import EngineUnavailable, Generation, Sample, SamplingConfig
from stages.prune import StrategyConfig, run_strategy
from stages.segment import SegmentConfig, segment


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


def trace_id(problem_id: str, sample_index: int, model: str, sampling_json: str) -> str:
    key = "\x00".join([problem_id, str(sample_index), model, sampling_json])
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def problem_seed(problem_id: str, seed: int | None) -> int:
    return int(hashlib.sha256(f"{seed}\x00{problem_id}".encode()).hexdigest()[:8], 16)


# Chat-template control tokens (`<|im_end|>`, `<|eos|>`, `<|user|>`): a tokenizer turns them into
# special tokens even inside user text, so a problem holding one could end its own turn and forge
# the model's; no problem needs them.
CONTROL_TOKEN = re.compile(r"<\|[^|<>\s]{1,40}\|>")


def check_problem(row: dict) -> tuple[str, str] | None:
    """(reason, detail) when a problem cannot be generated for, else None."""
    text, answer = row.get("problem"), row.get("answer")
    if text is None or not str(text).strip():
        return "empty_problem", "the problem text is empty"
    if answer is None or not str(answer).strip():
        return "missing_answer", "no gold answer to verify traces against"
    try:
        str(text).encode("utf-8")
    except UnicodeEncodeError:
        return "invalid_utf8", "the problem text holds lone surrogates (undecodable bytes)"
    if "\ufffd" in str(text):
        return "invalid_utf8", "the problem text holds U+FFFD replacement characters (undecodable bytes)"
    if m := CONTROL_TOKEN.search(str(text)):
        return "control_tokens", f"the problem text holds the chat-template control token {m.group(0)!r}"
    return None


def answer_span_confidence(
    text: str, answer_start: int, answer: str | None, offsets: np.ndarray, logprobs: list[float]
) -> float | None:
    """Mean logprob of the tokens that spell the final answer (RLSF's answer-span confidence):
    the last occurrence of `answer` after `answer_start` in the completion."""
    if not answer or not len(offsets) or len(logprobs) != len(offsets):
        return None
    pos = text.rfind(answer, answer_start)
    if pos == -1:
        return None
    lo = max(int(np.searchsorted(offsets, pos, side="right")) - 1, 0)
    hi = int(np.searchsorted(offsets, pos + len(answer), side="left"))
    return float(np.mean(logprobs[lo : max(hi, lo + 1)]))


def build_trace(
    problem: dict, index: int, sample: Sample, model: str, sampling_json: str, prompt: str, cfg: GenerateConfig
) -> dict:
    """One `traces` row: split, answers, steps with confidence from the step's own tokens."""
    parts = split_thinking(sample.text, sample.reasoning, prompt_opened=bool(prompt_opening(prompt)))
    offsets = np.asarray(sample.offsets, dtype=np.int64)
    think_end = parts.thinking_start + len(parts.thinking)
    if sample.reasoning is None and len(offsets):
        t0, t1 = np.searchsorted(offsets, [parts.thinking_start, think_end])
        thinking_tokens, answer_tokens = int(t1 - t0), int(len(offsets) - t1)
        steps = segment(parts.thinking, parts.thinking_start, offsets, sample.logprobs, sample.entropies, cfg.segment)
    else:  # a server's separate reasoning field: no token alignment for the thinking
        thinking_tokens, answer_tokens = 0, len(sample.logprobs)
        steps = segment(parts.thinking, 0, [], [], [], cfg.segment)
    keep = cfg.store_logprobs
    final = extract_answer(parts.answer) if parts.closed else None
    answer_start = parts.thinking_start + len(parts.thinking) if sample.reasoning is None else 0
    return {
        "trace_id": trace_id(problem["problem_id"], index, model, sampling_json),
        "problem_id": problem["problem_id"],
        "sample_index": index,
        "model": model,
        "sampling": sampling_json,
        "problem": problem["problem"],
        "gold_answer": problem["answer"],
        "prompt": prompt,
        "completion": sample.text,
        "thinking": parts.thinking,
        "thinking_start": parts.thinking_start,
        "answer_text": parts.answer,
        "finish_reason": sample.finish_reason,
        "thinking_tokens": thinking_tokens,
        "answer_tokens": answer_tokens,
        "final_answer": final,
        "answer_confidence": answer_span_confidence(sample.text, answer_start, final, offsets, sample.logprobs),
        "thinking_answer": extract_answer(parts.thinking),
        "steps": steps,
        "token_logprobs": list(sample.logprobs) if keep else [],
        "token_entropies": list(sample.entropies) if keep else [],
        "token_offsets": list(sample.offsets) if keep else [],
    }


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
        traces = []
        for row, prompt, out in zip(todo, prompts, outcomes):
            self.stat_update("tokens_generated", value=out.tokens_generated)
            if strategy.kind != "sample":
                self.stat_update("tokens_pruned", value=out.tokens_pruned)
            for p in out.pruned:  # pruned traces go to the rejects with their reason and cost
                detail = f"{p.detail}; {p.tokens} tokens" if p.reason.startswith("pruned:") else p.detail
                payload = row | {"sample_index": p.index, "tokens": p.tokens, "completion": p.sample and p.sample.text}
                rejects.append(reject(row["problem_id"], self.name, p.reason, detail, payload))
            traces += [build_trace(row, i, s, engine.name, sampling_json, prompt, self.cfg) for i, s in out.kept]
        return traces, rejects
