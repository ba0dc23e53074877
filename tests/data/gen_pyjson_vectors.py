#!/usr/bin/env python3
"""Writes tests/data/pyjson_vectors.json: reference output of Python's
json.dumps(value, sort_keys=True) and its SHA-256, and of the compact form
json.dumps(value, separators=(",", ":"), ensure_ascii=False), for
tests/unit/test_pyjson.c.

Usage: python3 tests/data/gen_pyjson_vectors.py > tests/data/pyjson_vectors.json

Deterministic (fixed seed). Every value must survive a jansson load
unchanged: no lone surrogates, no NUL in keys, integers within int64,
finite floats only (the vectors file stores them as repr, which reads back
as the same double).
"""
import hashlib
import json
import random
import struct
import sys


def vec(value):
    dumps = json.dumps(value, sort_keys=True)
    return {
        "value": value,
        "dumps": dumps,
        "sha256": hashlib.sha256(dumps.encode("utf-8")).hexdigest(),
        "compact": json.dumps(value, separators=(",", ":"),
                              ensure_ascii=False),
    }


def random_doubles(rng, n):
    out = []
    while len(out) < n:
        (x,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if x == x and x not in (float("inf"), float("-inf")):
            out.append(x)
    return out


def main():
    rng = random.Random(20261123)
    values = []

    # the contract's essay event data
    values.append({"batch_id": "b-1", "text_storage_id": "t-1",
                   "file_name": "a.txt"})
    values.append({"batch_id": "b-1", "text_storage_id": "t-1",
                   "file_name": "a.txt", "extra": {"n": 1, "ok": True}})

    # nesting and key order
    values.append({"b": {"z": 1, "a": [1, {"y": None, "x": True}]}, "a": False})
    values.append({"B": 1, "a": 2, "_": 3, "A": 4, "1": 5, "aa": 6, "a ": 7,
                   "": 8, "~": 9, "\u007f": 10, "\u00e9": 11, "\u65e5": 12,
                   "\U0001f600": 13, "\uff5e": 14, "\ue000": 15,
                   "\u00ff": 16, "\u0100": 17, "\U0010ffff": 18})
    values.append({"k%d" % i: i for i in rng.sample(range(100), 40)})
    values.append([[[[[[{"deep": [[]]}]]]]]])

    # strings: unicode, controls, quotes, backslashes
    values.append("\u00e9")
    values.append("\u65e5\u672c")
    values.append("\U0001f600")
    values.append("a\U0001f600b\u00e9c\u65e5")
    values.append("\u2028\u2029\ufeff\uffff\ufffd\U0010ffff")
    values.append("".join(chr(c) for c in range(0x00, 0x20)))
    values.append("".join(chr(c) for c in range(0x20, 0x80)))
    values.append("".join(chr(c) for c in range(0x80, 0xa0)))
    values.append("\"quoted\" and \\backslash\\ and /slash/ and </script>")
    values.append({"\"k\"": "\\", "\n": "\t", "\u0001": "\u001f"})
    values.append(["", " ", "\b\f\n\r\t", "\u0000", "x\u0000y"])

    # integers
    values.append([0, 1, -1, 42, -42, 2**31, -2**31 - 1, 2**53, 2**53 + 1,
                   2**63 - 1, -2**63])

    # floats of many shapes
    values.append([1.0, 0.1, 0.5, -0.0, 0.0, 1e16, 1e15, 1.5e-07, 1e-05,
                   0.0001, 123456789012345.0, 1.2345678901234567e19, 1e22,
                   1e23, 2.5, 100.0, 1e-07, 9.999999999999999e15,
                   1.7976931348623157e308, 5e-324, 2.2250738585072014e-308,
                   2.225073858507201e-308, 0.30000000000000004, 1 / 3,
                   2 / 3, 3.141592653589793, 1e100, 1.5e300, -1.5e-300])
    values.append([float(2**k) for k in range(-1074, 1024, 37)])
    values.append([2.0**k for k in (-1022, -1021, 52, 53, 54, 63, 64, 1023)])
    # powers of two where the nearest decimal of the shortest length does
    # not read back but its neighbour does (lopsided rounding interval)
    values.append([5.960464477539063e-08, 5.684341886080802e-14,
                   6.310887241768095e-30, 7.120236347223045e-307,
                   6.189700196426902e+26, 5.316911983139664e+36,
                   6.386688990511104e+293])
    values.append([float(10**k) for k in range(0, 23)])
    values.append([10.0**-k for k in range(0, 23)])
    values.append([round(rng.uniform(-1e6, 1e6), rng.randrange(0, 8))
                   for _ in range(40)])
    doubles = random_doubles(rng, 300)
    for i in range(0, len(doubles), 30):
        values.append(doubles[i:i + 30])

    # empty containers and scalars
    values.extend([{}, [], "", [[]], {"a": {}}, {"a": []}, True, False, None,
                   "x", 1, 1.5])
    values.append({"mixed": [1, 1.0, "1", True, None, {}, []]})

    vectors = [vec(v) for v in values]
    # not sort_keys: objects keep their insertion order, so the C side
    # really has to sort them
    json.dump(vectors, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
