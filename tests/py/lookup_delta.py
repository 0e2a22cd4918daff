"""A point lookup on a Delta table as delta-rs plans it: the files `deltalake`'s dataset keeps
for `pk = PK` (it turns each file's statistics into a guarantee and skips the files whose range
cannot hold the key), and the rows found there.

Usage: lookup_delta.py TABLE_DIR PK [VERSION]

With VERSION, also says whether the latest version holds exactly the rows of that one
("same_rows": every value compared, rows sorted by key).

Prints one JSON object: {"files": live files, "read": files kept for the lookup, "rows": rows
with that key, "total": rows in the table, "columns": the table's columns in order}.
"""

import json
import os
import sys

import deltalake
import pyarrow.dataset as ds


def main() -> int:
    path, pk = sys.argv[1], sys.argv[2]
    dataset = deltalake.DeltaTable(path).to_pyarrow_dataset()
    same = None
    if len(sys.argv) > 3:
        by_key = [("pk", "ascending"), ("sk", "ascending")]
        earlier = deltalake.DeltaTable(path, version=int(sys.argv[3])).to_pyarrow_dataset()
        same = dataset.to_table().sort_by(by_key).equals(earlier.to_table().sort_by(by_key))
    condition = ds.field("pk") == pk
    kept = list(dataset.get_fragments(filter=condition))
    rows = sum(f.to_table(filter=condition).num_rows for f in kept)
    print(json.dumps({
        "files": len(list(dataset.get_fragments())),
        "read": len(kept),
        "rows": rows,
        "total": dataset.count_rows(),
        "columns": dataset.schema.names,
        "same_rows": same,
    }))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
