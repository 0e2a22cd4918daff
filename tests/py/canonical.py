"""Rows as plain JSON-able values, the same whichever reader produced them (deltalake's
pyarrow rows in read_delta.py, DuckDB's in duck_delta.py): decimals as exact text, binary as
hex, structs and lists kept, rows sorted. No third-party imports: it runs in both venvs."""

import decimal
import json


def value(v):
    if isinstance(v, decimal.Decimal):
        return format(v.normalize(), "f") if v != 0 else "0"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {k: value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [value(x) for x in v]
    return v


def rows(names, tuples):
    out = [{n: value(v) for n, v in zip(names, t)} for t in tuples]
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True))
