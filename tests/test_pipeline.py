"""The pipeline spec, model roles and the labeler registry: one structure the flow, the recipe
type, fingerprints and the README all follow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import DEMO_OVERRIDES
from datasets import Value
from pydantic import ValidationError

from flows.pipeline import PIPELINE, Pipeline, Stage, load_recipe
from schemas.labels import LABELED_STEP, LABELED_TRACES, LABELER_STEP_FIELDS
from stages.engine import EngineConfig
from stages.label import labelers, registry
from stages.label.labelers.judge import JudgeConfig
from stages.label.labelers.prm import PRMLabelerConfig
from stages.label.registry import LABELERS
from stages.label.stage import LabelConfig
from stages.pairs.stage import PairsConfig
from stages.rollouts import RolloutConfig

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_map_is_the_pipeline_spec():
    assert PIPELINE.markdown() in (ROOT / "README.md").read_text(), "README's pipeline table: paste PIPELINE.markdown()"


def test_overriding_one_role_changes_exactly_that_role():
    """demo.yaml writes the teacher once (a YAML anchor) for three roles: an override of the
    judge's backend must not reach the generator or the completer."""
    base = load_recipe("demo")
    assert base.models["judge"] == base.models["generator"] == base.models["completer"]
    url = "http://127.0.0.1:8000/v1"
    recipe = load_recipe("demo", {"models.judge.backend": "openai", "models.judge.base_url": url})
    changed = {role for role, config in recipe.models.items() if config != base.models[role]}
    assert changed == {"judge"} and recipe.models["judge"].backend == "openai"
    assert recipe.models_for(recipe.label) == {"completer": base.models["completer"], "judge": recipe.models["judge"]}
    assert recipe.models_for(recipe.generate) == {"generator": base.models["generator"]}


def test_a_checkpoint_retrained_at_the_same_path_recomputes_what_it_made(tmp_path):
    """The improve loop writes each round's policy to a fixed path: retraining it must not let a
    re-run reuse the traces the old weights sampled."""
    checkpoint = tmp_path / "policy"
    shutil.copytree(ROOT / "infra" / "tiny_reasoner" / "student", checkpoint)
    recipe = load_recipe("demo", {"models.generator.model": str(checkpoint)})
    before = PIPELINE.fingerprints(recipe)
    weights = checkpoint / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1))  # rewritten
    after = PIPELINE.fingerprints(recipe)
    changed = [name for name in PIPELINE.names if before[name] != after[name]]
    assert changed[:2] == ["generate", "label"] and "problems" not in changed
    assert PIPELINE.fingerprints(load_recipe("demo")) == PIPELINE.fingerprints(load_recipe("demo"))


def test_a_role_a_stage_uses_must_be_named_there_is_no_default_model():
    tree = json.loads(json.dumps(load_recipe("demo").model_dump(mode="json")))
    del tree["models"]["judge"]
    with pytest.raises(ValidationError, match=r"stage 'label' uses model role 'judge' \(its judge: label.roles.jud"):
        load_recipe(tree)
    with pytest.raises(ValidationError, match="models.big_judge"):
        load_recipe("demo", {"label.roles.judge": "big_judge"})
    other = load_recipe("demo", {"label.roles.judge": "generator"})  # any defined role will do
    assert other.models_for(other.label)["judge"] == other.models["generator"]
    with pytest.raises(ValidationError, match="model\n  Field required"):
        EngineConfig()  # the embedded models only by name: tiny:teacher, tiny:student
    with pytest.raises(ValidationError, match=r"unknown model purpose\(s\) \['judge'\]"):
        load_recipe("demo", {"generate.roles.judge": "judge"})
    tree["label"] |= {"labelers": ["symbolic"], "fidelity": {"info_gain": False}}  # no judge used: none needed
    assert "judge" not in load_recipe(tree).models


def test_stages_use_the_roles_their_settings_need():
    assert LabelConfig(labelers=["symbolic"], fidelity={"info_gain": False}).roles_used() == {}
    assert LabelConfig(labelers=["judge"], fidelity={"info_gain": False}).roles_used() == {"judge": "judge"}
    assert LabelConfig(labelers=["symbolic"]).roles_used() == {"completer": "completer"}  # information gain
    assert PairsConfig(kinds=["trace", "fidelity"]).roles_used() == {}
    assert PairsConfig(roles={"generator": "big"}).roles_used() == {"generator": "big"}


def test_labelers_come_from_the_registry():
    assert set(LABELERS) == set(LABELER_STEP_FIELDS) == {"symbolic", "mc", "judge", "prm"}
    step = LABELED_STEP
    for name, cls in LABELERS.items():
        assert f"first_error_{name}" in LABELED_TRACES and set(cls.step_fields(None, 0)) <= set(step)
    with pytest.raises(ValidationError, match=r"label.labelers: unknown labeler\(s\) \['oracle'\]; registered"):
        LabelConfig(labelers=["symbolic", "oracle"])
    with pytest.raises(ValidationError, match=r"label.consensus.sources: unknown labeler\(s\) \['human'\]"):
        LabelConfig(consensus={"sources": ["mc", "human"]})


def test_each_labeler_brings_its_section_and_its_module_into_the_label_stage():
    sections = {cls.section: cls.config for cls in LABELERS.values() if cls.section}
    assert sections == {"rollouts": RolloutConfig, "judge": JudgeConfig, "prm": PRMLabelerConfig}
    assert list(LabelConfig.model_fields)[:5] == ["roles", "labelers", "rollouts", "judge", "prm"]  # dumps keep it
    assert LabelConfig(judge={"template": "compact"}).judge == JudgeConfig(template="compact")
    assert LabelConfig().prm == PRMLabelerConfig() and LabelConfig.PURPOSES == ("completer", "judge", "prm")
    # loaded by the registry, named by no import: the stage's fingerprint hashes them all the same
    assert {cls.__module__ for cls in LABELERS.values()} <= set(PIPELINE["label"].modules)


ORACLE = """
from pydantic import BaseModel


class OracleConfig(BaseModel):
    strict: bool = True


class OracleLabeler:
    name, uses = "oracle", ("judge",)
    section, config = "oracle", OracleConfig

    @staticmethod
    def step_fields(label, i):
        return {"oracle_label": None}
"""


def test_a_new_labeler_is_one_file_and_one_line_of_step_columns(tmp_path, monkeypatch):
    (tmp_path / "oracle.py").write_text(ORACLE)
    monkeypatch.setattr(labelers, "__path__", [*labelers.__path__, str(tmp_path)])
    try:
        with pytest.raises(TypeError, match=r"labeler\(s\) \['oracle'\]: declare their step columns in schemas/"):
            registry._discover()
        monkeypatch.setitem(LABELER_STEP_FIELDS, "oracle", {"oracle_label": Value("bool")})  # the one line
        monkeypatch.setattr(registry, "LABELERS", registry._discover())
        assert list(registry.LABELERS) == ["symbolic", "mc", "judge", "prm", "oracle"]
        assert registry.labeler_sections()["oracle"][0].__name__ == "OracleConfig"
        assert registry.labeler_purposes() == ("completer", "judge", "prm")
    finally:  # the module imported from tmp_path leaves with it
        sys.modules.pop("stages.label.labelers.oracle", None)
        vars(labelers).pop("oracle", None)


def test_a_malformed_pipeline_is_refused():
    problems, label = PIPELINE["problems"], PIPELINE["label"]
    with pytest.raises(ValueError, match=r"stage 'label' reads \['generate'\], which no earlier stage writes"):
        Pipeline((problems, label))
    with pytest.raises(ValueError, match="stage names repeat"):
        Pipeline((problems, problems))
    with pytest.raises(ValueError, match="give exactly one of step or run"):
        Pipeline((Stage("x", type(problems.config)),))


@pytest.fixture
def demo_copy(demo_run, tmp_path) -> Path:
    """A copy of the session's demo run output (every stage complete)."""
    out = tmp_path / "out"
    shutil.copytree(demo_run[0], out, symlinks=True)
    return out


def test_a_stage_added_as_one_module_and_one_entry_runs_through_the_flow(demo_copy, prefect_stack):
    """`tests/toy_stage.py` adds a stage reading the label stage's shards; the flow runs it after
    the project's stages, which are complete and skip, and its section is a recipe key."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.curate import curate

    overrides = DEMO_OVERRIDES | {"step_count.min_steps": 2}
    with temporary_settings({PREFECT_API_URL: prefect_stack.env["PREFECT_API_URL"]}):
        summary = curate("demo", str(demo_copy), overrides, pipeline="toy_stage:PIPELINE")
    stages = summary["stages"]
    assert list(stages) == [*PIPELINE.names, "step_count"] and stages["step_count"]["status"] == "ran"
    assert all(stages[n]["status"] == "complete, skipped" for n in ("generate", "label", "pairs", "frontier"))
    counts = pq.read_table(demo_copy / "step_counts").to_pylist()
    labeled = pq.read_table(PIPELINE.path("label", demo_copy)).to_pylist()
    assert sorted(c["trace_id"] for c in counts) == sorted(t["trace_id"] for t in labeled if len(t["steps"]) >= 2)
    assert json.loads((demo_copy / "recipe.json").read_text())["step_count"] == {"min_steps": 2, "chunk_size": 4096}


def _run_flow(code: Path, out: Path, overrides: dict, env: dict) -> dict:
    """`curate` in a child process importing the project from `code`; returns its summary."""
    script = "import json, sys; from flows.curate import curate; print(json.dumps(curate('demo', sys.argv[1], json.loads(sys.argv[2]))['stages']))"  # noqa: E501
    env = {**env, "PYTHONPATH": str(code)}
    cmd = [sys.executable, "-c", script, str(out), json.dumps(overrides)]
    done = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_changed_stage_code_recomputes_that_stage_and_nothing_upstream(demo_copy, prefect_stack, tmp_path):
    """The project copied, one stage's module edited: the flow reruns that stage (its old outputs
    moved to stale/) and skips the others; a comment-only edit changes nothing."""
    code = tmp_path / "code"
    for package in ("flows", "stages", "schemas", "infra"):
        shutil.copytree(ROOT / package, code / package, ignore=shutil.ignore_patterns("__pycache__", "tiny_reasoner"))
    (code / "infra" / "tiny_reasoner").symlink_to(ROOT / "infra" / "tiny_reasoner")
    overrides = DEMO_OVERRIDES | {"pairs.kinds": ["trace", "fidelity"]}  # model-free pairs: no engine to start
    first = _run_flow(code, demo_copy, overrides, prefect_stack.env)
    assert first["pairs"]["status"] == "ran" and first["frontier"]["status"] == "complete, skipped"

    module = code / "stages" / "pairs" / "trace_pairs.py"
    module.write_text(module.read_text() + "\n# a comment changes no syntax tree\n")
    assert _run_flow(code, demo_copy, overrides, prefect_stack.env)["pairs"]["status"] == "complete, skipped"

    module.write_text(module.read_text() + "\nEDITED = True\n")
    second = _run_flow(code, demo_copy, overrides, prefect_stack.env)
    assert second["pairs"]["status"] == "ran" and "stale_moved_to" in second["pairs"]
    skipped = ("problems", "generate", "label", "frontier")
    assert all(second[n]["status"] == "complete, skipped" for n in skipped), {n: second[n] for n in skipped}
    assert os.listdir(demo_copy / "stale")
