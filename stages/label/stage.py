"""Label: traces in, labeled traces out — every labeler, the consensus, and fidelity metrics.

Engines are built once per rank and shared between labelers that name the same model config.
A chunk should hold whole problems (the generate stage writes all samples of a problem to one
shard, and a label chunk defaults to a whole shard) so overthinking compares a trace with its
siblings.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas import TRACES
from schemas.labels import LABELED_TRACES
from stages.base import ShardStage, reject
from stages.engine import Engine, EngineConfig, shared_engine
from stages.label.base import TraceLabel
from stages.label.consensus import ConsensusConfig, consensus
from stages.label.fidelity import FidelityConfig, answer_fidelity, information_gain, overthinking
from stages.label.judge import JudgeConfig, JudgeLabeler
from stages.label.rollouts import MonteCarloLabeler, RolloutConfig
from stages.label.symbolic import SymbolicLabeler

Source = Literal["symbolic", "mc", "judge"]
_VERDICT = {True: "correct", False: "wrong", None: "unknown"}


class LabelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labelers: list[Source] = ["symbolic", "mc", "judge"]
    completer: EngineConfig = Field(default_factory=EngineConfig)  # rollouts and information-gain scoring
    judge_engine: EngineConfig = Field(default_factory=EngineConfig)
    rollouts: RolloutConfig = Field(default_factory=RolloutConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    consensus: ConsensusConfig = Field(default_factory=ConsensusConfig)
    fidelity: FidelityConfig = Field(default_factory=FidelityConfig)
    # A trace with more steps is quarantined (`too_many_steps`): every labeler's cost grows with
    # the step count (a 1 MB trace of one-line paragraphs is 90k steps, half a minute of symbolic
    # checks alone), and no trainer wants such a trace. R1-length traces have hundreds.
    max_steps: int = 2048
    chunk_size: int = 4096


class Label(ShardStage):
    name = "label"
    in_features = TRACES
    out_features = LABELED_TRACES

    def __init__(self, input_dir, output_dir, cfg: LabelConfig, engines: dict[str, Engine] | None = None) -> None:
        """`engines` maps "completer"/"judge" to ready engines (else this process's shared ones)."""
        super().__init__(input_dir, output_dir, cfg.chunk_size)
        self.cfg = cfg
        self.engines = dict(engines or {})

    def setup(self, rank: int) -> None:
        need = {}
        if "mc" in self.cfg.labelers or self.cfg.fidelity.info_gain:
            need["completer"] = self.cfg.completer
        if "judge" in self.cfg.labelers:
            need["judge"] = self.cfg.judge_engine
        for role, config in need.items():
            if role not in self.engines:  # an engine passed in is used as is: never start a second
                self.engines[role] = shared_engine(config)

    def process_chunk(self, rows: list[dict]) -> tuple[list[dict], list[dict]]:
        cfg = self.cfg
        rejects = [
            reject(t["trace_id"], self.name, "too_many_steps", f"{len(t['steps'])} steps > {cfg.max_steps}", t)
            for t in rows
            if len(t["steps"]) > cfg.max_steps
        ]
        rows = [t for t in rows if len(t["steps"]) <= cfg.max_steps]
        with_steps = [t for t in rows if t["steps"]]
        verdicts: dict[str, dict[str, TraceLabel]] = {t["trace_id"]: {} for t in rows}
        labelers = {
            "symbolic": lambda: SymbolicLabeler(),
            "mc": lambda: MonteCarloLabeler(self.engines["completer"], cfg.rollouts),
            "judge": lambda: JudgeLabeler(self.engines["judge"], cfg.judge),
        }
        for source in cfg.labelers:
            for t, lab in zip(with_steps, labelers[source]().label(with_steps)):
                self.stat_update(f"{source}_tokens", value=lab.tokens)
                verdicts[t["trace_id"]][source] = lab
        gains = information_gain(self.engines["completer"], with_steps, cfg.fidelity) if cfg.fidelity.info_gain else []
        gain_of = {t["trace_id"]: g for t, g in zip(with_steps, gains)}
        answers = [answer_fidelity(t, cfg.fidelity.verifier) for t in rows]
        over = overthinking(rows, [a["final_correct"] for a in answers])
        out = []
        for t, fid, ot in zip(rows, answers, over):
            v = verdicts[t["trace_id"]]
            n = len(t["steps"])
            c = consensus(v, n, cfg.consensus)  # a labeler that does not apply has first_error None
            self.stat_update(f"consensus_{c.status}")
            gain = gain_of.get(t["trace_id"], [None] * n)
            steps = []
            for i, s in enumerate(t["steps"]):
                sym, mc, judge = v.get("symbolic"), v.get("mc"), v.get("judge")
                steps.append(
                    {
                        **s,
                        "symbolic": _VERDICT[sym.step_labels[i]] if sym else None,
                        "mc_value": mc.step_values[i] if mc and mc.step_values else None,
                        "mc_label": mc.step_labels[i] if mc else None,
                        "judge_label": judge.step_labels[i] if judge else None,
                        "label": c.step_labels[i],
                        "info_gain": gain[i],
                    }
                )
            provenance = {k: {"first_error": lab.first_error, "note": lab.note} for k, lab in v.items()}
            out.append(
                {
                    **t,
                    "steps": steps,
                    **fid,
                    "first_error_symbolic": v["symbolic"].first_error if "symbolic" in v else None,
                    "first_error_mc": v["mc"].first_error if "mc" in v else None,
                    "first_error_judge": v["judge"].first_error if "judge" in v else None,
                    "first_error": c.first_error,
                    "consensus": c.status,
                    "provenance": json.dumps(provenance),
                    "rationalized": bool(fid["final_correct"] and c.first_error is not None and c.first_error >= 0),
                    "overthinking": ot,
                    "label_tokens": sum(lab.tokens for lab in v.values()),
                }
            )
        return out, rejects
