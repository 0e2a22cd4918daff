"""Read one version of a Delta table with the `deltalake` package and with polars.

Usage: read_delta.py TABLE_DIR VERSION

Prints one JSON object: the table's protocol, its columns in order, the data files that make up the version (paths
relative to the table), and its rows as `deltalake` reads them (columns and struct fields under
their DynamoDB attribute names, values rendered as check_snapshot.py's `plain` does: numbers as
canonical text, binary as hex, nulls dropped). Fails unless `polars.read_delta` reads exactly
the same rows (tables without column mapping, the only ones polars reads), and unless DuckDB's own delta extension (duck_delta.py, in the interpreter
DDBSNAP_DUCKDB_PYTHON names) reads exactly the same values.
"""

import json
import os
import subprocess
import sys
import urllib.parse

import deltalake
import polars

import canonical
from check_snapshot import attribute, plain, restore


def rows_of(table):
    out = []
    for r in table.to_pylist():
        out.append(
            {attribute(f): plain(restore(r[f.name], f.type)) for f in table.schema if r[f.name] is not None}
        )
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True))


def main() -> int:
    path, version = sys.argv[1], int(sys.argv[2])
    dt = deltalake.DeltaTable(path, version=version)
    import pyarrow

    mapped = dt.metadata().configuration.get("delta.columnMapping.mode", "none") != "none"
    if mapped:
        # deltalake's pyarrow dataset reads Parquet columns by their logical names; its own
        # engine (DataFusion) follows the column mapping, under the table's schema.
        query = deltalake.QueryBuilder().register("t", dt).execute("SELECT * FROM t")
        schema = pyarrow.schema(dt.schema().to_arrow())
        table = pyarrow.table(query.read_all()).cast(schema)
    else:
        table = pyarrow.table(dt.to_pyarrow_dataset().to_table())
    rows = rows_of(table)
    # polars reads no table with column mapping (Delta reader version 2); every other table it
    # must read alike. It keeps neither field metadata nor every Arrow type: read its table
    # under deltalake's schema, so renamed columns map back to attribute names the same way.
    if not mapped:
        by_polars = polars.read_delta(path, version=version).to_arrow()
        assert by_polars.schema.names == table.schema.names, (by_polars.schema, table.schema)
        from_polars = rows_of(by_polars.cast(table.schema))
        assert from_polars == rows, "polars.read_delta and deltalake disagree"
    duck = subprocess.run(
        [os.environ["DDBSNAP_DUCKDB_PYTHON"], os.path.join(os.path.dirname(__file__), "duck_delta.py"), path, str(version)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert duck.returncode == 0, duck.stderr
    by_deltalake = canonical.rows(table.schema.names, [tuple(r.values()) for r in table.to_pylist()])
    assert json.loads(duck.stdout) == json.loads(json.dumps(by_deltalake)), "DuckDB's delta extension and deltalake disagree"
    protocol = dt.protocol()
    files = []
    for uri in dt.file_uris():
        local = urllib.parse.unquote(uri[len("file://"):]) if uri.startswith("file://") else uri
        files.append(os.path.relpath(local, os.path.abspath(path)))
    print(
        json.dumps(
            {
                "version": dt.version(),
                "protocol": [protocol.min_reader_version, protocol.min_writer_version],
                "columns": table.schema.names,
                "files": sorted(files),
                "rows": rows,
            }
        )
    )
    sys.stdout.flush()
    # deltalake's runtime can abort while the interpreter shuts down; the answer is out.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
