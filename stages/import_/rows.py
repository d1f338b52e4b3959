"""One source row in, its problem and its `traces` rows (or quarantine rows) out.

Traces go through the trace builder the generate stage uses (`stages.trace_rows.build_trace`:
split at the thinking tags, steps, answers), given a token-less `Sample`: steps' token spans are
-1 and every confidence is null, since a source has no logprobs; token counts are null too (no
tokenizer is loaded). A separate reasoning field is rendered inline (`<think>` + reasoning +
`</think>` + content), so every later stage reads the thinking inside the completion, as it does
for generated traces.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

from schemas.problems import problem_id_for
from stages.answers import THINK_TAGS, extract_answer
from stages.base import reject
from stages.decontaminate import decontaminate
from stages.engine import Sample
from stages.import_.presets import Preset
from stages.trace_rows import build_trace, check_problem, trace_id

if TYPE_CHECKING:  # the section's type only: the stage that holds it imports this module
    from stages.import_.stage import TraceSourceConfig

STAGE = "import"
USER, ASSISTANT = ("user", "human"), ("assistant", "gpt")


def get(row: dict, path: str | None) -> Any:
    """The value at a dotted `path` of `row` (None where any part is missing)."""
    if not path:
        return None
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _turns(conversation: Any) -> list[tuple[str, Any, Any]]:
    """(role, content, reasoning_content) of each chat turn (`role`/`content` or `from`/`value`)."""
    if not isinstance(conversation, list):
        return []
    out = []
    for turn in conversation:
        if isinstance(turn, dict):
            role = str(turn.get("role") or turn.get("from") or "").lower()
            out.append((role, turn.get("content", turn.get("value")), turn.get("reasoning_content")))
    return out


def _listed(value: Any) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]


def logical_row(raw: dict, columns: dict[str, str | None], preset: Preset | None) -> dict:
    """The importer's columns of a raw row: `problem`, `answer`, `id` and per-generation lists."""
    if preset is not None and preset.render is not None:
        row = preset.render(raw)
        row.setdefault("id", get(raw, columns["id"]))
    else:
        row = {k: get(raw, columns[k]) for k in ("id", "problem", "answer", "generations", "reasoning")}
        row |= {k: get(raw, columns[k]) for k in ("finish_reasons", "correctness")}
    turns = _turns(get(raw, columns["conversation"]))
    if turns and row.get("problem") is None:
        row["problem"] = next((c for r, c, _ in turns if r in USER), None)
    if turns and row.get("generations") is None:
        last = next(((c, rc) for r, c, rc in reversed(turns) if r in ASSISTANT), (None, None))
        row["generations"], row["reasoning"] = [last[0]], [last[1]]
    return row


def gold_text(value: Any) -> str | None:
    """The gold answer as text: an integral float as an integer, a full solution as its boxed answer."""
    if value is None:
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if "\\boxed" in text or "\\fbox" in text:
        text = extract_answer(text) or text
    return text or None


def inferred_finish(text: str) -> str:
    """`length` for a thinking opened and never closed (a truncated generation), else `stop`."""
    for open_tag, close_tag in THINK_TAGS:
        if open_tag in text and close_tag not in text:
            return "length"
    return "stop"


def completion_of(text: Any, reasoning: Any) -> str | None:
    text = text if isinstance(text, str) else None
    if isinstance(reasoning, str) and reasoning.strip():
        body = f"\n</think>\n\n{text.strip()}" if text and text.strip() else "\n"
        return f"<think>\n{reasoning.strip()}{body}"
    return text


def _bad_type(row: dict) -> tuple[str, str] | None:
    for key in ("problem", "generations"):
        value = row.get(key)
        ok = value is None or isinstance(value, str) or (key == "generations" and isinstance(value, list))
        if not ok:
            return "bad_value", f"the {key} column holds a {type(value).__name__}, not text"
    return None


def _bad_completion(completion: str | None, i: int) -> tuple[str, str] | None:
    if completion is None or not completion.strip():
        return "empty_generation", f"generation {i} is empty"
    try:
        completion.encode("utf-8")
    except UnicodeEncodeError as exc:
        return "invalid_utf8", f"generation {i} holds lone surrogates (undecodable bytes) at {exc.start}"
    return None


class RowImporter:
    """Turns source rows into problems and traces; remembers the ids written so far (a problem
    is written once; a repeated trace is quarantined as `duplicate_trace`)."""

    def __init__(self, cfg: TraceSourceConfig, columns: dict[str, str | None], preset: Preset | None) -> None:
        self.cfg, self.columns, self.preset = cfg, columns, preset
        self.model = cfg.model_name
        where = {"imported_from": cfg.source_name, "preset": cfg.preset, "split": cfg.split}
        self.sampling = json.dumps(where | {"config": cfg.config_name, "revision": cfg.revision}, sort_keys=True)
        self.problem_ids: set[str] = set()
        self.trace_ids: set[str] = set()
        self.source_correct = 0
        self.refused: dict[str, tuple[str, str]] = {}  # problem id -> decontamination's (reason, detail)
        self.seen_texts: dict = {}  # decontamination's duplicate state, across shards
        self.decontamination: dict = {"checked": 0, "contaminated": {}, "duplicates": 0}

    def refusal(self, problem: dict) -> tuple[str, str] | None:
        """Decontamination's (reason, detail) for a problem not seen before, else the earlier one."""
        pid = problem["problem_id"]
        if pid in self.problem_ids or pid in self.refused:
            return self.refused.get(pid)
        _, rejects, stats = decontaminate([problem], self.cfg.decontaminate, STAGE, seen=self.seen_texts)
        total = self.decontamination
        total["checked"] += stats["checked"]
        total["duplicates"] += stats["duplicates"]
        for name, n in stats["contaminated"].items():
            total["contaminated"][name] = total["contaminated"].get(name, 0) + n
        if rejects:
            self.refused[pid] = (rejects[0]["reason"], rejects[0]["detail"])
        return self.refused.get(pid)

    def problem_of(self, row: dict) -> dict:
        text = row.get("problem")
        key = row.get("id")
        return {
            "problem_id": problem_id_for(self.cfg.source_name, str(key if key is not None else text)),
            "source": self.cfg.source_name,
            "problem": text,
            "answer": gold_text(row.get("answer")),
            "split": self.cfg.split,
            "meta": json.dumps({"source_id": key}, default=str),
        }

    def convert(self, raw: dict, n: int) -> tuple[dict | None, list[dict], list[dict]]:
        """(the row's problem if new, its traces, its quarantine rows); `n`: its position in the source."""
        row = logical_row(raw, self.columns, self.preset)
        if bad := _bad_type(row):
            return None, [], [reject(f"row {n}", STAGE, *bad, raw)]
        problem = self.problem_of(row)
        if bad := check_problem(problem) or self.refusal(problem):
            return None, [], [reject(problem["problem_id"], STAGE, *bad, raw)]
        texts, reasons = _listed(row.get("generations")), _listed(row.get("reasoning"))
        finishes, correct = _listed(row.get("finish_reasons")), _listed(row.get("correctness"))
        pid, prompt = problem["problem_id"], self.cfg.prompt_template.format(problem=problem["problem"])
        if not texts:
            return None, [], [reject(pid, STAGE, "empty_generation", "the row has no generations", raw)]
        traces, rejects = [], []
        for i, text in enumerate(texts):
            completion = completion_of(text, reasons[i] if i < len(reasons) else None)
            if bad := _bad_completion(completion, i):
                rejects.append(reject(f"{pid}:{i}", STAGE, *bad, raw))
                continue
            # the completion's digest in the id: two rows of one problem are two traces, one row twice a duplicate
            digest = hashlib.sha256(completion.encode()).hexdigest()[:16]
            tid = trace_id(pid, i, self.model, f"{self.sampling}\x00{digest}")
            if tid in self.trace_ids:
                detail = f"generation {i} repeats an imported trace"
                rejects.append(reject(f"{pid}:{i}", STAGE, "duplicate_trace", detail, raw))
                continue
            finish = finishes[i] if i < len(finishes) and isinstance(finishes[i], str) else inferred_finish(completion)
            sample = Sample(text=completion, token_ids=[], finish_reason=finish)
            trace = build_trace(problem, i, sample, self.model, self.sampling, prompt, self.cfg.segment)
            trace["trace_id"] = tid
            trace["thinking_tokens"] = trace["answer_tokens"] = None  # no tokenizer: unknown, not 0
            self.trace_ids.add(tid)
            self.source_correct += bool(i < len(correct) and correct[i] is True)
            traces.append(trace)
        new = problem["problem_id"] not in self.problem_ids and bool(traces)
        if new:
            self.problem_ids.add(problem["problem_id"])
        return (problem if new else None), traces, rejects
