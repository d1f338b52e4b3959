"""An OpenAI-compatible HTTP client: a teacher served elsewhere (vLLM serve, SGLang, an API).

Uses the `/v1/completions` endpoint with the chat template applied by the server-side model's
tokenizer when one is reachable locally; with `chat_prompt` falling back to a plain user turn.
The API key is read from the environment variable the config names and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from stages.engine.types import (
    EngineConfig,
    EngineUnavailable,
    Generation,
    Sample,
    SamplingConfig,
    offsets_from_pieces,
    topk_entropy,
)


class OpenAIEngine:
    def __init__(self, config: EngineConfig) -> None:
        if not config.base_url:
            raise ValueError("the openai backend needs engine.base_url")
        self.config = config
        self.name = config.model
        key = os.environ.get(config.api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(
            base_url=config.base_url.rstrip("/"), headers=headers, timeout=config.request_timeout_s
        )
        self.max_model_len = None
        self.tokenizer = None
        try:
            from transformers import AutoTokenizer

            from stages.engine.types import resolve_model

            self.tokenizer = AutoTokenizer.from_pretrained(resolve_model(config.model))
        except Exception:  # a hosted model whose tokenizer is not available locally
            self.tokenizer = None

    def chat_prompt(self, user: str) -> str:
        if self.tokenizer is not None and self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
            )
        return user

    def count_tokens(self, text: str) -> int | None:
        return None if self.tokenizer is None else len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _post(self, body: dict) -> dict:
        """One request. An unreachable or failing server (transport error, 5xx, 429) raises
        `EngineUnavailable`: the stage fails and resumes later instead of rejecting good rows;
        a 4xx answer is about this request and stays a per-request error."""
        try:
            r = self.client.post("/completions", json=body)
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"{self.config.base_url}: {type(exc).__name__}: {exc}") from exc
        if r.status_code >= 500 or r.status_code == 429:
            raise EngineUnavailable(f"{self.config.base_url}: HTTP {r.status_code}")
        r.raise_for_status()
        return r.json()

    def _one(self, prompt: str, s: SamplingConfig, seed: int | None) -> Generation:
        body = {
            "model": self.config.model,
            "prompt": prompt,
            "n": s.n,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "logprobs": max(s.logprobs, 1),
            "seed": s.seed if seed is None else seed,
            "stop": s.stop or None,
        }
        if s.top_k > 0:
            body["top_k"] = s.top_k
        try:
            data = self._post(body)
        except (httpx.HTTPError, ValueError) as exc:
            return Generation(prompt, [], error=f"{type(exc).__name__}: {exc}"[:500])
        samples = []
        for ch in sorted(data["choices"], key=lambda c: c["index"]):
            lp = ch.get("logprobs") or {}
            pieces = lp.get("tokens") or []
            chosen = [x if x is not None else 0.0 for x in lp.get("token_logprobs") or []]
            ents = [topk_entropy(list((t or {}).values())) for t in lp.get("top_logprobs") or []]
            text = ch.get("text", "")
            offsets = offsets_from_pieces(pieces, text) or []
            samples.append(
                Sample(
                    text,
                    [],
                    ch.get("finish_reason") or "stop",
                    chosen,
                    ents,
                    offsets,
                    reasoning=ch.get("reasoning_content") or ch.get("reasoning"),
                )
            )
        return Generation(prompt, samples)

    def generate(
        self, prompts: Sequence[str], sampling: SamplingConfig, seeds: Sequence[int] | None = None
    ) -> list[Generation]:
        seeds = list(seeds) if seeds else [None] * len(prompts)
        with ThreadPoolExecutor(self.config.max_concurrency) as pool:
            return list(pool.map(lambda ps: self._one(ps[0], sampling, ps[1]), zip(prompts, seeds)))

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[float]]:
        """Echo the prompt with logprobs (vLLM serve and most completions servers support it)."""
        out = []
        for p, c in zip(prompts, continuations):
            data = self._post(
                {"model": self.config.model, "prompt": p + c, "max_tokens": 0, "echo": True, "logprobs": 0}
            )
            lp = data["choices"][0]["logprobs"]
            offs = lp.get("text_offset") or []
            out.append([x for x, o in zip(lp["token_logprobs"], offs) if o >= len(p) and x is not None])
        return out

    def close(self) -> None:
        self.client.close()
