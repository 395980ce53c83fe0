"""Seeded generator of malformed (and some valid) requests for the v1, v2 JSON, v2 binary and gRPC decoders.

Plain ``random`` with a seed instead of hypothesis (not installed in the project's environment): every body
starts from a valid request for the model's features and gets one to three mutations, structural (a
feature dropped, renamed or retyped, shapes, datatypes, sizes, length prefixes...) and then, for some,
byte-level (truncated, a byte flipped, bytes inserted). The same seed gives the same bodies.
Used by tests/serving/test_serving_fuzz.py (a fast slice) and benchmarks/bench_fuzz.py (100,000+ per protocol).
"""

from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

V2_TYPES = ["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32",
            "FP64", "BYTES"]
ITEM_SIZE = {"BOOL": 1, "INT8": 1, "INT16": 2, "INT32": 4, "INT64": 8, "UINT8": 1, "UINT16": 2, "UINT32": 4,
             "UINT64": 8, "FP16": 2, "FP32": 4, "FP64": 8}
STRUCT = {"BOOL": "?", "INT8": "b", "INT16": "h", "INT32": "i", "INT64": "q", "UINT8": "B", "UINT16": "H",
          "UINT32": "I", "UINT64": "Q", "FP16": "e", "FP32": "f", "FP64": "d"}
WEIRD_STRINGS = ["", " ", "\x00", "\ud800", "é", "\\", '"', "\n", "\u202e", "x" * 5000, "1e999", "NaN", "null",
                 "\x7f\x01", "🐧", "<script>", "%s%n", "../../etc/passwd"]


class BodyFuzzer:
    """Bodies for one model.

    Args:
        features: the model card's features (``name``, ``dtype``: ``string`` | ``float64``).
        seed: the random seed.
        model_name: the model name in gRPC requests.
    """

    def __init__(self, features: list[dict], seed: int = 0, model_name: str = "model"):
        self.features = features
        self.random = random.Random(seed)
        self.model_name = model_name

    # ------------------------------------------------------------------ values

    def value(self, depth: int = 0) -> Any:
        """A random JSON value, often one a decoder must refuse."""
        r = self.random
        kind = r.randrange(12 if depth < 2 else 9)
        if kind == 0:
            return None
        if kind == 1:
            return r.choice([True, False])
        if kind == 2:
            return r.choice([0, -1, 1, 2**31, 2**63, -(2**64), 10**400, r.randrange(-1000, 1000)])
        if kind == 3:
            return r.choice([0.0, -0.0, 1.5, 1e308, -1e-308, math.nan, math.inf, -math.inf, r.uniform(-1e6, 1e6)])
        if kind in (4, 5):
            return r.choice(WEIRD_STRINGS)
        if kind == 6:
            return "".join(chr(r.randrange(0, 0x2FFF)) for _ in range(r.randrange(0, 12)))
        if kind in (7, 8):
            return r.choice(["Biscoe", "Dream", "male", "female", "2007", "3.5"])
        if kind == 9:
            return [self.value(depth + 1) for _ in range(r.randrange(0, 4))]
        if kind == 10:
            return {r.choice(["a", "", "inputs", "data"]): self.value(depth + 1) for _ in range(r.randrange(0, 3))}
        return [[self.value(depth + 1)]]

    def good_value(self, feature: dict) -> Any:
        r = self.random
        if feature["dtype"] == "string":
            return r.choice(["Biscoe", "Dream", "Torgersen", "male", "female", "", None])
        return r.choice([r.uniform(-10, 5000), r.randrange(0, 3000), None])

    def name(self) -> str:
        r = self.random
        if r.random() < 0.5:
            return r.choice(self.features)["name"] + r.choice(["", " ", "_", "X", "\x00"])
        return r.choice(WEIRD_STRINGS + ["colour", "", "instances"])

    # ------------------------------------------------------------------ byte-level

    def bytes_mutation(self, body: bytes) -> bytes:
        """Truncate, flip, insert or duplicate bytes (applied to some bodies)."""
        r = self.random
        if not body:
            return bytes(r.randrange(256) for _ in range(r.randrange(1, 8)))
        kind = r.randrange(5)
        at = r.randrange(len(body))
        if kind == 0:
            return body[:at]
        if kind == 1:
            return body[:at] + bytes([r.randrange(256)]) + body[at + 1:]
        if kind == 2:
            return body[:at] + r.choice([b"\x00", b"\xff\xfe", b"{", b"]", b'"', b"\\u", b"NaN", b"\xed\xa0\x80"]) + \
                body[at:]
        if kind == 3:
            end = min(len(body), at + r.randrange(1, 64))
            return body[:end] + body[at:end] + body[end:]
        return body[:at] + body[at + r.randrange(1, 16):]

    def _dumps(self, obj: Any) -> bytes:
        try:
            return json.dumps(obj, allow_nan=True).encode("utf-8", "surrogatepass")
        except (ValueError, OverflowError):
            return b"{"

    # ------------------------------------------------------------------ v1

    def v1_object(self) -> Any:
        r = self.random
        rows = [{f["name"]: self.good_value(f) for f in self.features} for _ in range(r.choice([1, 1, 2, 5]))]
        body: Any = {"instances": rows}
        for _ in range(r.randrange(1, 4)):
            kind = r.randrange(11)
            row = r.choice([x for x in rows if isinstance(x, dict)] or [{}])
            feature = r.choice(self.features)["name"]
            if kind in (0, 1, 2):
                row[feature] = self.value()
            elif kind == 3:
                row.pop(feature, None)
            elif kind == 4:
                row[self.name()] = self.value()
            elif kind == 5:
                rows.append(self.value())
            elif kind == 6:
                body = {"inputs": {f["name"]: [row.get(f["name"]) if isinstance(row, dict) else row for row in rows] for f in self.features}}
                if r.random() < 0.7:
                    column = r.choice(list(body["inputs"]))
                    body["inputs"][column] = r.choice([self.value(), body["inputs"][column][:-1], []])
            elif kind == 7:
                body = r.choice([rows, {"instances": rows, "inputs": rows}, {"rows": rows}, self.value(),
                                 {"instances": self.value()}, {"instances": []}])
            elif kind == 8:
                body = {"instances": rows * r.choice([0, 200, 1001])}
            elif kind == 9:
                row[feature] = r.choice(WEIRD_STRINGS) * r.randrange(1, 3)
            else:
                body = {"inputs": rows}
        return body

    def v1(self) -> bytes:
        """A v1 ``:predict`` body."""
        body = self._dumps(self.v1_object())
        return self.bytes_mutation(body) if self.random.random() < 0.3 else body

    # ------------------------------------------------------------------ v2 JSON

    def _tensor(self, feature: dict, rows: int) -> dict:
        values = [self.good_value(feature) for _ in range(rows)]
        if feature["dtype"] == "string":
            return {"name": feature["name"], "shape": [rows], "datatype": "BYTES",
                    "data": ["" if v is None else v for v in values]}
        return {"name": feature["name"], "shape": [rows], "datatype": "FP64",
                "data": [math.nan if v is None else float(v) for v in values]}

    def v2_object(self) -> dict:
        r = self.random
        rows = r.choice([1, 1, 2, 3])
        tensors = [self._tensor(f, rows) for f in self.features]
        body: Any = {"id": "fuzz", "inputs": tensors}
        for _ in range(r.randrange(1, 4)):
            tensor = r.choice([t for t in tensors if isinstance(t, dict)] or [{}])
            kind = r.randrange(13)
            if kind == 0:
                tensor["shape"] = r.choice([[], [rows, 2], [-1], [rows, 1], [True], ["1"], [2**63], [rows + 1],
                                            [0], None, [[rows]], [1.5]])
            elif kind == 1:
                tensor["datatype"] = r.choice(V2_TYPES + ["", "bytes", "FP128", None, 3])
            elif kind == 2:
                tensor["data"] = self.value()
            elif kind == 3:
                if isinstance(tensor.get("data"), list) and tensor["data"]:
                    tensor["data"][r.randrange(len(tensor["data"]))] = self.value()
            elif kind == 4:
                tensor.pop(r.choice(["name", "shape", "datatype", "data"]), None)
            elif kind == 5:
                tensor["name"] = self.name()
            elif kind == 6:
                tensors.append(dict(r.choice(tensors)) if tensors else {})
            elif kind == 7:
                if tensors:
                    tensors.pop(r.randrange(len(tensors)))
            elif kind == 8:
                tensor["parameters"] = r.choice([self.value(), {"binary_data_size": self.value()},
                                                 {"binary_data_size": 8}])
            elif not isinstance(body, dict):
                continue
            elif kind == 9:
                body["outputs"] = r.choice([self.value(), [{"name": self.name()}], [{"name": "classes"}],
                                            [{"name": "probabilities", "parameters": {"binary_data": True}}]])
            elif kind == 10:
                body[r.choice(["id", "parameters", "inputs"])] = self.value()
            elif kind == 11:
                data = tensor.get("data") if isinstance(tensor.get("data"), list) else []
                tensor["data"] = [[v] for v in data] if r.random() < 0.5 else [[v, v] for v in data]
            else:
                body = self.value()
        return body

    def v2_json(self) -> bytes:
        """A v2 ``/infer`` body, all JSON."""
        body = self._dumps(self.v2_object())
        return self.bytes_mutation(body) if self.random.random() < 0.3 else body

    # ------------------------------------------------------------------ v2 binary

    def _binary(self, datatype: str, values: list) -> bytes:
        if datatype == "BYTES":
            out = b""
            for v in values:
                data = ("" if v is None else str(v)).encode("utf-8", "surrogatepass")
                out += struct.pack("<I", len(data)) + data
            return out
        code = STRUCT[datatype]
        packed = b""
        for v in values:
            try:
                packed += struct.pack("<" + code, (math.nan if v is None else v) if code in "efd" else int(v or 0))
            except (struct.error, ValueError, OverflowError, TypeError):
                packed += b"\x00" * ITEM_SIZE[datatype]
        return packed

    def v2_binary(self) -> tuple[bytes, dict[str, str]]:
        """A v2 body with binary tensors after its JSON header, and its headers."""
        r = self.random
        rows = r.choice([1, 2, 3])
        header_inputs, blobs = [], []
        for feature in self.features:
            values = [self.good_value(feature) for _ in range(rows)]
            datatype = "BYTES" if feature["dtype"] == "string" else r.choice(["FP64", "FP32", "INT64", "FP16"])
            blob = self._binary(datatype, values)
            header_inputs.append({"name": feature["name"], "shape": [rows], "datatype": datatype,
                                  "parameters": {"binary_data_size": len(blob)}})
            blobs.append(blob)
        header: dict = {"inputs": header_inputs}
        length_header: Any = None
        for _ in range(r.randrange(1, 4)):
            i = r.randrange(len(header_inputs))  # (blobs may hold one more, appended below)
            kind = r.randrange(10)
            if kind == 0:  # a bogus BYTES length prefix, or any 4 bytes in front
                blobs[i] = struct.pack("<I", r.choice([0xFFFFFFFF, 2**31, 1000, len(blobs[i]) + 1])) + blobs[i][4:]
            elif kind == 1:  # declared size off
                header_inputs[i]["parameters"] = {"binary_data_size": max(
                    0, len(blobs[i]) + r.choice([-9, -1, 1, 7, 10**6]))}
            elif kind == 2:  # tensor shorter than declared
                blobs[i] = blobs[i][: r.randrange(len(blobs[i]) + 1)]
            elif kind == 3:
                header_inputs[i]["datatype"] = r.choice(V2_TYPES + ["X"])
            elif kind == 4:
                header_inputs[i]["shape"] = r.choice([[rows + 1], [rows, 1], [0], [-1], [2**40]])
            elif kind == 5:
                length_header = r.choice(["-1", "abc", "0", "99999999", "", "²"])
            elif kind == 6:
                blobs.append(bytes(r.randrange(256) for _ in range(r.randrange(1, 9))))
            elif kind == 7:
                header_inputs[i]["parameters"] = r.choice([{"binary_data_size": self.value()}, self.value()])
            elif kind == 8:
                blobs[i] = bytes(r.randrange(256) for _ in range(len(blobs[i])))
            else:
                header_inputs[i]["name"] = self.name()
        head = self._dumps(header)
        body = head + b"".join(blobs)
        if r.random() < 0.15:
            body = self.bytes_mutation(body)
        headers = {"Inference-Header-Content-Length": str(len(head)) if length_header is None else length_header,
                   "Content-Type": "application/octet-stream"}
        return body, headers

    # ------------------------------------------------------------------ gRPC

    def grpc(self, pb: Any) -> Any:
        """A ``ModelInferRequest`` (``pb``: kserve's ``grpc_predict_v2_pb2``)."""
        r = self.random
        rows = r.choice([1, 2, 3])
        raw_mode = r.random() < 0.5
        model_name = self.model_name if r.random() < 0.95 else self.name().encode("utf-8", "replace").decode()
        request = pb.ModelInferRequest(model_name=model_name, id="fuzz")
        raws = []
        for feature in self.features:
            values = [self.good_value(feature) for _ in range(rows)]
            datatype = "BYTES" if feature["dtype"] == "string" else r.choice(["FP64", "FP32", "INT64"])
            tensor = request.inputs.add(name=feature["name"], datatype=datatype, shape=[rows])
            if raw_mode:
                raws.append(self._binary(datatype, values))
            elif datatype == "BYTES":
                tensor.contents.bytes_contents.extend(("" if v is None else str(v)).encode() for v in values)
            elif datatype == "FP64":
                tensor.contents.fp64_contents.extend(math.nan if v is None else float(v) for v in values)
            elif datatype == "FP32":
                tensor.contents.fp32_contents.extend(math.nan if v is None else float(v) for v in values)
            else:
                tensor.contents.int64_contents.extend(int(v or 0) for v in values)
        for _ in range(r.randrange(1, 4)):
            if not request.inputs:
                break
            tensor = request.inputs[r.randrange(len(request.inputs))]
            kind = r.randrange(10)
            if kind == 0:
                tensor.datatype = r.choice(V2_TYPES + ["", "FP128"])
            elif kind == 1:
                del tensor.shape[:]
                tensor.shape.extend(r.choice([[], [rows + 1], [rows, 2], [-1], [2**62], [0], [rows, 1]]))
            elif kind == 2:
                tensor.name = self.name().encode("utf-8", "replace").decode()  # (protobuf strings are UTF-8)
            elif kind == 3 and raws:
                i = r.randrange(len(raws))
                raws[i] = struct.pack("<I", r.choice([0xFFFFFFFF, 999, 3])) + raws[i][4:]
            elif kind == 4 and raws:
                i = r.randrange(len(raws))
                raws[i] = raws[i][: r.randrange(len(raws[i]) + 1)]
            elif kind == 5:
                raws.append(bytes(r.randrange(256) for _ in range(r.randrange(0, 12))))
            elif kind == 6:
                tensor.contents.bool_contents.extend([True] * r.randrange(1, 3))
            elif kind == 7:
                del request.inputs[r.randrange(len(request.inputs))]
                if raws:
                    raws.pop()
            elif kind == 8:
                request.outputs.add(name=self.name().encode("utf-8", "replace").decode() if r.random() < 0.5
                                    else "classes")
            else:
                tensor.contents.bytes_contents.append(r.choice(WEIRD_STRINGS).encode("utf-8", "surrogatepass"))
        if raws:
            request.raw_input_contents.extend(raws)
        return request


# ---------------------------------------------------------------------- runners


def run_http(host: str, port: int, model_name: str, fuzzer: BodyFuzzer, kind: str, count: int) -> dict:
    """Send ``count`` bodies of ``kind`` (``v1``, ``v2_json``, ``v2_binary``) on one keep-alive connection.

    Returns:
        ``{"codes": {status: n}, "examples_5xx": [...], "connection_errors": n, "max_error_chars": n}``.
    """
    import http.client

    path = f"/v1/models/{model_name}:predict" if kind == "v1" else f"/v2/models/{model_name}/infer"
    codes: dict[int, int] = {}
    examples, errors, longest = [], 0, 0
    connection = http.client.HTTPConnection(host, port, timeout=60)
    for _ in range(count):
        if kind == "v2_binary":
            body, headers = fuzzer.v2_binary()
        else:
            body, headers = (fuzzer.v1() if kind == "v1" else fuzzer.v2_json()), {"Content-Type": "application/json"}
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
        except (http.client.HTTPException, OSError):
            errors += 1
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=60)
            continue
        codes[response.status] = codes.get(response.status, 0) + 1
        if response.status >= 400:
            longest = max(longest, len(answer))
        if response.status >= 500 and len(examples) < 5:
            examples.append({"body": body[:300].decode("utf-8", "replace"), "answer": answer[:300].decode("utf-8", "replace")})
        if response.getheader("connection", "").lower() == "close":
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=60)
    connection.close()
    return {"codes": codes, "examples_5xx": examples, "connection_errors": errors, "max_error_bytes": longest}


def run_grpc(target: str, fuzzer: BodyFuzzer, count: int) -> dict:
    """Send ``count`` fuzzed ``ModelInfer`` requests over one gRPC channel.

    Returns:
        ``{"codes": {grpc status name: n}, "examples_internal": [...], "max_error_chars": n}``.
    """
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    codes: dict[str, int] = {}
    examples, longest = [], 0
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(count):
            request = fuzzer.grpc(pb)
            try:
                stub.ModelInfer(request, timeout=60)
                name = "OK"
            except grpc.RpcError as err:
                name = err.code().name
                longest = max(longest, len(err.details() or ""))
                if name in ("INTERNAL", "UNKNOWN") and len(examples) < 5:
                    examples.append({"request": str(request)[:300], "details": (err.details() or "")[:300]})
            codes[name] = codes.get(name, 0) + 1
    return {"codes": codes, "examples_internal": examples, "max_error_chars": longest}
