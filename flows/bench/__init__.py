"""Benchmarks."""

# The tiny reasoner's engine settings as the demo recipe gives them (small KV cache, eager on CPU)
TINY_ENGINE = {"enforce_eager": True, "block_size": 32, "kv_cache_memory_bytes": 512 << 20}
