"""alliance: therapeutic-alliance research pipeline (ingest, measurement, outcome models, pooling)."""

__version__ = "0.1.0"
