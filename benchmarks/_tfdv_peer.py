"""Run inside the TFDV 1.16.1 peer venv (Python 3.10): statistics/validation with TFDV for comparison.

Usage: python _tfdv_peer.py REQUEST.json  -> writes the files named in the request, prints timings JSON.
Never imported by kfpc itself.
"""

import json
import sys
import time

import pandas as pd
import pyarrow.parquet as pq


def frame(path):
    table = pq.read_table(path)
    # nullable integer columns stay integers (as in our statistics), strings are objects
    return table.to_pandas(types_mapper=lambda t: pd.Int64Dtype() if str(t) == "int64" else None)


def main():
    request = json.load(open(sys.argv[1]))
    import tensorflow_data_validation as tfdv
    out = {}
    for job in request.get("statistics", []):
        df = frame(job["parquet"])
        start = time.perf_counter()
        stats = tfdv.generate_statistics_from_dataframe(df)
        out.setdefault("seconds", {})[job["parquet"]] = time.perf_counter() - start
        with open(job["output"], "wb") as handle:
            handle.write(stats.SerializeToString())
    for job in request.get("load", []):
        stats = tfdv.load_stats_binary(job["stats"])
        schema = tfdv.load_schema_text(job["schema"])
        out.setdefault("loaded", []).append({"features": len(stats.datasets[0].features),
                                             "schema_features": len(schema.feature)})
    for job in request.get("validate", []):
        schema = tfdv.load_schema_text(job["schema"])
        current = tfdv.load_stats_binary(job["current"])
        previous = tfdv.load_stats_binary(job["previous"]) if job.get("previous") else None
        anomalies = tfdv.validate_statistics(current, schema, previous_statistics=previous)
        out.setdefault("anomalies", {})[job["name"]] = {
            name: sorted({__import__("tensorflow_metadata.proto.v0.anomalies_pb2", fromlist=["x"])
                          .AnomalyInfo.Type.Name(r.type) for r in info.reason})
            for name, info in anomalies.anomaly_info.items()}
    print(json.dumps(out))


def serve():
    """One request per stdin line, {"parquet": path, "repeat": n}: time n back-to-back TFDV runs on that
    file's DataFrame (built once and warmed up with one untimed run), answer one line of timings.

    Kept running, so the benchmark can alternate blocks of kfpc and TFDV runs on the same data.
    """
    import tensorflow_data_validation as tfdv
    frames = {}
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        path = request["parquet"]
        if path not in frames:
            frames.clear()
            frames[path] = frame(path)
            tfdv.generate_statistics_from_dataframe(frames[path])  # warm-up, not timed
        seconds = []
        for _ in range(request.get("repeat", 1)):
            start = time.perf_counter()
            tfdv.generate_statistics_from_dataframe(frames[path])
            seconds.append(time.perf_counter() - start)
        print(json.dumps({"seconds": seconds}), flush=True)


if __name__ == "__main__":
    serve() if sys.argv[1:] == ["--serve"] else main()
