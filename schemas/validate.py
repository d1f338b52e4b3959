"""Validation at stage boundaries: check columns and cast to the declared types."""

from __future__ import annotations

import pyarrow as pa
from datasets import Features


class SchemaError(ValueError):
    """A table does not match its declared record type."""


def arrow_schema(features: Features) -> pa.Schema:
    return features.arrow_schema


def empty_table(features: Features) -> pa.Table:
    return arrow_schema(features).empty_table()


def validate(table: pa.Table, features: Features, name: str = "table") -> pa.Table:
    """Return `table` cast to `features`; raise SchemaError naming missing or extra columns
    or a column whose values cannot be cast."""
    schema = arrow_schema(features)
    missing = [f for f in schema.names if f not in table.column_names]
    extra = [c for c in table.column_names if c not in schema.names]
    if missing or extra:
        raise SchemaError(f"{name}: missing columns {missing}, unexpected columns {extra}")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise SchemaError(f"{name}: cannot cast to declared schema: {exc}") from exc
