"""alliance: therapeutic-alliance research pipeline, from raw items to pooled results."""

__version__ = "0.1.0"
