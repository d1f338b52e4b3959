"""The `import` stage (a keyword, hence `import_`): existing reasoning traces (Hub datasets or local
files) as `traces` shards (`stage.py`), read through column mappings by name (`presets.py`)."""
