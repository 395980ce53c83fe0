"""ingest: CSV or Parquet -> a Dataset of Parquet splits, split deterministically by hash."""
