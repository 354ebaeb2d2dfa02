"""Data in: instruments, codebooks, their schemas, raw-export readers, ingest, scoring, pooling."""
