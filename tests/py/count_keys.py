"""Count the rows and distinct keys of a folder of Parquet files with pyarrow, as a reader with
no options sees it (files and folders starting with `_` or `.` are skipped).

Usage: count_keys.py DIR KEY_COLUMN

Prints one JSON object: {"rows": N, "distinct": N, "files": N}.
"""

import json
import sys

import pyarrow.compute as pc
import pyarrow.dataset as ds


def main() -> int:
    folder, key = sys.argv[1], sys.argv[2]
    dataset = ds.dataset(folder, format="parquet")
    keys = dataset.to_table(columns=[key]).column(key)
    print(
        json.dumps(
            {
                "rows": len(keys),
                "distinct": len(pc.unique(keys)),
                "files": len(dataset.files),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
