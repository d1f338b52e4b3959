"""Step labelers behind a name, as answer verifiers are in `verify.py`.

The label stage runs the labelers a recipe lists (`label.labelers`); each one's step columns,
its `first_error_<name>` column and its vote in the consensus (`label.consensus.sources`) come
from here. Adding a labeler: one file implementing `StepLabeler` (`base.py`), one entry below,
and its step columns in `schemas/labels.py` (the record types' one source of truth).
"""

from __future__ import annotations

from schemas.labels import LABELER_STEP_FIELDS
from stages.label.base import StepLabeler
from stages.label.judge import JudgeLabeler
from stages.label.prm import PRMLabeler
from stages.label.rollouts import MonteCarloLabeler
from stages.label.symbolic import SymbolicLabeler

LABELERS: dict[str, type[StepLabeler]] = {
    cls.name: cls for cls in (SymbolicLabeler, MonteCarloLabeler, JudgeLabeler, PRMLabeler)
}


def known_labelers(names: list[str], key: str) -> list[str]:
    """`names` if each is a registered labeler; else a ValueError naming `key` and the known ones."""
    unknown = [n for n in names if n not in LABELERS]
    if unknown:
        raise ValueError(f"{key}: unknown labeler(s) {unknown}; registered: {sorted(LABELERS)}")
    return names


def _check_columns() -> None:
    """Every registered labeler fills exactly the step columns its schema entry declares."""
    for name, cls in LABELERS.items():
        declared = set(LABELER_STEP_FIELDS.get(name, {}))
        filled = set(cls.step_fields(None, 0))
        if declared != filled:
            raise TypeError(
                f"labeler {name!r} fills step columns {sorted(filled)}, but schemas/labels.py "
                f"LABELER_STEP_FIELDS declares {sorted(declared)} for it"
            )
    if unregistered := sorted(set(LABELER_STEP_FIELDS) - set(LABELERS)):
        raise TypeError(f"schemas/labels.py declares columns for unregistered labeler(s) {unregistered}")


_check_columns()
