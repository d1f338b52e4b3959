"""The dataset card (README.md), generated from the published data and the run's metadata.

A hand-written card drifts from the data; this one is recomputed on every publish: the YAML
front matter (configs, features, sizes) comes from `datasets`' own serialisers so the Hub and
`load_dataset` read it exactly, and the body's provenance, counts and label distributions come
from the metadata dict and the `traces` statistics (`TraceStats`, accumulated shard by shard, so a
large corpus costs no memory). Output is deterministic (no dates) so unchanged data re-publishes
byte-identically, and anything shaped like a Hub token is scrubbed.
"""

from __future__ import annotations

import json
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path

import pyarrow as pa
import yaml
from datasets import Features

from stages.dataset.card import front_matter, markdown_table
from stages.dataset.shards import ShardInfo
from stages.funnel import markdown as funnel_markdown
from stages.publish.figures import FIGURES, TraceStats
from stages.secrets import scrub

REPO_PLACEHOLDER = "org/name"

CONFIG_DOCS = {
    "sft": "Conversational `messages` for supervised fine-tuning (`SFTTrainer`): prompt and the verified "
    "completion, reasoning inline as `<think>…</think>` or in `reasoning_content`.",
    "prm": "Step-wise `prompt`, `completions` and boolean `labels` for process reward models (`PRMTrainer`), "
    "labels from the consensus of the step labelers, binarised by the recipe threshold (in a self-corrected "
    "trace the steps from a repaired slip on are correct again unless `label.consensus.after_repair` is `carry`).",
    "dpo": "Conversational `prompt`, `chosen`, `rejected` preference pairs (`DPOTrainer`) with `margin`, "
    "`kind` (step, trace or fidelity pair) and JSON `provenance`; a pair several builders made is one row, "
    "its kinds in `provenance.kinds`.",
    "traces": "The full annotated table: every trace with its steps, step confidences, each labeler's "
    "verdicts, the consensus labels and the fidelity metrics (for research and re-filtering).",
}

TRAINING = """```python
from datasets import load_dataset
from transformers import AutoModelForTokenClassification, AutoTokenizer
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

model_id = "Qwen/Qwen2.5-0.5B-Instruct"

# Preference pairs -> DPO
dpo = load_dataset("{repo}", "dpo", split="train")
DPOTrainer(model=model_id, args=DPOConfig(output_dir="dpo"), train_dataset=dpo).train()

# Verified traces -> SFT
sft = load_dataset("{repo}", "sft", split="train")
SFTTrainer(model=model_id, args=SFTConfig(output_dir="sft"), train_dataset=sft).train()

# Step labels -> process reward model (TRL <= 1.13; PRMTrainer was removed in TRL 1.14)
from trl.experimental.prm import PRMConfig, PRMTrainer

prm = load_dataset("{repo}", "prm", split="train")
tokenizer = AutoTokenizer.from_pretrained(model_id)
model = AutoModelForTokenClassification.from_pretrained(model_id, num_labels=2)
PRMTrainer(model=model, args=PRMConfig(output_dir="prm"), processing_class=tokenizer, train_dataset=prm).train()
```"""


def code_version(meta: dict) -> str:
    """`code_version` from the metadata, else the git commit of this checkout, else the package version."""
    if meta.get("code_version"):
        return str(meta["code_version"])
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        if out.returncode == 0 and out.stdout.strip():
            return f"git {out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"thoughtmill {importlib_metadata.version('thoughtmill')}"
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def _get(tree: dict, dotted: str):
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _fmt(value) -> str:
    if isinstance(value, dict | list):
        return "`" + json.dumps(value, sort_keys=True, default=str) + "`"
    return str(value)


def configs_section(shards: dict[str, list[ShardInfo]]) -> str:
    rows = [
        (f"`{n}`", sum(s.rows for s in p), len(p), f"{sum(s.file_size for s in p):,}", CONFIG_DOCS.get(n, ""))
        for n, p in shards.items()
    ]
    return "## Configs\n\n" + markdown_table(("config", "rows", "shards", "Parquet bytes", "contents"), rows)


def provenance_section(meta: dict, traces: TraceStats | pa.Table | None) -> str:
    recipe = meta.get("recipe") or {}
    models = sorted(TraceStats.of(traces).models)
    items = [
        ("Recipe", recipe.get("name") or meta.get("recipe_name")),
        ("Generator model(s)", ", ".join(f"`{m}`" for m in models) or _get(recipe, "models.generator.model")),
        ("Models by role", {role: m.get("model") for role, m in (recipe.get("models") or {}).items()} or None),
        ("Sampling", _get(recipe, "generate.sampling")),
        ("Prompt template", _get(recipe, "generate.prompt_template")),
        ("Step labelers", _get(recipe, "label.labelers") or _get(recipe, "label")),
        ("Consensus policy", _get(recipe, "label.consensus") or _get(recipe, "consensus")),
        ("Frontier band (student pass rate / IFD)", _get(recipe, "frontier")),
        ("Pair construction", _get(recipe, "pairs")),
        ("Seed", recipe.get("seed")),
        ("Code version", code_version(meta)),
    ]
    lines = [f"- **{k}**: {_fmt(v) if v is not None else 'not recorded'}" for k, v in items]
    return "## How it was made\n\n" + "\n".join(lines)


def counts_section(meta: dict) -> str:
    """The run's funnel (`stages.funnel`, as in run.json) when the metadata has one; else the
    counts and drops it was given."""
    if meta.get("funnel"):
        return "## Counts\n\n" + funnel_markdown(meta["funnel"])
    stages = meta.get("counts") or meta.get("stages") or {}
    drops = meta.get("drops") or {}
    parts = ["## Counts"]
    parts.append(
        markdown_table(("stage", "count"), [(k, _fmt(v)) for k, v in stages.items()])
        if stages
        else "No stage counts recorded."
    )
    parts.append("### Dropped, by reason")
    parts.append(
        markdown_table(("reason", "dropped"), [(k, _fmt(v)) for k, v in sorted(drops.items())])
        if drops
        else "No drops recorded."
    )
    return "\n\n".join(parts)


def decontamination_section(meta: dict) -> str:
    """Imported rows (an `import` stage's), then what decontamination checked and dropped, per stage
    that ran it: by benchmark, and exact duplicates. Empty when no stage reported either."""
    stages = meta.get("stages") or {}
    parts = []
    imported = (stages.get("import") or {}).get("imported")
    if isinstance(imported, dict):
        parts.append("Imported: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in imported.items()) + ".")
    rows = []
    for name, result in stages.items():
        stats = result.get("decontamination") if isinstance(result, dict) else None
        if isinstance(stats, dict) and "checked" in stats:
            dropped = stats.get("contaminated") or {}
            by_benchmark = ", ".join(f"{b}: {n}" for b, n in sorted(dropped.items())) or "none"
            rows.append((name, stats["checked"], sum(dropped.values()), by_benchmark, stats.get("duplicates", 0)))
    if rows:
        benchmarks = _get(meta.get("recipe") or {}, "problems.decontaminate")
        how = f" Settings: {_fmt(benchmarks)}." if benchmarks else ""
        parts.append(
            "Rows sharing a word n-gram of normalised text with a benchmark problem were dropped, and "
            f"exact duplicates.{how}\n\n"
            + markdown_table(("stage", "checked", "contaminated", "by benchmark", "duplicates"), rows)
        )
    return "## Decontamination\n\n" + "\n\n".join(parts) if parts else ""


def label_stats(traces: TraceStats | pa.Table | None) -> dict:
    """Step label fractions (correct / wrong / null), consensus status and symbolic verdict counts."""
    stats = TraceStats.of(traces)
    out: dict = {"steps": {}, "consensus": {}, "symbolic": {}}
    if "steps" in stats.columns and stats.rows:
        total, correct, null = (stats.steps[k] for k in ("total", "correct", "null"))
        out["steps"] = {"total": total, "correct": correct, "wrong": total - correct - null, "null": null}
        out["symbolic"] = dict(sorted(stats.symbolic.items()))
    if "consensus" in stats.columns:
        out["consensus"] = dict(sorted(stats.consensus.items()))
    return out


def labels_section(traces: TraceStats | pa.Table | None) -> str:
    stats = label_stats(traces)
    steps = stats["steps"]
    if not steps or not steps["total"]:
        return "## Labels\n\nNo labeled steps in this release."
    frac = lambda k: f"{steps[k]} ({steps[k] / steps['total']:.1%})"
    rows = [("correct", frac("correct")), ("wrong", frac("wrong")), ("null (dropped or undecided)", frac("null"))]
    parts = [
        "## Labels",
        f"Consensus step labels over {steps['total']} steps:",
        markdown_table(("label", "steps"), rows),
    ]
    if stats["consensus"]:
        parts += ["Trace consensus status:", markdown_table(("status", "traces"), list(stats["consensus"].items()))]
    if stats["symbolic"]:
        parts += ["Symbolic checker verdicts:", markdown_table(("verdict", "steps"), list(stats["symbolic"].items()))]
    return "\n\n".join(parts)


def figures_section(figures: dict[str, str]) -> str:
    if not figures:
        return ""
    images = [f"### {FIGURES.get(name, name)}\n\n![{name}]({path})" for name, path in figures.items()]
    return "## Figures\n\n" + "\n\n".join(images)


def render_card(
    meta: dict,
    shards: dict[str, list[ShardInfo]],
    features: dict[str, Features],
    traces: TraceStats | pa.Table | None = None,
    figures: dict[str, str] | None = None,
    *,
    default_config: str = "dpo",
    repo_id: str | None = None,
) -> str:
    """README.md text. `traces` is the traces config's statistics (or the table itself); `figures` maps
    figure name to its path relative to the card."""
    title = meta.get("pretty_name") or meta.get("name") or "Thoughtmill reasoning corpus"
    intro = meta.get("description") or (
        "Reasoning traces sampled from a model, split into steps, labeled step by step by several "
        "independent labelers combined by a consensus policy, and turned into SFT, PRM and DPO training "
        "sets. Curated with Thoughtmill."
    )
    sections = [
        front_matter(shards, features, default_config, meta),
        f"# {title}\n\n{intro}",
        configs_section(shards),
        provenance_section(meta, traces),
        counts_section(meta),
        decontamination_section(meta),
        labels_section(traces),
        figures_section(figures or {}),
        "## How to train on it\n\n" + TRAINING.replace("{repo}", repo_id or REPO_PLACEHOLDER),
    ]
    if meta.get("recipe"):
        plain = json.loads(json.dumps(meta["recipe"], default=str))
        dump = yaml.safe_dump(plain, sort_keys=True, default_flow_style=False, allow_unicode=True)
        sections.append(f"## Full recipe\n\n```yaml\n{dump}```")
    return scrub("\n\n".join(s.strip("\n") for s in sections if s) + "\n")
