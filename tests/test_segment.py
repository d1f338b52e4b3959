"""Step segmentation: exact tiling, token spans and per-step confidences, hostile text, real traces."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from flows.bench.segmentation import bench_segmentation, synthetic_trace
from schemas.traces import STEP
from stages.answers import split_thinking
from stages.segment import SegmentConfig, char_steps, segment

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "thinking_traces_sample.jsonl"
PARA = SegmentConfig()
MARK = SegmentConfig(strategy="step_marker")


def assert_tiles(text: str, spans: list[tuple[int, int]]) -> None:
    assert spans, "non-blank text must give at least one step"
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (_, e), (s, _) in zip(spans, spans[1:]):
        assert e == s
    assert all(e > s for s, e in spans)
    assert "".join(text[s:e] for s, e in spans) == text


def steps_tile(text: str, steps: list[dict]) -> None:
    assert [s["index"] for s in steps] == list(range(len(steps)))
    assert_tiles(text, [(s["char_start"], s["char_end"]) for s in steps])
    for s in steps:
        assert set(s) == set(STEP)
        assert s["text"] == text[s["char_start"] : s["char_end"]].strip()


@pytest.mark.parametrize(
    "text",
    [
        "First paragraph here.\n\nSecond paragraph here.\n\nThird paragraph here.",
        "\n\n  Leading whitespace first.\n\n\n\nAfter a long run.\n\n\nAnd three newlines.\n\n  \n",
        "One paragraph only, with trailing newlines.\n\n\n",
        "Windows endings line one.\r\n\r\nSecond paragraph, CRLF.\r\n",
        "Spaces on the blank line.\n   \t \nNext paragraph text.",
    ],
)
def test_paragraph_spans_tile(text):
    spans = char_steps(text, PARA)
    assert_tiles(text, spans)
    # separators end the preceding step: every later step starts on a non-space char
    assert all(not text[s].isspace() for s, _ in spans[1:])


def test_paragraph_cut_points():
    text = "\n\nAlpha alpha alpha.\n\n\nBeta beta beta.\n\nGamma gamma.\n"
    spans = char_steps(text, PARA)
    assert [text[s:e] for s, e in spans] == ["\n\nAlpha alpha alpha.\n\n\n", "Beta beta beta.\n\n", "Gamma gamma.\n"]
    assert char_steps("", PARA) == [] and char_steps(" \n\n\t\n ", PARA) == []
    assert segment("  \n\n ", 0, [], [], []) == []


def test_step_marker_spans():
    text = (
        "Let me set things up first.\nStep 1: add the numbers 1 and 2.\n\n"
        "More on step one, same step.\n**Step 2** multiply them now.\n## Step 3\nConclude the thing.\n"
    )
    spans = char_steps(text, MARK)
    assert_tiles(text, spans)
    pieces = [text[s:e] for s, e in spans]
    assert pieces[1].startswith("Step 1:") and "More on step one" in pieces[1]
    assert pieces[2].startswith("**Step 2**") and pieces[3].startswith("## Step 3")
    assert len(spans) == 4
    lead = "  \n\nStep 1: first thing done.\n\n\nStep 2: second thing done.\n\n"
    spans = char_steps(lead, MARK)
    assert_tiles(lead, spans)
    assert len(spans) == 2 and lead[spans[1][0] :].startswith("Step 2:")


def test_merge_short_steps():
    text = "ok\n\nThis is a long enough step.\n\nhm\n\nAnother long enough step.\n\nno"
    spans = char_steps(text, PARA)
    assert_tiles(text, spans)
    pieces = [text[s:e].strip() for s, e in spans]
    # the short first step goes into the next one; later short steps into the previous one
    assert pieces == ["ok\n\nThis is a long enough step.\n\nhm", "Another long enough step.\n\nno"]
    assert char_steps("a\n\nb\n\nc", PARA) == [(0, 7)]


def test_split_long_steps():
    sentence = "This sentence is about forty chars long. "
    text = sentence * 30 + "\n\n" + "x" * 250 + "\n\n" + "word " * 100
    cfg = SegmentConfig(max_chars=100)
    spans = char_steps(text, cfg)
    assert_tiles(text, spans)
    pieces = [text[s:e].strip() for s, e in spans]
    assert all(0 < len(p) <= 100 for p in pieces)
    assert len(pieces) >= 12 + 3 + 5
    assert all(p.endswith(".") for p in pieces[:12])  # cut at sentence ends when there are some
    assert "x" * 100 in pieces  # no space at all: hard cut at the limit
    assert all(set(p) <= set("word ") for p in pieces[-5:])


def _char_level(thinking_pieces: list[str], prefix: str = "<think>\n", suffix: str = "\n</think>\n\nDone.") -> tuple:
    thinking = "".join(thinking_pieces)
    completion = prefix + thinking + suffix
    return completion, np.arange(len(completion), dtype=np.int32)


def test_char_level_tokens_map_exactly_and_scores_are_per_step():
    paras = ["First step: 1 + 1 = 2.\n\n", "Second step is here, longer.\n\n\n", "Wait, third step is final."]
    completion, offsets = _char_level(paras)
    split = split_thinking(completion)
    thinking = split.thinking
    assert thinking == "\n" + "".join(paras) + "\n"
    # logprobs that differ per step (by paragraph) and within a step
    lp = np.full(len(completion), -9.0, dtype=np.float32)
    ent = np.full(len(completion), 5.0, dtype=np.float32)
    rng = np.random.default_rng(1)
    spans = char_steps(thinking, PARA)
    for k, (s, e) in enumerate(spans):
        a, b = split.thinking_start + s, split.thinking_start + e
        lp[a:b] = -0.1 * (k + 1) - rng.random(b - a).astype(np.float32) * (k + 1)
        ent[a:b] = k + rng.random(b - a).astype(np.float32)
    steps = segment(thinking, split.thinking_start, offsets, lp, ent, PARA)
    steps_tile(thinking, steps)
    assert len(steps) == 3
    ends = np.append(offsets, len(completion))
    assert "".join(completion[ends[s["token_start"]] : ends[s["token_end"]]] for s in steps) == thinking
    for s in steps:
        assert completion[ends[s["token_start"]] : ends[s["token_end"]]] == thinking[s["char_start"] : s["char_end"]]
        own = lp[s["token_start"] : s["token_end"]].astype(np.float64)
        assert s["mean_logprob"] == pytest.approx(own.mean(), rel=1e-6)
        assert s["min_logprob"] == pytest.approx(own.min(), rel=1e-6)
        assert s["low_conf_tokens"] == int((own < PARA.low_conf_logprob).sum())
        assert s["mean_entropy"] == pytest.approx(ent[s["token_start"] : s["token_end"]].astype(np.float64).mean())
    assert len({round(s["mean_logprob"], 4) for s in steps}) == 3
    assert sum(s["low_conf_tokens"] for s in steps) > 0 and steps[0]["low_conf_tokens"] < steps[2]["low_conf_tokens"]
    # lists work like arrays; no scores without logprobs; no token spans without offsets
    assert segment(thinking, split.thinking_start, offsets.tolist(), lp.tolist(), ent.tolist(), PARA) == steps
    bare = segment(thinking, split.thinking_start, offsets, [], [], PARA)
    assert [(s["token_start"], s["token_end"]) for s in bare] == [(s["token_start"], s["token_end"]) for s in steps]
    assert all(s[f] is None for s in bare for f in ("mean_logprob", "min_logprob", "mean_entropy", "low_conf_tokens"))
    none = segment(thinking, split.thinking_start, [], [], [], PARA)
    assert all(s["token_start"] == s["token_end"] == -1 for s in none)
    with pytest.raises(ValueError):
        segment(thinking, split.thinking_start, offsets, lp[:-1], ent, PARA)


def test_truncated_thinking_keeps_its_last_token():
    completion, offsets = _char_level(["Only step, cut off mid-sen"], prefix="<think>", suffix="")
    split = split_thinking(completion)
    assert not split.closed
    steps = segment(split.thinking, split.thinking_start, offsets, np.zeros(len(offsets)), [], PARA)
    assert steps[-1]["token_end"] == len(offsets) and steps[0]["token_start"] == len("<think>")


@pytest.mark.parametrize("seed", range(5))
def test_multichar_tokens_not_aligned_with_paragraphs(seed):
    rng = np.random.default_rng(seed)
    trace = synthetic_trace(rng, n_tokens=600)
    completion, offsets = trace["completion"], trace["token_offsets"]
    split = split_thinking(completion)
    steps = segment(
        split.thinking,
        split.thinking_start,
        offsets,
        trace["token_logprobs"],
        trace["token_entropies"],
        SegmentConfig(max_chars=300),
    )
    steps_tile(split.thinking, steps)
    assert len(steps) > 5
    end = split.thinking_start + len(split.thinking)
    first = int(np.searchsorted(offsets, split.thinking_start, side="right")) - 1
    last = int(np.searchsorted(offsets, end, side="left"))
    # contiguous token spans covering every token that overlaps the thinking, none empty
    assert steps[0]["token_start"] == first and steps[-1]["token_end"] == last
    assert all(a["token_end"] == b["token_start"] for a, b in zip(steps, steps[1:]))
    assert all(s["token_end"] > s["token_start"] for s in steps)
    # interior char boundaries sit on token starts
    for s in steps[1:]:
        assert offsets[s["token_start"]] == split.thinking_start + s["char_start"]
    lp = trace["token_logprobs"].astype(np.float64)
    for s in steps:
        assert s["mean_logprob"] == pytest.approx(lp[s["token_start"] : s["token_end"]].mean(), rel=1e-5)


@pytest.mark.parametrize("name", ["no_newline_1mb", "blank_lines_200k", "tiny_paragraphs", "binary_junk", "markers"])
def test_hostile_inputs_are_fast(name):
    rng = np.random.default_rng(0)
    text = {
        "no_newline_1mb": "a" * 500_000 + " b" * 250_000,
        "blank_lines_200k": "start\n" + "\n" * 200_000 + "end " * 10,
        "tiny_paragraphs": "x\n\n" * 100_000,
        "binary_junk": rng.integers(0, 256, 1_000_000, dtype=np.uint8).tobytes().decode("utf-8", errors="replace"),
        "markers": "Step 1:\n" * 100_000 + "\n \n" * 50_000 + " \t" * 100_000 + "\n",
    }[name]
    t0 = time.perf_counter()
    for cfg in (PARA, MARK):
        assert_tiles(text, char_steps(text, cfg))
    steps = segment(text, 0, np.arange(len(text)), np.zeros(len(text), np.float32), [], PARA)
    steps_tile(text, steps)
    assert time.perf_counter() - t0 < 20  # linear time; quadratic behaviour would take minutes
    assert all(len(s["text"]) <= PARA.max_chars for s in steps)


def test_real_external_traces():
    if not TRACES.is_file():
        pytest.skip(f"external trace sample not found at {TRACES}")
    records = [json.loads(line) for line in TRACES.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(records) == 70
    closed = 0
    for r in records:
        completion = r["code"][0]
        split = split_thinking(completion)
        assert split.thinking.strip()
        assert split.closed == ("<|end_of_thought|>" in completion)
        closed += split.closed
        assert completion[split.thinking_start : split.thinking_start + len(split.thinking)] == split.thinking
        steps = segment(split.thinking, split.thinking_start, [], [], [])
        steps_tile(split.thinking, steps)
        assert all(s["token_start"] == -1 and s["mean_logprob"] is None for s in steps)
        assert all(len(s["text"]) <= PARA.max_chars for s in steps)
    assert closed == 43


def test_benchmark_smoke():
    result = bench_segmentation(300)
    assert result["traces"] == 300
    assert result["traces_per_s_per_core"] > 0 and result["seconds"] > 0 and result["peak_rss_mb"] > 0
