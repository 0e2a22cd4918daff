"""Another writer on a Delta table, with the `deltalake` package (delta-rs): print "ready" once
imported, wait for a line on stdin (the start signal), wait DELAY_MS, then append one row (pk "appended", sk SK, the table's other columns null) or compact the table
(OPTIMIZE).

Usage: race_delta.py TABLE_DIR append|optimize SK DELAY_MS

Prints one JSON object: {"committed": true, "version": N}; {"committed": false,
"nothing_to_compact": true} for an OPTIMIZE that found nothing to do; or, when delta-rs's own
conflict check refused its commit, {"committed": false, "error": "..."}.
"""

import json
import os
import sys
import time

import deltalake
import pyarrow


def main() -> int:
    path, what, sk, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print("ready", flush=True)
    sys.stdin.readline()
    time.sleep(delay / 1000)
    try:
        dt = deltalake.DeltaTable(path)
        if what == "append":
            schema = pyarrow.schema(dt.schema().to_arrow())
            columns = {
                f.name: pyarrow.array(
                    ["appended"] if f.name == "pk" else [sk] if f.name == "sk" else [None],
                    type=f.type,
                )
                for f in schema
            }
            deltalake.write_deltalake(dt, pyarrow.table(columns, schema=schema), mode="append")
        elif dt.optimize.compact()["numFilesRemoved"] == 0:
            print(json.dumps({"committed": False, "nothing_to_compact": True}))
            return finish()
        print(json.dumps({"committed": True, "version": deltalake.DeltaTable(path).version()}))
    except Exception as e:  # delta-rs's conflict check (CommitFailedError and kin)
        print(json.dumps({"committed": False, "error": f"{type(e).__name__}: {e}"}))
    return finish()


def finish():
    sys.stdout.flush()
    # deltalake's runtime can abort while the interpreter shuts down; the answer is out.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
