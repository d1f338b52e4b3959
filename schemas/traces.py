"""`traces`: one sampled completion per row, split into thinking and answer, with steps.

Per-token arrays are stored only when the recipe asks (`store_logprobs`): they are large. Step
confidence is always computed from the step's own tokens at generation time, so it survives
even when the per-token arrays are not kept.
"""

from datasets import Features, Sequence, Value

STEP = {
    "index": Value("int32"),
    "text": Value("string"),  # the step without surrounding blank lines
    "char_start": Value("int32"),  # span in `thinking`; spans tile `thinking` exactly
    "char_end": Value("int32"),
    "token_start": Value("int32"),  # span in the completion's tokens
    "token_end": Value("int32"),
    "mean_logprob": Value("float32"),  # of the chosen tokens; null without logprobs
    "min_logprob": Value("float32"),
    "mean_entropy": Value("float32"),  # entropy of the renormalised top-k distribution
    "low_conf_tokens": Value("int32"),  # tokens with logprob below the recipe's threshold
}

TRACES = Features(
    {
        "trace_id": Value("string"),  # hash of problem id, sample index, model and sampling params
        "problem_id": Value("string"),
        "sample_index": Value("int32"),
        "model": Value("string"),
        "sampling": Value("string"),  # JSON of the sampling parameters
        "problem": Value("string"),
        "gold_answer": Value("string"),
        "prompt": Value("string"),
        "completion": Value("string"),  # raw generated text
        "thinking": Value("string"),
        "thinking_start": Value("int32"),  # char offset of `thinking` in `completion` (-1: separate reasoning field)
        "answer_text": Value("string"),
        "finish_reason": Value("string"),  # stop | length | error
        "thinking_tokens": Value("int32"),
        "answer_tokens": Value("int32"),
        "final_answer": Value("string"),  # last \boxed{} (or stated answer) after the thinking
        "thinking_answer": Value("string"),  # answer concluded inside the thinking
        "answer_confidence": Value("float32"),  # mean logprob of the final answer's tokens (RLSF)
        "steps": [STEP],
        "token_logprobs": Sequence(Value("float32")),  # empty unless store_logprobs
        "token_entropies": Sequence(Value("float32")),
        "token_offsets": Sequence(Value("int32")),  # char offset of each completion token
    }
)
