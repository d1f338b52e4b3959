"""`thoughtmill models eval` and `thoughtmill serve`: the commands that hold a model engine in
the foreground (moved out of `flows/cli.py`, which keeps the parser)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def models_eval(args: argparse.Namespace) -> int:
    from infra.tiny_reasoner.evaluate import answer_accuracy, as_dict, judge_accuracy
    from stages.engine import EngineConfig
    from stages.engine.pool import POOL

    name = args.model if args.model.startswith("tiny:") or "/" in args.model else f"tiny:{args.model}"
    engine = POOL.open(EngineConfig(model=name, seed=args.seed, enforce_eager=True))
    result = {"model": name, "answers": as_dict(answer_accuracy(engine, args.problems, args.samples, args.seed))}
    if not args.no_judge:
        result["judge"] = as_dict(judge_accuracy(engine, args.judge_tasks, seed=args.seed))
    POOL.close()
    a = result["answers"]
    print(
        f"{name}: final-answer accuracy {a['accuracy']:.3f} over {a['samples']} samples "
        f"({a['problems']} held-out problems, temperature 1.0); thinking-answer agreement "
        f"{a['thinking_answer_agreement']:.3f}"
    )
    if "judge" in result:
        j = result["judge"]
        print(
            f"{name}: judge accuracy {j['accuracy']:.3f} (earliest wrong step, exact match over {j['tasks']} tasks) "
            f"vs always -1: {j['always_minus_one']:.3f}; unparseable verdicts {j['unparseable']:.3f}"
        )
    if args.json:
        print(json.dumps(result))
    return 0


def serve(args: argparse.Namespace) -> int:
    import signal
    import time

    from flows.pipeline import load_recipe
    from flows.recipe import parse_overrides
    from stages.engine.pool import POOL

    recipe = load_recipe(args.recipe, parse_overrides(args.set))
    if args.role not in recipe.models:
        raise SystemExit(f"thoughtmill: error: recipe {recipe.name!r} has no model role {args.role!r}; "
                         f"roles: {sorted(recipe.models)}")  # fmt: skip
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    log_dir = Path(args.log_dir) if args.log_dir else None
    with POOL:
        server = POOL.serve(recipe.models[args.role], args.role, args.port, log_dir)
        config = server.config
        print(f"thoughtmill: serving role {args.role!r} ({config.model} as {config.request_model!r}) at "
              f"{server.url}; log {server.log_path}")  # fmt: skip
        print(f"thoughtmill: point a recipe at it: --set models.{args.role}.serve=null "
              f"--set models.{args.role}.base_url={server.url}; Ctrl-C stops it", flush=True)  # fmt: skip
        try:
            while server.alive() and not stop:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        if not server.alive():
            print(f"thoughtmill: error: the server exited; log {server.log_path}:\n{server.log_tail()}")
            return 1
    return 0
