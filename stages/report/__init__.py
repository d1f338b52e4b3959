"""The `report` stage, the trace inspector: one self-contained HTML page over a run or a published dataset.

`build_report` (`stage.py`) reads the folder column-wise (polars), computes the overview over every
trace, embeds a stated, deterministic selection of traces and writes a page that opens from disk
with no network. `thoughtmill inspect` is the command line for it.
"""
