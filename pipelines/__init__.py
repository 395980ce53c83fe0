"""kfpc pipelines: composition, local runs, compile, submit, schedule."""
