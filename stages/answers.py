"""Splitting a completion into thinking and answer, and extracting the answers each concludes.

Pure functions over text, so the generate stage, the segmenter and the tests share one
definition of "the final answer" and "the answer concluded in the thinking".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Tag pairs seen in the wild: R1-style, and Sky-T1/OpenThoughts-style.
THINK_TAGS = (("<think>", "</think>"), ("<|begin_of_thought|>", "<|end_of_thought|>"))
_SOLUTION_TAGS = ("<|begin_of_solution|>", "<|end_of_solution|>")
_STATED = re.compile(r"(?:the (?:final )?answer is|answer:)\s*\$?\s*([^\s$]+)", re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*(\{)?")
MAX_BOXED_SCAN = 200_000  # characters scanned from the end for answers: bounded work on hostile text


@dataclass(frozen=True)
class Split:
    """`thinking` and `answer` partition the completion (minus the tags); `thinking_start` is
    the char offset of the thinking inside the completion; `closed` tells whether the
    thinking ended with its closing tag (a truncated generation leaves it open)."""

    thinking: str
    answer: str
    thinking_start: int
    closed: bool


def prompt_opening(prompt: str) -> str:
    """The thinking's opening a chat template put at the end of `prompt` (R1-Distill's and Qwen3's
    `<think>\n`), else "". Prepended to the completion it gives the text as the model would have
    written it under a template that leaves the tag to the model (what SFT and DPO text needs)."""
    for open_tag, _ in THINK_TAGS:
        i = prompt.rfind(open_tag)
        if i != -1 and not prompt[i + len(open_tag) :].strip():
            return prompt[i:]
    return ""


def split_thinking(completion: str, reasoning: str | None = None, prompt_opened: bool = False) -> Split:
    """Handle `<think>…</think>`, an opening tag missing because the chat template put it in the
    prompt (`prompt_opened`, or a closing tag with no opening one), a missing closing tag
    (truncation: everything is thinking), and a server's separate reasoning field (then the
    thinking is not inside the completion and `thinking_start` is -1). Of the known tag styles,
    the one whose first tag comes first in the text is used."""
    if reasoning is not None:
        return Split(reasoning, completion, -1, True)
    found = []
    for open_tag, close_tag in THINK_TAGS:
        o, c = completion.find(open_tag), completion.find(close_tag)
        if o != -1 or c != -1:
            found.append((min(x for x in (o, c) if x != -1), open_tag, close_tag, o, c))
    if found:
        _, open_tag, close_tag, o, c = min(found)
        start = o + len(open_tag) if o != -1 and (c == -1 or o < c) else 0
        if c != -1 and c < start:  # a stray closing tag before the opening one
            c = completion.find(close_tag, start)
        if c == -1:
            return Split(completion[start:], "", start, False)
        return Split(completion[start:c], completion[c + len(close_tag) :], start, True)
    if prompt_opened:
        return Split(completion, "", 0, False)
    return Split("", completion, 0, True)


def _boxed_contents(text: str) -> list[str]:
    """Contents of every top-level `\\boxed{...}` / `\\fbox{...}` (balanced braces; a brace-less
    `\\boxed 5` takes one token), in one linear pass."""
    out, pos = [], 0
    while m := _BOXED.search(text, pos):
        if m.group(1) is None:
            bare = re.match(r"\S+", text[m.end() : m.end() + 100])
            if bare:
                out.append(bare.group(0))
            pos = m.end()
            continue
        k = start = m.end()
        depth = 1
        while k < len(text) and depth:
            ch = text[k]
            depth += 1 if ch == "{" else -1 if ch == "}" else 0
            k += 1
        if depth:
            return out
        out.append(text[start : k - 1].strip())
        pos = k
    return out


def extract_answer(text: str) -> str | None:
    """The last boxed answer, else the last "the answer is X" statement, else None."""
    tail = text[-MAX_BOXED_SCAN:]
    for start, end in (_SOLUTION_TAGS,):
        if start in tail:
            tail = tail.split(start, 1)[1].split(end, 1)[0]
    boxed = _boxed_contents(tail)
    if boxed:
        return boxed[-1]
    cut = max(tail.lower().rfind("answer is"), tail.lower().rfind("answer:"))
    stated = _STATED.search(tail, max(0, cut - 20)) if cut != -1 else None
    return stated.group(1).rstrip(".,;") if stated else None
