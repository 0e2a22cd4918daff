"""Independent check of a ddbsnap snapshot with pyarrow.

Usage: check_snapshot.py SNAPSHOT_DIR EXPECTED_JSON

Reads the directory as a dataset with no options (files starting with `_` or `.` are ignored,
as Spark and Hive do), checks that every data file has the same schema, that the row count
matches the manifest, and compares every expected value: `plain` values are compared after
rendering pyarrow's value (numbers as canonical text, binary as hex, null struct fields dropped);
`{"$json": ...}` marks positions holding DynamoDB JSON text, compared as parsed JSON.
"""

import decimal
import json
import pathlib
import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def canon(d: decimal.Decimal) -> str:
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    if s in ("-0", "", "-"):
        s = "0"
    return s


def plain(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, decimal.Decimal):
        return canon(v)
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items() if x is not None}
    raise TypeError(f"unexpected value {v!r}")


def attribute(field) -> str:
    """The DynamoDB attribute name of a column or struct field: its name, or the name kept in
    its metadata when ddbsnap renamed it (attribute names that differ only in case)."""
    metadata = field.metadata or {}
    return metadata.get(b"ddbsnap.attribute", field.name.encode()).decode()


def restore(value, typ):
    """A value read by pyarrow, with struct fields under their attribute names."""
    if value is None:
        return None
    if pa.types.is_struct(typ):
        return {
            attribute(typ.field(i)): restore(value[typ.field(i).name], typ.field(i).type)
            for i in range(typ.num_fields)
        }
    if pa.types.is_list(typ):
        return [restore(v, typ.value_type) for v in value]
    return value


def check(got, want, where):
    if isinstance(want, dict) and set(want) == {"$json"}:
        assert isinstance(got, str), (where, got)
        assert json.loads(got) == want["$json"], (where, got, want)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (where, got, want)
        for i, (g, w) in enumerate(zip(got, want)):
            check(g, w, f"{where}[{i}]")
    elif isinstance(want, dict):
        assert isinstance(got, dict), (where, got)
        present = {k: v for k, v in got.items() if v is not None}
        assert set(present) == set(want), (where, sorted(present), sorted(want))
        for k in want:
            check(got[k], want[k], f"{where}.{k}")
    else:
        assert plain(got) == want, (where, plain(got), want)


def main() -> int:
    root = pathlib.Path(sys.argv[1])
    expected = json.loads(pathlib.Path(sys.argv[2]).read_text())
    manifest = json.loads((root / "_manifest.json").read_text())

    files = sorted(root.glob("*.parquet"))
    assert [f.name for f in files] == sorted(f["path"] for f in manifest["files"]), files
    schemas = {str(pq.read_schema(f).remove_metadata()) for f in files}
    assert len(schemas) == 1, f"data files have {len(schemas)} different schemas"

    table = ds.dataset(str(root), format="parquet").to_table()
    assert table.num_rows == manifest["items_written"], (table.num_rows, manifest["items_written"])
    # Column names as Spark and Databricks need them: unique without regard to case.
    for typ in [table.schema] + [f.type for f in table.schema if pa.types.is_struct(f.type)]:
        names = [f.name.lower() for f in typ]
        assert len(names) == len(set(names)), f"column names differ only in case: {names}"
    rows = {}
    for r in table.to_pylist():
        row = {attribute(f): restore(r[f.name], f.type) for f in table.schema}
        rows[row["pk"]] = row

    checked = 0
    for want in expected:
        pk = want["pk"]
        row = rows[pk]
        for name, value in want.items():
            check(row[name], value, f"{pk}/{name}")
            checked += 1
        # Attributes the item does not have read as null.
        for name, value in row.items():
            if name not in want:
                assert value is None, (pk, name, value)
    print(f"pyarrow: {table.num_rows} rows, {checked} values checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
