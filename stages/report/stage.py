"""Assemble the inspector page: one self-contained HTML file that opens from disk.

Styles and scripts are inlined from the package's `style.css`, `charts.js` and the page's modules
(`MODULES`), and
the data is embedded as one JSON block, so the page needs no server, no network and no CDN
(charts are inline SVG drawn by the page's own script). The JSON is escaped so no string in the
data can close the script element early.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stages.base import StageConfig, StageContext
from stages.eval_results import side_by_side
from stages.jsonable import finite
from stages.report.sample import MAX_PAIRS, STEP_CHARS, TRACE_CHARS, payload, select
from stages.report.sources import locate, scan_frontier, scan_pairs, scan_traces, with_frontier
from stages.report.stats import CONFIDENT, FILTERS, overview

ASSETS = Path(__file__).parent
# The page's script, in order: one script scope, so later modules use the earlier ones' names.
MODULES = ("util.js", "overview.js", "tracelist.js", "traceview.js", "app.js")
DEFAULT_MAX_TRACES = 2000


@dataclass(frozen=True)
class Report:
    path: Path
    bytes: int
    shown: int
    total: int
    seconds: float
    statement: str


def _embed(data: dict) -> str:
    text = json.dumps(finite(data), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


class ReportConfig(StageConfig):
    max_traces: int = DEFAULT_MAX_TRACES  # traces embedded in the page (the overview counts them all)
    seed: int = 0  # of the sample beyond the filter quotas


def collect(
    source: Path, max_traces: int = DEFAULT_MAX_TRACES, seed: int = 0, layout: dict[str, Path] | None = None
) -> dict:
    """Everything the page shows, as plain data: overview over all traces, a selection of them.
    `layout` (stage name -> folder) says where a run folder's stage outputs are."""
    src = locate(Path(source), layout)
    lf = with_frontier(scan_traces(src), scan_frontier(src))
    sel = select(lf, max_traces, seed)
    data = payload(lf, sel, scan_pairs(src))
    return {
        "meta": {
            "source": str(src.root),
            "kind": src.kind,
            "recipe": src.run.get("recipe"),
            "missing": src.missing,
            "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "shown": sel.shown,
            "total": sel.total,
            "statement": sel.statement(),
            "budget": (
                f"Step text is cut to {STEP_CHARS:,} chars per step and {TRACE_CHARS:,} per trace; "
                f"at most {MAX_PAIRS} pairs are listed per trace"
            ),
            "filters": FILTERS,
            "confident": CONFIDENT,
        },
        "overview": overview(src, lf),
        "evaluation": side_by_side(src.evaluation) if src.evaluation else None,
        **data,
    }


def render(data: dict) -> str:
    """The page's HTML for `data` (as `collect` returns it)."""
    title = f"Thoughtmill inspector: {data['meta'].get('recipe') or Path(data['meta']['source']).name}"
    page = (ASSETS / "template.html").read_text(encoding="utf-8")
    parts = {
        "__TITLE__": title.replace("&", "&amp;").replace("<", "&lt;"),
        "/*__STYLE__*/": (ASSETS / "style.css").read_text(encoding="utf-8"),
        "/*__CHARTS__*/": (ASSETS / "charts.js").read_text(encoding="utf-8"),
        "/*__APP__*/": "\n".join((ASSETS / m).read_text(encoding="utf-8") for m in MODULES),
        "__DATA__": _embed(data),
    }
    for key, value in parts.items():  # DATA last: nothing is substituted inside the data
        page = page.replace(key, value, -1 if key == "__TITLE__" else 1)
    return page


def build_report(
    source: Path,
    out: Path | None = None,
    max_traces: int = DEFAULT_MAX_TRACES,
    seed: int = 0,
    layout: dict[str, Path] | None = None,
) -> Report:
    """Write the inspector page for a run or dataset folder (default: `<source>/report.html`)."""
    start = time.perf_counter()
    data = collect(source, max_traces, seed, layout)
    out = Path(out) if out else Path(source) / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data), encoding="utf-8")
    meta = data["meta"]
    seconds = round(time.perf_counter() - start, 2)
    return Report(out, out.stat().st_size, meta["shown"], meta["total"], seconds, meta["statement"])


def run_report(ctx: StageContext) -> dict:
    """The pipeline's `report` stage: the inspector page over the run (it reads `run.json`)."""
    report = build_report(ctx.root, ctx.output, ctx.config.max_traces, ctx.config.seed, ctx.inputs)
    return {"status": "ran", "path": str(report.path), "bytes": report.bytes, "shown": report.shown}
