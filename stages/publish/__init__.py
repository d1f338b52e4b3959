"""Publishing: the curated configs as a Hub-ready dataset folder (shards, figures, card), locally or on the Hub.

Split into parts so each concern can be read and tested alone: `layout` (row order, row groups and
shards by size, column encodings), `shards` (deterministic Parquet, streamed),
`figures` (diagnostic PNGs), `card` (README.md generated from the data), `hub` (atomic local
publish and idempotent Hub commits) and `stage` (the single-process reduction tying them together).
"""

from stages.publish.hub import PublishError, publish_hub, publish_local
from stages.publish.shards import ShardInfo, write_config_shards
from stages.publish.stage import PublishConfig, publish

__all__ = [
    "PublishConfig",
    "PublishError",
    "ShardInfo",
    "publish",
    "publish_hub",
    "publish_local",
    "write_config_shards",
]
