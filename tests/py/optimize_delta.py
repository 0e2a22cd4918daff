"""Compact a Delta table with the `deltalake` package (delta-rs's OPTIMIZE), as another writer.

Usage: optimize_delta.py TABLE_DIR

Prints one JSON object: the version OPTIMIZE committed and its metrics.
"""

import json
import os
import sys

import deltalake


def main() -> int:
    dt = deltalake.DeltaTable(sys.argv[1])
    metrics = dt.optimize.compact()
    print(json.dumps({"version": dt.version(), "metrics": metrics}, default=str))
    sys.stdout.flush()
    # deltalake's runtime can abort while the interpreter shuts down; the answer is out.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
