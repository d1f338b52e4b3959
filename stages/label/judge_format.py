"""ProcessBench-format judge prompts and verdict parsing: pure functions behind a name.

The teacher judge reads a problem and its indexed steps and answers the index of the earliest
wrong step, or -1. Two templates: `processbench` is the paper's own wording (for real teacher
models); `compact` says the same in few characters, for the tiny reasoner's short context.

A verdict is only as good as the reading behind it. When the judge reasons one line per step
(`[1] 13 - 4 = 3; 13 - 4 = 9; 00 39 wrong`: the step's claim, the judge's own value, its verdict),
`reasoning_error` rejects a verdict whose lines quote a claim the step does not make or call a
step ok while their own numbers differ (or wrong while they agree): such a verdict judged
something other than the solution, and is recorded as unusable rather than counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROCESSBENCH = (
    "The following is a math problem and a solution (split into paragraphs, enclosed with tags and "
    "indexed from 0):\n\n[Math Problem]\n\n{problem}\n\n[Solution]\n\n{tagged_steps}\n\n"
    "Your task is to review and critique the solution paragraph by paragraph. Once you identify an "
    "error in a paragraph, return the index of the paragraph where the earliest error occurs. "
    'Otherwise, return the index of -1 (which typically denotes "not found").\n\n'
    "Please put your final answer (i.e., the index) in \\boxed{{}}."
)
COMPACT = "Problem: {problem}\nSteps:\n{tagged_steps}\nEarliest wrong step, or -1?"
TEMPLATES = {"processbench": PROCESSBENCH, "compact": COMPACT}


def tag_steps(steps: list[str], template: str) -> str:
    if template == "processbench":
        return "\n\n".join(f"<paragraph_{i}>\n{s}\n</paragraph_{i}>" for i, s in enumerate(steps))
    return "\n".join(f"[{i}] {s}" for i, s in enumerate(steps))


# `<|eos|>`, `<|im_end|>`...: in a judged text they would become special tokens and could end the
# judge's user turn and forge its answer; `<eos>` reads the same to the judge and stays text.
_CONTROL_TOKEN = re.compile(r"<\|([^|<>\s]{1,40})\|>")


def defang(text: str) -> str:
    """`text` with chat-template control tokens made plain text."""
    return _CONTROL_TOKEN.sub(r"<\1>", text) if "<|" in text else text


def judge_prompt(problem: str, steps: list[str], template: str = "processbench") -> str:
    """The user message asking for the earliest wrong step of `steps` (control tokens defanged)."""
    tagged = tag_steps([defang(s) for s in steps], template)
    return TEMPLATES[template].format(problem=defang(problem), tagged_steps=tagged)


@dataclass(frozen=True)
class Verdict:
    """A parsed judge answer: `index` is the earliest wrong step (-1: none); `error` says why
    a verdict could not be used (then `index` is None)."""

    index: int | None
    error: str | None = None


_BOXED_INDEX = re.compile(r"\\boxed\{\s*(-?\d+)\s*\}")


def parse_verdict(text: str, n_steps: int) -> Verdict:
    """Take the last `\\boxed{i}` after any thinking; reject missing, non-integer or
    out-of-range indices instead of guessing."""
    answer = text.rsplit("</think>", 1)[-1]
    found = _BOXED_INDEX.findall(answer)
    if not found:
        return Verdict(None, "no_boxed_index")
    index = int(found[-1])
    if index < -1 or index >= n_steps:
        return Verdict(None, "index_out_of_range")
    return Verdict(index)


_JUDGE_LINE = re.compile(r"^\[(\d+)\]\s*(.*)$")
_CLAIM_LINE = re.compile(r"^(-?\d+ [+\-*] -?\d+ = (-?\d+)); -?\d+ [+\-*] -?\d+ = (-?\d+);(?: \d\d \d\d)? (ok|wrong)$")


def reasoning_error(text: str, steps: list[str]) -> str | None:
    """Why the judge's per-step lines cannot back its verdict, or None. Checked are the lines of
    its thinking in the per-step grammar (`[i] ok`, `[i] wrong`, `[i] <claim>; <value>; ... ok`);
    anything else is free-form reasoning (a large judge's prose) and is left alone."""
    thinking = text.split("</think>", 1)[0]
    for line in thinking.splitlines():
        found = _JUDGE_LINE.match(line.strip())
        if found is None:
            continue
        index, body = int(found.group(1)), found.group(2).strip()
        claim = _CLAIM_LINE.match(body)
        if claim is None and body not in ("ok", "wrong"):
            continue
        if index >= len(steps):
            return "reasoning_names_missing_step"
        if claim is None:
            continue
        quoted, claimed, value, verdict = claim.groups()
        if quoted not in defang(steps[index]):
            return "misquoted_step"
        if (verdict == "ok") != (int(claimed) == int(value)):
            return "verdict_contradicts_reasoning"
    return None
