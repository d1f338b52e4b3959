"""What every dataset card is made of: its YAML front matter, and the tables in its body.

The front matter (configs, features, sizes) comes from `datasets`' own serialisers, so the Hub and
`load_dataset` read it exactly; the corpus's card (`stages/publish/card.py`) and the evaluation
results' (`stages/eval_results.py`) write their bodies around it.
"""

from __future__ import annotations

from datasets import Features
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCardData

from stages.dataset.shards import SPLIT, ShardInfo


def front_matter(
    shards: dict[str, list[ShardInfo]], features: dict[str, Features], default_config: str, meta: dict
) -> str:
    """YAML front matter: `configs` (data files, default) and `dataset_info` (features, splits, sizes)."""
    default = default_config if default_config in shards else next(iter(shards), None)
    card = DatasetCardData(pretty_name=meta.get("pretty_name"), license=meta.get("license"))
    configs = {name: {"data_files": [{"split": SPLIT, "path": f"data/{name}/*.parquet"}]} for name in shards}
    if default is not None:
        configs[default]["default"] = True
    MetadataConfigs(configs).to_dataset_card_data(card)
    infos = {}
    for name, parts in shards.items():
        splits = SplitDict()
        splits.add(
            SplitInfo(name=SPLIT, num_bytes=sum(s.num_bytes for s in parts), num_examples=sum(s.rows for s in parts))
        )
        infos[name] = DatasetInfo(
            features=features[name],
            splits=splits,
            download_size=sum(s.file_size for s in parts),
            dataset_size=sum(s.num_bytes for s in parts),
            config_name=name,
        )
    DatasetInfosDict(infos).to_dataset_card_data(card)
    return f"---\n{card.to_yaml()}\n---\n"


def markdown_table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
