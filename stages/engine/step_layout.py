"""Where a process reward model reads each step's score: the token layout TRL's PRMTrainer trains on.

A row is `[bos] + problem + (step + separator) per step`, with the step's label on the last token
of its separator (`PRMTrainer.tokenize_row`). Scoring must lay a trace out exactly so, or the
model reads its scores at tokens it never learned to score; both PRM backends share this.
"""

from __future__ import annotations

from collections.abc import Sequence


def step_layout(tokenizer, problem: str, steps: Sequence[str], separator: str) -> tuple[list[int], list[int]]:
    """(input ids, the index of each step's scoring token) for one trace."""
    ids = tokenizer(problem, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id, *ids]
    sep = tokenizer.encode(separator, add_special_tokens=False)
    positions = []
    for step in steps:
        ids = ids + tokenizer(step, add_special_tokens=False)["input_ids"] + sep
        positions.append(len(ids) - 1)
    return ids, positions


def within(positions: list[int], limit: int | None) -> int:
    """How many leading steps have their scoring token inside a context of `limit` tokens."""
    return len(positions) if limit is None else sum(p < limit for p in positions)
