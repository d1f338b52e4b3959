"""Label: traces in, labeled traces out — every labeler, the consensus, and fidelity metrics.

The labelers are the registered ones a recipe lists (`registry.py`, one file each in `labelers/`,
each with its part of this stage's section); each gets its engines
through the stage, which starts one per model purpose it uses (`completer` for rollouts and
information gain, `judge` for the teacher judge). A chunk should hold whole problems (the
generate stage writes all samples of a problem to one shard, and a label chunk defaults to a
whole shard) so overthinking compares a trace with its siblings.
"""

from __future__ import annotations

import json

from pydantic import Field, create_model, model_validator

from schemas import TRACES
from schemas.labels import LABELED_TRACES
from stages.arithmetic.repair import correction
from stages.base import ModelStageConfig, ShardStage, reject
from stages.label.base import TraceLabel
from stages.label.consensus import ConsensusConfig, consensus, settled
from stages.label.fidelity import FidelityConfig, answer_fidelity, information_gain, overthinking
from stages.label.registry import LABELERS, known_labelers, labeler_purposes, labeler_sections
from stages.label.resolve import resolve_disputes


class LabelSettings(ModelStageConfig):
    """The label section but its labelers' parts, which `LabelConfig` adds from the registry."""

    # completer: rollouts, dispute rechecks and information-gain scoring; then every labeler's own
    PURPOSES = tuple(dict.fromkeys(("completer", *labeler_purposes())))
    labelers: list[str] = ["symbolic", "mc", "judge"]

    @model_validator(mode="after")
    def _registered(self) -> LabelSettings:
        known_labelers(self.labelers, "label.labelers")
        known_labelers(self.consensus.sources, "label.consensus.sources")
        return self

    def purposes_used(self) -> tuple[str, ...]:
        used = {p for name in self.labelers for p in LABELERS[name].uses}
        used |= {"completer"} if self.fidelity.info_gain or self.consensus.resolve == "evidence" else set()
        return tuple(p for p in self.PURPOSES if p in used)

    @classmethod
    def discovered_modules(cls) -> tuple[str, ...]:
        return tuple(labeler.__module__ for labeler in LABELERS.values())


# The label section: `labelers`, each registered labeler's part (`judge`, `rollouts`, ...) in
# registry order, then the stage's own settings, in the order recipes and dumps show them.
LabelConfig = create_model(
    "LabelConfig",
    __base__=LabelSettings,
    __module__=__name__,
    **labeler_sections(),
    consensus=(ConsensusConfig, Field(default_factory=ConsensusConfig)),
    fidelity=(FidelityConfig, Field(default_factory=FidelityConfig)),
    # A trace with more steps is quarantined (`too_many_steps`): every labeler's cost grows with
    # the step count (a 1 MB trace of one-line paragraphs is 90k steps, half a minute of symbolic
    # checks alone), and no trainer wants such a trace. R1-length traces have hundreds.
    max_steps=(int, 2048),
    chunk_size=(int, 4096),
)


class Label(ShardStage):
    name = "label"
    in_features = TRACES
    out_features = LABELED_TRACES

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
        for name in cfg.labelers:
            for t, lab in zip(with_steps, LABELERS[name].from_config(cfg, self.engine).label(with_steps)):
                self.stat_update(f"{name}_tokens", value=lab.tokens)
                verdicts[t["trace_id"]][name] = lab
        completer = self.engine("completer") if cfg.fidelity.info_gain else None
        gains = information_gain(completer, with_steps, cfg.fidelity) if completer else []
        gain_of = {t["trace_id"]: g for t, g in zip(with_steps, gains)}
        answers = [answer_fidelity(t, cfg.fidelity.verifier) for t in rows]
        over = overthinking(rows, [a["final_correct"] for a in answers])
        # a labeler that does not apply has first_error None
        agreed = {t["trace_id"]: consensus(verdicts[t["trace_id"]], len(t["steps"]), cfg.consensus) for t in rows}
        resolve_tokens = self._resolve(with_steps, verdicts, agreed)
        out = []
        for t, fid, ot in zip(rows, answers, over):
            v = verdicts[t["trace_id"]]
            n = len(t["steps"])
            c = agreed[t["trace_id"]]
            self.stat_update(f"consensus_{c.status}")
            texts = [s["text"] for s in t["steps"]]
            fix = correction(texts, c.first_error, c.step_labels, fid["final_correct"], cfg.consensus.after_repair)
            if fix.self_corrected or fix.rationalized:
                self.stat_update("self_corrected" if fix.self_corrected else "rationalized")
            gain = gain_of.get(t["trace_id"], [None] * n)
            steps = [
                {
                    **s,
                    **_labeler_fields(v, i),
                    "label": fix.step_labels[i],
                    "info_gain": gain[i],
                }
                for i, s in enumerate(t["steps"])
            ]
            provenance = {k: {"first_error": lab.first_error, "note": lab.note} for k, lab in v.items()}
            if fix.repairs:  # where the trace caught its own slips: flawed step -> repairing step
                provenance["repairs"] = {str(i): j for i, j in fix.repairs.items()}
            out.append(
                {
                    **t,
                    "steps": steps,
                    **fid,
                    **{f"first_error_{name}": v[name].first_error if name in v else None for name in LABELERS},
                    "first_error": c.first_error,
                    "consensus": c.status,
                    "provenance": json.dumps(provenance),
                    "self_corrected": fix.self_corrected,
                    "rationalized": fix.rationalized,
                    "overthinking": ot,
                    "label_tokens": sum(lab.tokens for lab in v.values()) + resolve_tokens.get(t["trace_id"], 0),
                    "branches": [b for lab in v.values() for b in lab.branches],
                }
            )
        return out, rejects

    def _resolve(self, traces: list[dict], verdicts: dict, agreed: dict) -> dict[str, int]:
        """Disagreements decided by evidence (`consensus.resolve: evidence`), in place in
        `agreed`; returns the recheck tokens per trace."""
        cfg = self.cfg
        disputed = [t for t in traces if agreed[t["trace_id"]].status == "disagree"]
        if cfg.consensus.resolve != "evidence" or not disputed:
            return {}
        engine = self.engine("completer")
        got = resolve_disputes(
            engine, cfg.rollouts, cfg.consensus.resolve_k, disputed, [verdicts[t["trace_id"]] for t in disputed]
        )
        tokens = {}
        for t, (first, spent) in zip(disputed, got):
            self.stat_update("resolve_tokens", value=spent)
            tokens[t["trace_id"]] = spent
            if first is not None:
                agreed[t["trace_id"]] = settled("resolved", first, len(t["steps"]), cfg.consensus)
        return tokens


def _labeler_fields(verdicts: dict[str, TraceLabel], i: int) -> dict:
    """Every registered labeler's columns of step `i` (nulls for labelers that did not run)."""
    out: dict = {}
    for name, cls in LABELERS.items():
        out |= cls.step_fields(verdicts.get(name), i)
    return out
