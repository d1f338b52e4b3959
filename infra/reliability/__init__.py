"""Reliability tooling: synthetic corpora, hostile inputs and fault injection for tests and benches."""
