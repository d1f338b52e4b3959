"""Column mappings of the trace formats people already have, by name (`import.preset`).

A mapping names, for each logical column the importer reads, the source column (a dotted path
reaches into nested records: `question.problem`); None means the format has no such column.
Logical columns:

- `id`: a stable id of the problem (default: a hash of the problem text);
- `problem`, `answer`: the problem text and its gold final answer (a full solution is fine: its
  last `\\boxed{}` is taken);
- `generations`: the completions, a list (one trace per element) or one string;
- `reasoning`: a separate reasoning field (list or string), rendered inline as `<think>` text;
- `finish_reasons`, `correctness`: per generation (list) or one value; kept when present;
- `conversation`: a chat list (`role`/`content` or `from`/`value` turns): the first user turn is
  the problem, the last assistant turn the generation (its `reasoning_content`, if any, the
  reasoning), unless `problem` / `generations` are mapped too.

A preset with a `render` function builds the logical row itself (PRM800K's step records).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

_BLANK = re.compile(r"\n\s*\n")
LOGICAL = ("id", "problem", "answer", "generations", "reasoning", "finish_reasons", "correctness", "conversation")


@dataclass(frozen=True)
class Preset:
    columns: dict[str, str | None]
    about: str
    render: Callable[[dict], dict] | None = None  # raw row -> logical row (then `columns` only lists what it reads)
    reads: tuple[str, ...] = field(default=())  # top-level columns `render` needs


def prm800k_row(raw: dict) -> dict:
    """One PRM800K labeling record as one trace: the model's pre-generated solution (phase 2),
    else the path the labeler took (phase 1: each step's chosen completion or the human's
    rewrite, ending at a step rated wrong). Steps are joined by blank lines inside `<think>`, so
    the paragraph segmenter finds them again (a step's own blank lines become single newlines);
    the `# Answer` part becomes the boxed answer. The human step ratings are not kept (the traces
    schema has no column for them)."""
    question, label = raw.get("question") or {}, raw.get("label") or {}
    steps = question.get("pre_generated_steps") if raw.get("generation") is not None else None
    if not steps:
        steps = []
        for step in label.get("steps") or []:
            options, chosen, human = (
                step.get("completions") or [],
                step.get("chosen_completion"),
                step.get("human_completion"),
            )
            if chosen is not None and chosen < len(options):
                steps.append(options[chosen]["text"])
            elif human:
                steps.append(human["text"])
            else:  # no choice: the labeler stopped here; keep the step they rated wrong (if any)
                wrong = [o for o in options if o.get("rating") == -1]
                if wrong:
                    steps.append(wrong[0]["text"])
                break
    # blank lines inside a step would split it in the paragraph segmenter: PRM800K's steps stay whole
    text = "\n\n".join(_BLANK.sub("\n", s.strip()) for s in steps if s and s.strip())
    thinking, _, answer = text.partition("# Answer")
    completion = (
        f"<think>\n{thinking.strip()}\n</think>\n\nThe answer is \\boxed{{{answer.strip()}}}." if answer.strip() else ""
    )
    if not completion and thinking.strip():
        completion = f"<think>\n{thinking.strip()}\n"  # no answer reached: an open thinking
    return {
        "problem": question.get("problem"),
        "answer": question.get("ground_truth_answer"),
        "generations": [completion],
        "finish_reasons": ["stop"],
    }


PRESETS: dict[str, Preset] = {
    "openr1": Preset(
        {
            "id": "uuid",
            "problem": "problem",
            "answer": "answer",
            "generations": "generations",
            "finish_reasons": "finish_reasons",
            "correctness": "correctness_math_verify",
        },
        "open-r1/OpenR1-Math-220k: problem, answer, a list of R1 generations with <think>",
    ),
    "openthoughts": Preset(
        {"conversation": "conversations"},
        "OpenThoughts / Bespoke-Stratos: `conversations` turns with <|begin_of_thought|> tags; no gold "
        "answer column (map `answer`, or rows are quarantined as missing_answer)",
    ),
    "skythought": Preset(
        {"problem": "question", "answer": "gt", "generations": "code", "correctness": "score"},
        "SkyThought evaluation outputs: question, gt, a list of completions in `code`",
    ),
    "messages": Preset(
        {"conversation": "messages"},
        "chat `messages` with inline <think> or a `reasoning_content` field; map `answer`",
    ),
    "prm800k": Preset(
        {"problem": "question.problem", "answer": "question.ground_truth_answer"},
        "openai/prm800k labeling records: one trace per record (the labeled solution path)",
        render=prm800k_row,
        reads=("question", "label"),
    ),
}
PRESETS["bespoke"] = PRESETS["openthoughts"]


def resolve_columns(
    preset: str | None, overrides: dict[str, str | None]
) -> tuple[dict[str, str | None], Preset | None]:
    """The logical -> source column mapping of `preset` with `overrides` applied; a ValueError
    naming the known presets or logical columns when either is unknown."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"import.preset: unknown preset {preset!r}; known presets: {sorted(PRESETS)}")
    if unknown := sorted(set(overrides) - set(LOGICAL)):
        raise ValueError(f"import.columns: unknown column(s) {unknown}; the importer reads {list(LOGICAL)}")
    found = PRESETS[preset] if preset else None
    columns = {k: None for k in LOGICAL} | (dict(found.columns) if found else {}) | dict(overrides)
    return columns, found
