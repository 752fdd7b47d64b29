"""The exposition: families and their text rendering, the per-object store, its gzip cache and compaction."""
