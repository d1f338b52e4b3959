"""The publish stage: the curated configs as a dataset with figures and a card (`stage.py`).

The machinery it shares with the evaluation's results is `stages/dataset/`; the corpus's own card
(`card.py`) and diagnostic figures (`figures.py`) are here.
"""
