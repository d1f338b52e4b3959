"""Publishing a dataset, the corpus or an evaluation's results: a Hub-ready folder, locally or on the Hub.

Split into parts so each concern can be read and tested alone: `layout` (row order, row groups and
shards by size, column encodings), `shards` (deterministic Parquet, streamed), `card` (the card's
front matter and tables), `hub` (atomic local publish and idempotent Hub commits) and `target`
(where a dataset goes: the section's settings, and the swap and commit).
"""
