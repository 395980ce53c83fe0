"""kfpc serving: the KServe model server for kfpc models."""
