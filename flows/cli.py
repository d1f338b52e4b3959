"""`thoughtmill`: the command line. Thin: parses arguments and calls stages, flows and benches."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from flows.console import CommandParser, Parser, add_output_flags, quiet_env, report
from flows.engine_cli import models_eval, serve
from flows.run_cli import flow_output
from flows.run_cli import run as run_command


def _problems(args: argparse.Namespace) -> int:
    from stages.problems.stage import ProblemSourceConfig, write_problem_shards

    given = {"shard_size": args.shard_size} if args.shard_size is not None else {}  # else the config's default
    cfg = ProblemSourceConfig(kind="arithmetic", split=args.split, limit=args.n, seed=args.seed, **given)
    paths = write_problem_shards(cfg, Path(args.out))
    print(f"wrote {len(paths)} problems shard(s) to {args.out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from flows.evaluate import EVALUATION, compare, evaluate, leaderboard_markdown, load_summary
    from flows.recipe import parse_overrides

    if args.action:
        if args.action[0] != "compare" or len(args.action) != 3:
            raise SystemExit("usage: thoughtmill eval compare A B (evaluation folders or summary.json files)")
        a, b = (load_summary(p) for p in args.action[1:])
        print(f"B - A, A = {args.action[1]}, B = {args.action[2]} (95% intervals over problems)")
        for row in compare(a, b):
            beyond = {True: "intervals overlap", False: "BEYOND the intervals", None: "no interval"}[row["overlap"]]
            print(f"  {row['metric']:<18} {row['a']:.3f} -> {row['b']:.3f}  delta {row['delta']:+.3f}  {beyond}")
        return 0
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    overrides = parse_overrides(args.set)
    name = EVALUATION.load(args.recipe, overrides).name  # a wrong recipe fails here, before the flow
    with flow_output(f"eval {name!r}", Path(args.out or f"out/{name}"), args.verbose):
        board = evaluate(args.recipe, models, args.out, overrides)
    print(leaderboard_markdown(board))
    return 0


def _train(args: argparse.Namespace) -> int:
    from stages.train.stage import TrainConfig, train

    given = {k: v for k, v in vars(args).items() if k in TrainConfig.model_fields and v is not None}
    result = train(TrainConfig(**given), args.out)
    print(f"thoughtmill: {args.method} on {result['rows']} rows, {result['steps']} steps, loss "
          f"{result['training_loss']:.4f} in {result['seconds']}s; checkpoint {result['path']}")  # fmt: skip
    return 0


def _improve(args: argparse.Namespace) -> int:
    from flows.improve import improve, load_improve
    from flows.recipe import parse_overrides

    overrides = parse_overrides(args.set)
    name = load_improve(args.recipe, overrides).name  # a wrong recipe fails here, before the flow
    with flow_output(f"improve {name!r}", Path(args.out or f"out/{name}"), args.verbose):
        record = improve(args.recipe, args.out, overrides)
    for row in record["rounds"]:
        figures = ", ".join(f"{k} {v[0]:.3f}" for k, v in row["eval"].items() if v[0] is not None)
        print(f"round {row['round']}: {row['policy']}: {figures}")
    print(f"thoughtmill: improve record {record['out']}/improve.json; final policy {record['policy']}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from flows.plan import plan, render
    from flows.recipe import parse_overrides

    try:
        result = plan(args.recipe, parse_overrides(args.set), args.gpus, args.gpu_memory_gb,
                      args.tok_per_s_per_gpu, args.mean_tokens_fraction, args.from_run)  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:  # one line: the recipe's or the plan's error
        errors = exc.errors(include_url=False) if isinstance(exc, ValidationError) else None
        msg = "; ".join(e["msg"] for e in errors) if errors else str(exc)
        print(f"thoughtmill plan: error: {' '.join(msg.split())}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from flows.pipeline import load_pipeline

    print(load_pipeline(args.pipeline).markdown())
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from flows.pipeline import PIPELINE
    from stages.report.stage import build_report

    source = Path(args.source)
    layout = PIPELINE.inputs_of("report", source)  # where a run folder keeps what the page shows
    if (source / "leaderboard.json").is_file():  # an evaluation: one run folder per model
        from flows.evaluate import report_layout

        layout = report_layout()
    report = build_report(source, Path(args.out) if args.out else None, args.max_traces, args.seed, layout)
    size = f"{report.bytes / 1e6:.1f} MB, built in {report.seconds}s"
    print(f"thoughtmill: inspector page {report.path} ({size}); {report.statement}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.what == "generate":
        from flows.bench.generate import main as bench_generate

        bench_generate(repeats=args.repeats)
    elif args.what == "reliability":
        from flows.bench.reliability import main as bench_reliability

        sizes = [int(x) for x in args.load_sizes.split(",") if x.strip()]
        bench_reliability(traces=args.traces, kills=args.kills, load_sizes=sizes)
    elif args.what == "loop":
        from flows.bench.loop import main as bench_loop

        bench_loop()
    elif args.what == "cost":
        from flows.bench.cost import main as bench_cost

        bench_cost()
    elif args.what == "label":
        from flows.bench.label import main as bench_label

        bench_label()
    elif args.what == "import":
        from flows.bench.import_bench import main as bench_import

        bench_import()
    elif args.what == "prune":
        from flows.bench.prune import main as bench_prune

        bench_prune()
    else:
        from flows.bench.publish import main as bench_publish

        bench_publish()
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="thoughtmill", description="Curate aligned reasoning corpora.")
    add_output_flags(ap)
    sub = ap.add_subparsers(dest="command", required=True, parser_class=CommandParser)

    run = sub.add_parser("run", help="run the curate flow for a recipe")
    run.add_argument("--recipe", default="demo", help="a recipe name in flows/recipes/ or a YAML path")
    run.add_argument("--out", help="output root (default: out/<recipe name>)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    run.add_argument("--pipeline", default="flows.pipeline:PIPELINE",
                     help="module:attribute of a Pipeline (flows.pipeline:RELABEL for imported traces)")  # fmt: skip
    run.set_defaults(func=run_command)

    ev_ = sub.add_parser("eval", help="evaluate models' thinking (the evaluate flow), or `eval compare A B`")
    ev_.add_argument("action", nargs="*", help="empty to evaluate; `compare A B` to compare two evaluations")
    ev_.add_argument("--recipe", default="eval-demo", help="an evaluation recipe name or YAML path")
    ev_.add_argument("--models", help="comma-separated models or recipe roles (default: the recipe's generator)")
    ev_.add_argument("--out", help="output root (default: out/<recipe name>)")
    ev_.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    ev_.set_defaults(func=_eval)

    tr = sub.add_parser("train", help="fine-tune a model on a published dataset with TRL (sft, dpo or prm)")
    tr.add_argument("method", choices=["sft", "dpo", "prm"])
    tr.add_argument("--dataset", required=True, help="a published dataset folder or a Hub repo id")
    tr.add_argument("--model", help="the base model (default tiny:student)")
    tr.add_argument("--out", required=True, help="the checkpoint folder to write")
    tr.add_argument("--revision", help="Hub revision of the dataset")
    tr.add_argument("--kinds", type=lambda s: [k for k in s.split(",") if k], help="dpo: pair kinds, comma-separated")
    tr.add_argument("--max-steps", type=int)
    tr.add_argument("--epochs", type=float)
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--learning-rate", type=float)
    tr.add_argument("--beta", type=float)
    tr.add_argument("--max-length", type=int)
    tr.add_argument("--step-separator", help="prm: text after each step, where its label sits (default a blank line)")
    tr.add_argument("--seed", type=int)
    tr.set_defaults(func=_train)

    imp = sub.add_parser("improve", help="rounds of curate -> train -> evaluate (the improve flow)")
    imp.add_argument("--recipe", default="improve-demo", help="an improve recipe name or YAML path")
    imp.add_argument("--out", help="output root (default: out/<recipe name>)")
    imp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    imp.set_defaults(func=_improve)

    srv = sub.add_parser("serve", help="serve a recipe's model role with vLLM's OpenAI server until stopped")
    srv.add_argument("--recipe", default="math", help="a recipe name in flows/recipes/ or a YAML path")
    srv.add_argument("--role", default="judge", help="the model role to serve (e.g. judge)")
    srv.add_argument("--port", type=int, help="port (default: the role's serve.port or its base_url's)")
    srv.add_argument("--log-dir", help="folder of the server's log (default: a temporary folder)")
    srv.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    srv.set_defaults(func=serve)

    pipe = sub.add_parser("pipeline", help="print the pipeline's stages: what each reads, writes and uses")
    pipe.add_argument("--pipeline", default="flows.pipeline:PIPELINE", help="module:attribute of a Pipeline")
    pipe.set_defaults(func=_pipeline)

    pl = sub.add_parser("plan", help="validate a recipe: per stage its engines, GPUs, tokens, hours (starts nothing)")
    pl.add_argument("--recipe", default="demo", help="a recipe name in flows/recipes/ or a YAML path")
    pl.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    pl.add_argument("--gpus", type=int, default=8, help="GPUs of the node (default 8)")
    pl.add_argument("--gpu-memory-gb", type=float, default=80.0, help="memory of each GPU (default 80)")
    pl.add_argument("--tok-per-s-per-gpu", type=float, help="generation throughput per GPU, for hours")
    pl.add_argument("--mean-tokens-fraction", type=float, default=0.5, help="expected share of max_tokens used")
    pl.add_argument("--from-run", help="a finished run's root or run.json: its label/pairs token ratios")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=_plan)

    models = sub.add_parser("models", help="the embedded tiny reasoner models").add_subparsers(
        dest="action", required=True
    )
    ev = models.add_parser("eval", help="measure final-answer and judge accuracy through vLLM")
    ev.add_argument("--model", default="teacher", help="teacher | student | tiny:NAME | a model path")
    ev.add_argument("--problems", type=int, default=200)
    ev.add_argument("--samples", type=int, default=2, help="samples per problem")
    ev.add_argument("--judge-tasks", type=int, default=200)
    ev.add_argument("--no-judge", action="store_true")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=models_eval)

    bench = sub.add_parser("bench", help="benchmarks: ratios measured side by side in one run")
    benches = ["cost", "generate", "import", "label", "loop", "prune", "publish", "reliability"]
    bench.add_argument("what", choices=benches)
    bench.add_argument("--repeats", type=int, default=5)
    bench.add_argument("--traces", type=int, default=60_000, help="reliability: synthetic traces for the kill runs")
    bench.add_argument("--kills", type=int, default=5, help="reliability: SIGKILLs per stage")
    bench.add_argument(
        "--load-sizes", default="100000,1000000", help="reliability: load-run corpus sizes ('' to skip the load run)"
    )
    bench.set_defaults(func=_bench)

    ins = sub.add_parser("inspect", help="write a self-contained HTML trace inspector for a run or dataset folder")
    ins.add_argument("source", help="a run's output root (e.g. out/demo) or a published dataset folder")
    ins.add_argument("--out", help="HTML file to write (default: <source>/report.html)")
    ins.add_argument("--max-traces", type=int, default=2000, help="traces embedded in the page (default 2000)")
    ins.add_argument("--seed", type=int, default=0, help="seed of the sample beyond the filter quotas")
    ins.set_defaults(func=_inspect)

    pr = sub.add_parser("problems", help="write bundled arithmetic problems as Parquet shards")
    pr.add_argument("--split", default="demo", choices=["train", "eval", "demo"])
    pr.add_argument("--n", type=int, default=32)
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--shard-size", type=int, default=None, help="problems per shard (default: the config's)")
    pr.add_argument("--out", required=True)
    pr.set_defaults(func=_problems)
    return ap


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        with quiet_env(args.verbose):
            return args.func(args)
    except KeyboardInterrupt:
        print("thoughtmill: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line, exit 2 for the user's input, 1 for a crash
        return report(exc, args.debug)


if __name__ == "__main__":
    sys.exit(main())
