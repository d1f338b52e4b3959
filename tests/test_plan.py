"""`thoughtmill plan`: validates a recipe and sizes its stages without starting anything."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.cli import main
from flows.placement import PlanError, model_size
from flows.plan import DEMO_RATIOS, load_ratios, plan
from stages.engine import EngineConfig

ROOT = Path(__file__).resolve().parents[1]
# The math recipe's judge as a second local 7B engine beside the completer, both at 0.9 of a GPU,
# in one worker that sees every GPU.
LOCAL_JUDGE = {
    "executor.tasks": 1,
    "executor.workers": 1,
    "executor.devices": None,
    "executor.gpus_per_worker": 1,
    "models.judge.backend": "vllm",
    "models.judge.serve": None,
    "models.judge.tensor_parallel_size": 1,
    "models.judge.model": "Qwen/Qwen2.5-7B-Instruct",
    "models.judge.gpu_memory_utilization": 0.9,
}


def _stage(result: dict, name: str) -> dict:
    return next(s for s in result["stages"] if s["stage"] == name)


def test_plans_import_no_vllm_and_open_no_socket():
    # a fresh interpreter: this session's other tests import vLLM; any connection attempt raises
    script = (
        "import socket, sys\n"
        "def no(*a, **k): raise OSError('plan touched the network')\n"
        "socket.socket.connect = no; socket.getaddrinfo = no\n"
        "from flows.cli import main\n"
        "for r in ('math', 'demo'):\n"
        "    assert main(['plan', '--recipe', r, '--tok-per-s-per-gpu', '1000']) == 0\n"
        "print('VLLM', 'vllm' in sys.modules, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "VLLM False False" in out.stdout
    assert "plan 'math': recipe and roles valid" in out.stdout and "plan 'demo'" in out.stdout
    assert "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B (TP1 vllm, 7.0B by name" in out.stdout
    assert "TP4 openai served" in out.stdout  # the judge's server the flow starts on this node


def test_math_tokens_follow_sampling_and_ratios():
    result = plan("math", mean_tokens_fraction=0.5, tok_per_s_per_gpu=1000)
    trace = 500 * 16 * 14000 * 0.5  # problems.limit x n x max_tokens x the expected fraction
    generate = _stage(result, "generate")
    assert generate["tokens"] == trace and generate["tokens_at_max"] == 500 * 16 * 14000
    assert generate["gpus"] == 4 and generate["wall_hours"] == pytest.approx(trace / 1000 / 4 / 3600)  # 4 workers
    label = _stage(result, "label")
    ratios = DEMO_RATIOS["label"]  # math resolves disputes by evidence: their rechecks count too
    assert label["tokens"] == pytest.approx(trace * (ratios["mc"] + ratios["judge"] + ratios["resolve"]))
    judge = next(e for e in label["engines"] if e["roles"] == ["judge"])
    assert judge["where"] == "served" and label["gpus"] == 8  # 4 completers on GPUs 0-3, the judge on 4-7
    assert _stage(result, "frontier")["tokens"] == 500 * 16 * 8000 * 0.5
    # pairs start no engine: their step pairs come from the label stage's rollouts
    assert [s["stage"] for s in result["stages"]] == ["generate", "label", "frontier"]
    assert result["total"]["tokens"] == pytest.approx(sum(s["tokens"] for s in result["stages"]))


def test_demo_engines_are_shared_and_per_rank():
    result = plan("demo")
    label = _stage(result, "label")
    assert [e["roles"] for e in label["engines"]] == [["completer", "judge"]]  # equal settings: one engine
    assert label["gpus"] == 2  # one engine in each of the two executor ranks
    assert label["engines"][0]["params_from"] == "checkpoint"


def test_coexisting_engines_that_cannot_fit_fail():
    with pytest.raises(PlanError, match=r"stage 'label': engines that run at once do not fit on 1 GPU\(s\)") as err:
        plan("math", LOCAL_JUDGE, gpus=1)
    assert "completer" in str(err.value) and "judge" in str(err.value) and "0.90" in str(err.value)
    # in one worker both start on its first GPU, however many it sees; at 0.45 each they fit there
    with pytest.raises(PlanError):
        plan("math", {**LOCAL_JUDGE, "executor.gpus_per_worker": 2}, gpus=2)
    halves = {"models.judge.gpu_memory_utilization": 0.45, "models.completer.gpu_memory_utilization": 0.45}
    assert _stage(plan("math", {**LOCAL_JUDGE, **halves}, gpus=1), "label")["gpus"] == 1
    with pytest.raises(PlanError, match="need 144 GB per GPU but get 0.90 x 80 GB"):  # a 72B on one GPU
        plan("math", {**LOCAL_JUDGE, "models.judge.model": "Qwen/Qwen2.5-72B-Instruct"})


def test_a_served_role_counts_its_gpus_and_must_not_share_the_workers():
    remote = {"models.judge.serve": None, "models.judge.base_url": "http://judge:8000/v1"}
    assert _stage(plan("math", remote), "label")["gpus"] == 4  # a judge served elsewhere takes none here
    with pytest.raises(PlanError, match="stage 'label'"):  # a fifth worker on GPU 4, the judge's
        plan("math", {"executor.tasks": 5, "executor.workers": 5, "executor.devices": [0, 1, 2, 3, 4]})


def test_unknown_role_fails_with_the_recipes_error():
    with pytest.raises(ValidationError, match="stage 'label' uses model role 'teacher'"):
        plan("math", {"label.roles.judge": "teacher"})


def test_cli_exits_2_with_one_line(capsys):
    sets = [a for k, v in LOCAL_JUDGE.items() for a in ("--set", f"{k}={'null' if v is None else v}")]
    assert main(["plan", "--recipe", "math", "--gpus", "1", *sets]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("thoughtmill plan: error: stage 'label'")
    assert main(["plan", "--recipe", "math", "--set", "label.roles.judge=teacher"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "uses model role 'teacher'" in err
    assert main(["plan", "--recipe", "demo", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["recipe"] == "demo"


def test_model_size_from_checkpoint_cache_or_name(tmp_path, monkeypatch):
    header = json.dumps({"w": {"dtype": "BF16", "shape": [1000, 3000], "data_offsets": [0, 6_000_000]}}).encode()
    snap = tmp_path / "models--org--mystery" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)  # a header, no weights
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert model_size(EngineConfig(model="org/mystery")) == (0.003, "hf-cache", 0.006)
    assert model_size(EngineConfig(model="Qwen/Qwen2.5-1.5B-Instruct", dtype="float32"))[1:] == ("name", 6.0)
    assert model_size(EngineConfig(model="org/no-size-here")) == (None, "unknown", None)
    params, source, _ = model_size(EngineConfig(model="tiny:teacher"))
    assert source == "checkpoint" and 1e-4 < params < 1e-2


def test_ratios_from_a_finished_run(tmp_path):
    stages = {"generate": {"tokens_generated": 100}, "label": {"mc_tokens": 300}, "pairs": {"next_step_tokens": 50}}
    (tmp_path / "run.json").write_text(json.dumps({"stages": stages}))
    assert load_ratios(tmp_path) == {"label": {"mc": 3.0}, "pairs": {"next_step": 0.5}}
    (tmp_path / "run.json").write_text(json.dumps({"stages": {"generate": {"status": "complete, skipped"}}}))
    with pytest.raises(PlanError, match="no generate tokens_generated"):
        load_ratios(tmp_path / "run.json")
