"""The step labelers, one module each, named after the labeler it defines (`judge.py`: `name = "judge"`).

The registry (`stages/label/registry.py`) imports every module here: a new labeler is a file here
and its step columns in `schemas/labels.py`.
"""
