#!/bin/bash
# The math recipe's GPU path rehearsed on CPU: the tiny reasoner in every role (--set on the roles,
# the judge still a vLLM server the flow starts and stops), plus what an offline machine needs:
# bundled problems instead of MATH-500, the tiny teacher's prompt and judge wording, a local publish.
set -euo pipefail
OUT=${1:-out/rehearse-math}
KV='enforce_eager: true, block_size: 32, kv_cache_memory_bytes: 536870912'
T="{model: tiny:teacher, dtype: auto, max_model_len: null, gpu_memory_utilization: null, $KV}"
S="{model: tiny:student, dtype: auto, $KV}"
J="{backend: openai, model: tiny:teacher, dtype: auto, tensor_parallel_size: 1, max_model_len: null, $KV,
    serve: {served_model_name: math-judge, startup_timeout_s: 600}}"
exec .venv/bin/thoughtmill run --recipe math --out "$OUT" \
  --set "models.generator=$T" --set "models.completer=$T" --set "models.judge=$J" --set "models.student=$S" \
  --set 'problems={kind: arithmetic, split: demo, limit: 8, shard_size: 2}' \
  --set 'generate.prompt_template="{problem}"' --set 'frontier.prompt_template="{problem}"' \
  --set generate.sampling.n=4 --set frontier.samples=4 --set label.judge.template=compact \
  --set publish.target=local
