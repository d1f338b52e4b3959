"""Step labelers behind a name, as answer verifiers are (`stages/verification/verify.py`).

Every module of `labelers/` is one labeler, found here: the class whose `name` is the module's
name. The label stage runs the ones a recipe lists (`label.labelers`); each one's step columns,
its `first_error_<name>` column, its vote in the consensus (`label.consensus.sources`), its part
of the label section (`section`, typed by `config`) and the model purposes it uses come from here.
Adding a labeler: one file in `labelers/` implementing `StepLabeler` (`base.py`), and one line,
its step columns in `schemas/labels.py` (the record types' one source of truth).
"""

from __future__ import annotations

import importlib
import pkgutil

from pydantic import Field

from schemas.labels import LABELER_STEP_FIELDS
from stages.label import labelers
from stages.label.base import StepLabeler


def _discover() -> dict[str, type[StepLabeler]]:
    """Each module of `labelers/` and its labeler class, in the order of `LABELER_STEP_FIELDS`."""
    found = {}
    for module_name in sorted(m.name for m in pkgutil.iter_modules(labelers.__path__)):
        module = importlib.import_module(f"{labelers.__name__}.{module_name}")
        classes = [
            v
            for v in vars(module).values()
            if isinstance(v, type) and v.__module__ == module.__name__ and getattr(v, "name", None) == module_name
        ]
        if len(classes) != 1:
            raise TypeError(f"{module.__file__}: define one labeler class with `name = {module_name!r}`")
        found[module_name] = classes[0]
    if undeclared := sorted(set(found) - set(LABELER_STEP_FIELDS)):
        raise TypeError(f"labeler(s) {undeclared}: declare their step columns in schemas/labels.py LABELER_STEP_FIELDS")
    if unregistered := sorted(set(LABELER_STEP_FIELDS) - set(found)):
        raise TypeError(f"schemas/labels.py declares columns for unregistered labeler(s) {unregistered}")
    return {name: found[name] for name in LABELER_STEP_FIELDS}


LABELERS: dict[str, type[StepLabeler]] = _discover()


def known_labelers(names: list[str], key: str) -> list[str]:
    """`names` if each is a registered labeler; else a ValueError naming `key` and the known ones."""
    unknown = [n for n in names if n not in LABELERS]
    if unknown:
        raise ValueError(f"{key}: unknown labeler(s) {unknown}; registered: {sorted(LABELERS)}")
    return names


def labeler_purposes() -> tuple[str, ...]:
    """Every model purpose a registered labeler uses, in registry order."""
    return tuple(dict.fromkeys(p for cls in LABELERS.values() for p in cls.uses))


def labeler_sections() -> dict[str, tuple[type, Field]]:
    """The label section's part for each labeler that has one: key -> (its type, its defaults)."""
    return {cls.section: (cls.config, Field(default_factory=cls.config)) for cls in LABELERS.values() if cls.section}


def _check_columns() -> None:
    """Every registered labeler fills exactly the step columns its schema entry declares."""
    for name, cls in LABELERS.items():
        declared = set(LABELER_STEP_FIELDS[name])
        filled = set(cls.step_fields(None, 0))
        if declared != filled:
            raise TypeError(
                f"labeler {name!r} fills step columns {sorted(filled)}, but schemas/labels.py "
                f"LABELER_STEP_FIELDS declares {sorted(declared)} for it"
            )


_check_columns()
