"""Check that data files store every column under a physical name with a Parquet field id.

Usage: physical_columns.py TABLE_DIR FILES_JSON

FILES_JSON lists data files relative to TABLE_DIR. Every field at every level (struct fields,
structs inside lists) must be named `col-...` and carry `PARQUET:field_id`, as Delta column
mapping asks of writers. Prints how many fields were checked.
"""

import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def walk(data_type, out):
    if pa.types.is_struct(data_type):
        for field in data_type:
            check(field, out)
    elif pa.types.is_list(data_type):
        walk(data_type.value_type, out)


def check(field, out):
    out.append((field.name, (field.metadata or {}).get(b"PARQUET:field_id")))
    walk(field.type, out)


def main() -> int:
    root, files = sys.argv[1], json.loads(sys.argv[2])
    fields = []
    for path in files:
        for field in pq.read_schema(f"{root}/{path}"):
            check(field, fields)
    bad = [f for f in fields if not f[0].startswith("col-") or f[1] is None]
    assert fields and not bad, bad
    print(len(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
