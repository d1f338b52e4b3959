"""The published configs, in the exact formats TRL's trainers load.

- `sft`: conversational `messages` (SFTTrainer). The assistant's reasoning is inline as
  `<think>…</think>` in `content` (default) or in `reasoning_content` (recipe switch); the field
  exists in both modes so the config has one schema.
- `prm`: `prompt`, `completions` (steps), `labels` (bool: TRL casts labels with `int()`, so soft
  values are binarised by a recipe threshold and never written as floats) (PRMTrainer).
- `dpo`: conversational `prompt`, `chosen`, `rejected` plus margin, kind and provenance
  (DPOTrainer). Step pairs carry their shared prefix inside both assistant turns: DPO's loss
  compares log-ratios of whole sequences, so the identical prefix cancels exactly.
- `traces`: the full annotated table for researchers (`schemas.labels.LABELED_TRACES`).
"""

from datasets import Features, Value

from schemas.labels import LABELED_TRACES

MESSAGE = {"role": Value("string"), "content": Value("string")}
SFT_MESSAGE = {**MESSAGE, "reasoning_content": Value("string")}

SFT = Features(
    {
        "messages": [SFT_MESSAGE],
        "trace_id": Value("string"),
        "problem_id": Value("string"),
    }
)

PRM = Features(
    {
        "prompt": Value("string"),
        "completions": [Value("string")],
        "labels": [Value("bool")],
        "trace_id": Value("string"),
        "problem_id": Value("string"),
    }
)

DPO = Features(
    {
        "prompt": [MESSAGE],
        "chosen": [MESSAGE],
        "rejected": [MESSAGE],
        "margin": Value("float32"),
        "kind": Value("string"),
        "provenance": Value("string"),
        "pair_id": Value("string"),
        "problem_id": Value("string"),
    }
)

CONFIGS = {"sft": SFT, "prm": PRM, "dpo": DPO, "traces": LABELED_TRACES}
