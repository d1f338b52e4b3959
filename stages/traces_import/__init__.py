"""Bring your own traces: existing reasoning traces (Hub datasets or local files) as `traces` shards."""

from stages.traces_import.config import TraceSourceConfig
from stages.traces_import.presets import PRESETS
from stages.traces_import.stage import import_traces, run_import

__all__ = ["PRESETS", "TraceSourceConfig", "import_traces", "run_import"]
