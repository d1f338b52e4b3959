"""Export and publish stream: shard by shard, with bounded memory, and the same dataset as before.

A small real run (synthetic traces through the label and pairs stages, no model) is split over many
shards; export must match the whole-corpus `export` of the same rows, publish must roll rows over
into shards and row groups by size, write byte-identical files on a re-run, and draw its card and
figures from the same statistics as the whole `traces` table gives. Peak memory of export + publish
is measured in fresh processes on a corpus and on one ten times larger: it must not grow with it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard

from flows.pipeline import PIPELINE
from infra.reliability.synthetic import write_synthetic_run
from schemas import CONFIGS, FRONTIER, LABELED_TRACES, PAIRS
from stages.dataset.layout import arrow_nbytes, cut, row_nbytes
from stages.export.stage import ExportConfig, export, export_configs
from stages.label.stage import Label, LabelConfig
from stages.pairs.stage import Pairs, PairsConfig
from stages.publish.card import labels_section
from stages.publish.figures import TraceStats, length_accuracy, reliability
from stages.publish.stage import PublishConfig, publish, trace_stats
from stages.shards import read_table, shard_paths, write_table

LABEL = LabelConfig(labelers=["symbolic"], fidelity={"info_gain": False}, consensus={"min_sources": 1})
SMALL = {"max_shard_bytes": 30_000, "row_group_bytes": 10_000}  # many shards and row groups from a small run
ROOT = Path(__file__).resolve().parents[1]


def _run(root: Path, n_traces: int, shard_problems: int) -> Path:
    """A model-free run: synthetic traces, labeled (symbolic checker + verifier), paired (trace, fidelity)."""
    write_synthetic_run(root, n_traces, shard_problems=shard_problems)
    Label(_in(root, "generate"), _in(root, "label"), LABEL).run()
    Pairs(_in(root, "label"), _in(root, "pairs"), PairsConfig(kinds=["trace", "fidelity"])).run()
    return root


def _frontier(root: Path) -> None:
    """Decisions for the traces of every other labeled shard (as if the frontier stage ran on those only)."""
    for path in shard_paths(_in(root, "label"))[::2]:
        t = read_table(path, LABELED_TRACES).select(["trace_id", "problem_id"]).to_pylist()
        rows = [
            r
            | {"pass_rate": 0.5, "nll": 1.0, "nll_unconditioned": 1.0, "ifd": 0.5}
            | {"keep": i % 3 != 0, "drop_reason": "" if int(r["problem_id"][:2], 16) % 4 else "pass_rate_too_high"}
            for i, r in enumerate(t)
        ]
        write_table(
            pa.Table.from_pylist(rows, FRONTIER.arrow_schema),
            _in(root, "frontier") / f"{path.stem}-00000.parquet",
            FRONTIER,
        )


def _in(root: Path, stage: str) -> Path:
    """Where a run under `root` keeps `stage`'s output (the pipeline spec says)."""
    return PIPELINE.path(stage, root)


def _export(run: Path, out: Path) -> dict[str, int]:
    return export_configs(_in(run, "label"), _in(run, "pairs"), _in(run, "frontier"), ExportConfig(), out)


def _all(folder: Path, features) -> pa.Table:
    return pa.concat_tables([read_table(p, features) for p in shard_paths(folder)])


def _key(name: str) -> str:
    return "pair_id" if name == "dpo" else "trace_id"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = _run(tmp_path_factory.mktemp("run"), 1200, shard_problems=10)  # 15 labeled shards
    _frontier(root)
    return root


def test_cut_respects_row_group_and_shard_sizes():
    rng = np.random.default_rng(0)
    tables = [pa.table({"text": ["x" * int(k) for k in rng.integers(0, 300, n)]}) for n in (0, 7, 120, 1, 45)]
    orders = [None, pc.sort_indices(tables[1]["text"]), None, None, pc.sort_indices(tables[4]["text"])]
    for group_bytes, shard_bytes in ((500, 1200), (2000, 2000), (100, 250), (10**9, 10**9)):
        out = list(cut(zip(tables, tables, orders), group_bytes, shard_bytes))
        spans = [(id(t), a, b) for _, pieces in out for t, _, a, b in pieces]
        assert [t for t, a, _ in spans if a == 0] == [id(t) for t in tables if t.num_rows]  # every table, in order
        for (t1, _, b1), (t2, a2, _) in zip(spans, spans[1:]):
            assert (t1 == t2 and a2 == b1) or (t1 != t2 and a2 == 0)  # contiguous rows, each table to its end
        ends = {}
        for t, _, b in spans:
            ends[t] = b
        assert all(ends[id(t)] == t.num_rows for t in tables if t.num_rows)
        shards = [s for s, _ in out]
        assert shards == sorted(shards) and sorted(set(shards)) == list(range(len(set(shards))))
        by_shard: dict[int, list[float]] = {}
        for shard, pieces in out:
            sizes = np.concatenate(
                [row_nbytes(t)[o.to_numpy()[a:b] if o is not None else slice(a, b)] for t, o, a, b in pieces]
            )
            assert sizes.sum() <= group_bytes or len(sizes) == 1
            by_shard.setdefault(shard, []).extend(sizes)
        for sizes in by_shard.values():
            assert sum(sizes) <= shard_bytes or len(sizes) == 1
        if group_bytes == 10**9:
            assert len(out) == 1


def test_export_per_shard_matches_whole_corpus_export(run, tmp_path):
    counts = _export(run, tmp_path / "configs")
    whole = export(
        _all(_in(run, "label"), LABELED_TRACES).to_pylist(),
        _all(_in(run, "pairs"), PAIRS).to_pylist(),
        _all(_in(run, "frontier"), FRONTIER).to_pylist(),
        ExportConfig(),
    )
    for name, rows in whole.items():
        got = _all(tmp_path / "configs" / name, CONFIGS[name])
        assert counts[name] == got.num_rows == len(rows) > 0, name
        assert (
            got.sort_by(_key(name)).to_pylist()
            == pa.Table.from_pylist(rows, CONFIGS[name].arrow_schema).sort_by(_key(name)).to_pylist()
        ), name
        assert len(shard_paths(tmp_path / "configs" / name)) == len(shard_paths(_in(run, "label")))
    assert counts["sft"] < counts["traces"]  # the frontier filtered some out


def test_publish_streams_many_shards_deterministically(run, tmp_path):
    counts = _export(run, run / "configs")
    inputs = {c: run / "configs" / c for c in counts}
    result = publish(inputs, {"pretty_name": "streaming"}, PublishConfig(path="ds", **SMALL), tmp_path)
    folder = tmp_path / "ds"
    for name, features in CONFIGS.items():
        parts = sorted((folder / "data" / name).glob("*.parquet"))
        info = result["configs"][name]
        assert info["rows"] == counts[name] and info["shards"] == len(parts) > 2, name
        assert [p.name for p in parts] == [f"train-{i:05d}-of-{len(parts):05d}.parquet" for i in range(len(parts))]
        tables = [pq.read_table(p) for p in parts]
        files = [pq.ParquetFile(p) for p in parts]
        groups = [f.read_row_group(i) for f in files for i in range(f.num_row_groups)]
        assert sum(arrow_nbytes(g) for g in groups) == info["num_bytes"]  # as written, so as read back
        for t, p in zip(tables, parts):
            assert t.schema.equals(features.arrow_schema) and not pa.types.is_large_string(
                t.schema.field(_key(name)).type
            )
            assert arrow_nbytes(t) <= SMALL["max_shard_bytes"] * 1.01 or t.num_rows == 1
            assert pq.ParquetFile(p).metadata.row_group(0).column(0).compression == "ZSTD"
        assert len(groups) > len(parts)  # rows roll over into row groups and shards by size
        assert all(arrow_nbytes(g) <= SMALL["row_group_bytes"] * 1.05 or g.num_rows == 1 for g in groups)
        # Published order: input shard by input shard, by id within each.
        ids = pa.concat_tables(tables).column(_key(name)).to_pylist()
        expected = [
            i for p in shard_paths(inputs[name]) for i in sorted(pq.read_table(p).column(_key(name)).to_pylist())
        ]
        assert ids == expected, name
    ds = datasets.load_dataset(str(folder), "dpo", split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.features == CONFIGS["dpo"] and ds.num_rows == counts["dpo"]

    card = (folder / "README.md").read_text()
    infos = {i["config_name"]: i for i in DatasetCard(card).data.to_dict()["dataset_info"]}
    assert infos["traces"]["splits"][0]["num_bytes"] == result["configs"]["traces"]["num_bytes"]
    whole = _all(_in(run, "label"), LABELED_TRACES)
    assert labels_section(whole) in card  # card statistics accumulated shard by shard == from the whole table
    streamed = trace_stats(sorted((folder / "data" / "traces").glob("*.parquet")))
    at_once = TraceStats.of(whole)
    assert streamed.first_errors == at_once.first_errors and streamed.agreement == at_once.agreement
    assert length_accuracy(streamed) == length_accuracy(at_once)
    assert np.allclose(reliability(streamed), reliability(at_once))
    assert len(re.findall(r"!\[[^\]]*\]\(figures/", card)) == 4

    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    publish(inputs, {"pretty_name": "streaming"}, PublishConfig(path="ds", **SMALL), tmp_path)
    assert {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


MEASURE = """
import json, sys
from pathlib import Path
from flows.bench.load import _hwm_mb, _reset_hwm
from flows.pipeline import PIPELINE
from stages.export.stage import ExportConfig
from stages.publish.stage import PublishConfig
root = Path(sys.argv[1])
_reset_hwm()
counts = PIPELINE["export"].run(PIPELINE.context("export", root, ExportConfig()))["configs"]
PIPELINE["publish"].run(PIPELINE.context("publish", root, PublishConfig(path="ds", **json.loads(sys.argv[2]))))
print(json.dumps({"peak_mb": _hwm_mb(), "counts": counts}))
"""


def _replicate(src: Path, dest: Path, copies: int) -> None:
    """`copies` renamed copies of a run's labeled and pairs shards (new ids, new shard names)."""
    for k in range(copies):
        for stage, features, ids in (
            ("label", LABELED_TRACES, ("trace_id", "problem_id")),
            ("pairs", PAIRS, ("pair_id", "problem_id")),
        ):
            for path in shard_paths(_in(src, stage)):
                t = read_table(path, features)
                for col in ids:
                    t = t.set_column(
                        t.schema.get_field_index(col),
                        col,
                        pc.binary_join_element_wise(t[col], pa.scalar(f"{k:03d}"), ""),
                    )
                write_table(t, _in(dest, stage) / f"{k:03d}{path.name}", features)


def test_export_and_publish_memory_does_not_grow_with_the_corpus(tmp_path):
    base = _run(tmp_path / "base", 2000, shard_problems=25)  # 10 labeled shards
    peaks = {}
    for copies in (1, 5):
        _replicate(base, tmp_path / f"x{copies}", copies)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                MEASURE,
                str(tmp_path / f"x{copies}"),
                json.dumps({"max_shard_bytes": 2_000_000, "row_group_bytes": 500_000}),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["counts"]["traces"] == 2000 * copies
        peaks[copies] = result["peak_mb"]
    print(f"export + publish peak RSS: 2k traces {peaks[1]:.0f} MB, 10k traces {peaks[5]:.0f} MB")
    assert peaks[5] < 1.3 * peaks[1], peaks
