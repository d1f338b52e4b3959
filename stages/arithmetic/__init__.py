"""The bundled arithmetic world and its exact truth: problems, traces, claims checked exactly.

`trees.py` (expression trees and splits), `space.py` (how many problems a split holds),
`problems.py` (problems and reference traces), `truth.py` (the exact truth of each step),
`exact.py` (bounded exact arithmetic), `claims.py` (the claims a step makes, checked) and
`repair.py` (a later step restating a false claim with its true value: self-correction).
"""
