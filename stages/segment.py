"""Segmenting a thinking trace into steps, and scoring each step's confidence from its own tokens.

Steps are the unit that judges label and that preference pairs are cut at, so one definition is
shared by generation, labelling and the tests. The functions are pure (text and arrays in, plain
dicts out) and run once per sampled trace, so they are linear-time on hostile text (single-pass
`re.finditer`, no nested backtracking) and do per-step, never per-token, Python work: token spans
come from `np.searchsorted` and confidences from `np.*.reduceat` over the step boundaries.

Conventions (see `schemas.traces.STEP`):
- char spans tile the thinking exactly; separators (blank lines) end the preceding step, and
  whitespace before the first step belongs to the first step;
- the token containing a step's first char starts that step's token span; the thinking's token
  span ends at the first token starting at or after the thinking's end, so every token that
  overlaps the thinking belongs to exactly one step; char spans are then moved onto those token
  boundaries (clipped to the thinking), and steps left without tokens are merged away.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# A blank line (possibly holding spaces/tabs/\r) plus all whitespace after it. Linear: the only
# quantified classes are disjoint from the literal that follows them.
_PARAGRAPH_SEP = re.compile(r"\n[^\S\n]*\n\s*")
# Lines opening a numbered step: "Step 3:", "Step 3.", "**Step 3**", "## Step 3".
_STEP_MARKER = re.compile(r"^[ \t]*(?:(?:\#{1,6}[ \t]*|\*\*)Step[ \t]+\d+|Step[ \t]+\d+[ \t]*[:.)])", re.MULTILINE)
_NON_WS = re.compile(r"\S")
_WS = re.compile(r"\s*")
_SENTENCE_ENDS = (". ", "? ", "! ", ".\n", "?\n", "!\n")

STEP_FIELDS = (
    "index",
    "text",
    "char_start",
    "char_end",
    "token_start",
    "token_end",
    "mean_logprob",
    "min_logprob",
    "mean_entropy",
    "low_conf_tokens",
)


class SegmentConfig(BaseModel):
    """How thinking is cut into steps and which tokens count as low-confidence."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["paragraph", "step_marker"] = "paragraph"  # blank lines (Qwen PRM recipe) or "Step k:" lines
    min_chars: int = Field(8, ge=0)  # shorter steps (stripped) merge into the previous one (the next if first)
    max_chars: int = Field(2000, gt=0)  # longer steps split at the last sentence end / newline / space
    low_conf_logprob: float = -2.3  # chosen-token logprob below this (p < ~0.1) counts as low-confidence


def _raw_boundaries(thinking: str, strategy: str, first: int) -> list[int]:
    """Interior cut points (strictly between the first non-space char and the end), ascending."""
    if strategy == "paragraph":  # searching from `first`, every match ends after it
        cuts = [m.end() for m in _PARAGRAPH_SEP.finditer(thinking, first)]
    else:
        cuts = [m.start() for m in _STEP_MARKER.finditer(thinking, first)]
        if cuts and cuts[0] <= first:
            cuts.pop(0)
    if cuts and cuts[-1] >= len(thinking):  # trailing whitespace ends the last step
        cuts.pop()
    return cuts


def _merge_short(thinking: str, spans: list[tuple[int, int]], min_chars: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    carry: int | None = None  # start of short leading steps, handed to the next step
    for s, e in spans:
        if len(thinking[s:e].strip()) < min_chars:
            if out:
                out[-1] = (out[-1][0], e)
            elif carry is None:
                carry = s
            continue
        out.append((s if carry is None else carry, e))
        carry = None
    if carry is not None:  # every step was short: one step
        out = [(carry, spans[-1][1])]
    return out


def _cut_point(thinking: str, pos: int, limit: int) -> int:
    """Where to end a piece starting at `pos` so that its text is at most `limit - pos` chars."""
    half = pos + (limit - pos) // 2
    best = max(thinking.rfind(s, half, limit + 1) for s in _SENTENCE_ENDS)
    if best >= 0:
        return best + 1
    for sep in ("\n", " "):
        i = thinking.rfind(sep, half, limit)
        if i >= 0:
            return i + 1
    i = max(thinking.rfind("\n", pos + 1, limit), thinking.rfind(" ", pos + 1, limit))
    return i + 1 if i >= 0 else limit


def _split_long(thinking: str, spans: list[tuple[int, int]], max_chars: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if e - s <= max_chars:
            out.append((s, e))
            continue
        pos = s
        # leading whitespace does not count towards the limit (text is stripped)
        while e - _WS.match(thinking, pos, e).end() > max_chars:
            body = _WS.match(thinking, pos, e).end()
            cut = _WS.match(thinking, _cut_point(thinking, body, body + max_chars), e).end()
            if cut >= e:
                break
            out.append((pos, cut))
            pos = cut
        out.append((pos, e))
    return out


def char_steps(thinking: str, cfg: SegmentConfig | None = None) -> list[tuple[int, int]]:
    """Char spans `(start, end)` tiling `thinking` exactly; [] for empty or whitespace-only thinking."""
    cfg = cfg or SegmentConfig()
    first = _NON_WS.search(thinking)
    if first is None:
        return []
    cuts = [0, *_raw_boundaries(thinking, cfg.strategy, first.start()), len(thinking)]
    spans = list(zip(cuts[:-1], cuts[1:], strict=True))
    spans = _merge_short(thinking, spans, cfg.min_chars)
    return _split_long(thinking, spans, cfg.max_chars)


def _as_array(x: Sequence[Any] | np.ndarray, kinds: str, dtype: type) -> np.ndarray:
    """`x` itself when it already is an array of a fitting kind (no copy), else converted."""
    return x if isinstance(x, np.ndarray) and x.dtype.kind in kinds else np.asarray(x, dtype=dtype)


def _steps(
    thinking: str, char_bounds: list[int], tok_bounds: list[int], conf: list[list[Any]] | None = None
) -> list[dict[str, Any]]:
    none = [None] * (len(char_bounds) - 1)
    mean_lp, min_lp, mean_ent, low = conf or (none, none, none, none)
    return [
        {
            "index": i,
            "text": thinking[cs:ce].strip(),
            "char_start": cs,
            "char_end": ce,
            "token_start": ts,
            "token_end": te,
            "mean_logprob": m,
            "min_logprob": lo,
            "mean_entropy": ent,
            "low_conf_tokens": k,
        }
        for i, (cs, ce, ts, te, m, lo, ent, k) in enumerate(
            zip(char_bounds, char_bounds[1:], tok_bounds, tok_bounds[1:], mean_lp, min_lp, mean_ent, low)
        )
    ]


def segment(
    thinking: str,
    thinking_start: int,
    token_offsets: Sequence[int] | np.ndarray,
    token_logprobs: Sequence[float] | np.ndarray,
    token_entropies: Sequence[float] | np.ndarray,
    cfg: SegmentConfig | None = None,
) -> list[dict[str, Any]]:
    """Steps of `thinking` (which starts at char `thinking_start` of the completion) as dicts with
    exactly the `STEP` fields. Token arrays describe the whole completion and may be empty: without
    offsets token spans are -1/-1; without logprobs (or entropies) the confidences are None."""
    cfg = cfg or SegmentConfig()
    spans = char_steps(thinking, cfg)
    if not spans:
        return []
    if len(token_offsets) == 0:
        cuts = [s for s, _ in spans] + [len(thinking)]
        return _steps(thinking, cuts, [-1] * len(cuts))

    offsets = _as_array(token_offsets, "iu", np.int64)
    n_tok = len(offsets)
    for name, arr in (("token_logprobs", token_logprobs), ("token_entropies", token_entropies)):
        if len(arr) not in (0, n_tok):
            raise ValueError(f"{name} has {len(arr)} values for {n_tok} token offsets")
    end = thinking_start + len(thinking)
    starts = np.fromiter((s for s, _ in spans), dtype=np.int64, count=len(spans)) + thinking_start
    tok = np.searchsorted(offsets, starts, side="right") - 1  # the token holding each step's first char
    tok[0] = max(int(tok[0]), 0)
    t_end = int(np.searchsorted(offsets, end, side="left"))
    chars = np.clip(offsets[tok] - thinking_start, 0, len(thinking))
    chars[0] = 0
    # keep a boundary only when it moves both the token and the char position forward (no empty steps)
    keep = np.ones(len(tok), dtype=bool)
    keep[1:] = (np.diff(np.maximum.accumulate(tok)) > 0) & (np.diff(np.maximum.accumulate(chars)) > 0)
    keep[1:] &= tok[1:] < t_end
    tok, chars = tok[keep], chars[keep]
    t0 = int(tok[0])
    t1 = max(t_end, t0)
    tok_bounds = [*tok.tolist(), t1]
    char_bounds = [*chars.tolist(), len(thinking)]
    if t1 == t0 or (len(token_logprobs) == 0 and len(token_entropies) == 0):
        return _steps(thinking, char_bounds, tok_bounds)  # nothing to score

    idx = tok - t0
    counts = np.diff(np.asarray(tok_bounds, dtype=np.int64))
    none = [None] * len(idx)
    conf = [none, none, none, none]
    if len(token_logprobs):
        lp = _as_array(token_logprobs, "f", np.float32)[t0:t1]
        conf[0] = (np.add.reduceat(lp, idx, dtype=np.float64) / counts).tolist()
        conf[1] = np.minimum.reduceat(lp, idx).tolist()
        conf[3] = np.add.reduceat((lp < cfg.low_conf_logprob).astype(np.int32), idx).tolist()
    if len(token_entropies):
        ent = _as_array(token_entropies, "f", np.float32)[t0:t1]
        conf[2] = (np.add.reduceat(ent, idx, dtype=np.float64) / counts).tolist()
    return _steps(thinking, char_bounds, tok_bounds, conf)


def step_prefix(trace: dict, step: int) -> str:
    """The prompt plus the completion up to the end of `step` (-1: up to the thinking's start)."""
    start = max(trace["thinking_start"], 0)
    end = start + (trace["steps"][step]["char_end"] if step >= 0 else 0)
    return trace["prompt"] + trace["completion"][:end]
