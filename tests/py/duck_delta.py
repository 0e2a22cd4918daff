"""Read one version of a Delta table with DuckDB's own delta extension (from PyPI, in a venv
of its own: DuckDB 1.4.4 with duckdb-ext-delta) and print its rows as canonical.py renders
them, as JSON.

Usage: duck_delta.py TABLE_DIR VERSION
"""

import glob
import json
import sys

import duckdb
import duckdb_ext

from canonical import rows


def main() -> int:
    path, version = sys.argv[1], int(sys.argv[2])
    con = duckdb.connect()
    root = list(duckdb_ext.__path__)[0]
    (extension,) = glob.glob(f"{root}/extensions/*/*/delta.duckdb_extension")
    con.execute(f"LOAD '{extension}'")
    quoted = path.replace("'", "''")
    con.execute(f"ATTACH '{quoted}' AS t (TYPE delta, VERSION {version})")
    cursor = con.execute("SELECT * FROM t")
    names = [d[0] for d in cursor.description]
    print(json.dumps(rows(names, cursor.fetchall())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
