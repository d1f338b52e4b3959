"""An OpenAI-compatible HTTP client: a model served elsewhere (vLLM's OpenAI server, SGLang, an
API), or by the flow itself (`serve:` settings, `stages/engine/server.py`).

Text goes through `/v1/completions`, so stages can continue a prompt with a trace's prefix. A chat
prompt is rendered by the server's own template (vLLM's `/tokenize` with messages, then
`/detokenize`), which honours a `--chat-template` it was started with; only a server without
`/tokenize` falls back to a local tokenizer of the same name, and with neither the prompt is an
error, never sent bare. The API key is read from the variable the config names, never logged.
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
    load_chat_template,
    offsets_from_pieces,
    resolve_model,
    topk_entropy,
)


class OpenAIEngine:
    def __init__(self, config: EngineConfig) -> None:
        if not config.base_url:
            raise ValueError(f"the openai backend needs engine.base_url or engine.serve (model {config.model!r})")
        self.config = config
        self.name = config.request_model
        key = os.environ.get(config.api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.url = config.base_url.rstrip("/")
        # idle connections expire before the server's keep-alive (uvicorn: 5 s) can close them
        limits = httpx.Limits(keepalive_expiry=2.0)
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=config.request_timeout_s, limits=limits)
        self.root = httpx.Client(base_url=self.url.removesuffix("/v1"), headers=headers, timeout=60.0, limits=limits)
        self.max_model_len = self._served_model_len()
        self._server_renders: bool | None = None  # learnt on the first chat prompt
        self._tokenizer = None
        self._rendered: dict[str, str] = {}

    def _served_model_len(self) -> int | None:
        """The served model's context length from `/v1/models` (vLLM reports it); an unreachable
        server fails here, before a stage sends it any work."""
        try:
            r = self.client.get("/models", timeout=30.0)
        except httpx.TransportError as exc:
            why = f"{type(exc).__name__}: {exc}"
            raise EngineUnavailable(f"{self.url} (model {self.name!r}) unreachable: {why}") from exc
        if r.status_code != 200:
            return None
        for m in r.json().get("data", []):
            if m.get("id") == self.name:
                return m.get("max_model_len")
        served = [m.get("id") for m in r.json().get("data", [])]
        raise EngineUnavailable(f"{self.url} serves {served}, not {self.name!r}")

    def _local_tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(resolve_model(self.config.model))
            except Exception as exc:  # a hosted model with no local tokenizer of that name
                raise ValueError(
                    f"{self.url} has no /tokenize to render chat prompts and no local tokenizer named "
                    f"{self.config.model!r} ({type(exc).__name__}); serve it with vLLM or make the name loadable"
                ) from exc
        return self._tokenizer

    def _tokenize(self, body: dict) -> dict | None:
        """The server's `/tokenize` answer, or None when the server has no such route."""
        if self._server_renders is False:
            return None
        try:
            r = _post_once_more(self.root, "/tokenize", {"model": self.name, **body})
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if r.status_code in (404, 405):
            self._server_renders = False
            return None
        r.raise_for_status()
        self._server_renders = True
        return r.json()

    def chat_prompt(self, user: str) -> str:
        if user in self._rendered:
            return self._rendered[user]
        msgs = [{"role": "user", "content": user}]
        template = load_chat_template(self.config.chat_template)  # None: the server's or model's own
        body = {"messages": msgs, "add_generation_prompt": True}
        data = self._tokenize(body | ({"chat_template": template} if template else {}))
        if data is not None:
            try:
                r = _post_once_more(self.root, "/detokenize", {"model": self.name, "tokens": data["tokens"]})
            except httpx.TransportError as exc:
                raise EngineUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
            r.raise_for_status()
            text = r.json()["prompt"]
        else:
            tok = self._local_tokenizer()
            if not (template or tok.chat_template):
                raise ValueError(f"{self.config.model!r}: its local tokenizer has no chat template")
            text = tok.apply_chat_template(msgs, chat_template=template, tokenize=False, add_generation_prompt=True)
        if len(self._rendered) < 4096:
            self._rendered[user] = text
        return text

    def count_tokens(self, text: str) -> int | None:
        data = self._tokenize({"prompt": text, "add_special_tokens": False})
        if data is not None:
            return data["count"]
        try:
            return len(self._local_tokenizer()(text, add_special_tokens=False).input_ids)
        except ValueError:
            return None

    def _post(self, body: dict) -> dict:
        """One request. An unreachable or failing server (transport error, 5xx, 429) raises
        `EngineUnavailable`: the stage fails and resumes later instead of rejecting good rows;
        a 4xx answer is about this request and stays a per-request error."""
        try:
            r = _post_once_more(self.client, "/completions", body)
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"{self.config.base_url}: {type(exc).__name__}: {exc}") from exc
        if r.status_code >= 500 or r.status_code == 429:
            raise EngineUnavailable(f"{self.config.base_url}: HTTP {r.status_code}")
        r.raise_for_status()
        return r.json()

    def _room(self, prompt: str) -> int | None:
        """Tokens left for the completion after `prompt` in the served context (None: unknown). A
        server refuses a request whose prompt plus max_tokens overflows it; in-process, vLLM's
        engine caps max_tokens the same way."""
        if not self.max_model_len:
            return None
        data = self._tokenize({"prompt": prompt})
        return None if data is None else self.max_model_len - data["count"]

    def _one(self, prompt: str, s: SamplingConfig, seed: int | None) -> Generation:
        try:
            room = self._room(prompt)
        except httpx.HTTPStatusError as exc:  # about this prompt; a dead server raised EngineUnavailable
            return Generation(prompt, [], error=f"tokenize: {exc}"[:500])
        if room is not None and room < 1:
            return Generation(prompt, [], error=f"prompt leaves no room in the context of {self.max_model_len} tokens")
        body = {
            "model": self.name,
            "prompt": prompt,
            "n": s.n,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens if room is None else min(s.max_tokens, room),
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
            data = self._post({"model": self.name, "prompt": p + c, "max_tokens": 0, "echo": True, "logprobs": 0})
            lp = data["choices"][0]["logprobs"]
            offs = lp.get("text_offset") or []
            out.append([x for x, o in zip(lp["token_logprobs"], offs) if o >= len(p) and x is not None])
        return out

    def close(self) -> None:
        self.client.close()
        self.root.close()


def _post_once_more(client: httpx.Client, path: str, body: dict) -> httpx.Response:
    """POST, and once more when the server closed the kept-alive connection as it was reused
    ("Server disconnected without sending a response"): the request never reached it."""
    try:
        return client.post(path, json=body)
    except httpx.RemoteProtocolError:
        return client.post(path, json=body)
