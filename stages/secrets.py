"""Secrets never reach an artifact: tokens come from the environment or the user's login only,
and anything shaped like one is scrubbed from what Thoughtmill writes for people to read
(dataset cards, `run.json`, `recipe.json`, Prefect artifacts), in case a user pasted one into a
recipe's free text."""

from __future__ import annotations

import os
import re

TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{20,}")
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY")


def scrub(text: str) -> str:
    """Replace anything shaped like a Hugging Face token, and the value of any token variable
    set in the environment, with a placeholder."""
    text = TOKEN_RE.sub("hf_***", text)
    for name in TOKEN_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 8:
            text = text.replace(value, "***")
    return text
