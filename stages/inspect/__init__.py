"""Trace inspector: one self-contained HTML page over a run or a published dataset.

`build_report` reads the folder column-wise (polars), computes the overview over every trace,
embeds a stated, deterministic selection of traces and writes a page that opens from disk with
no network. `thoughtmill inspect` is the command line for it.
"""

from stages.inspect.render import DEFAULT_MAX_TRACES, Report, ReportConfig, build_report, collect, render, run_report

__all__ = ["DEFAULT_MAX_TRACES", "Report", "ReportConfig", "build_report", "collect", "render", "run_report"]
