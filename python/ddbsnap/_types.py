"""The types the Python API returns: what ``--json`` prints, as typed dictionaries, and the
Arrow stream the readers give. Importable at run time (``ddbsnap.Summary``, ...) as well as by
type checkers."""

from __future__ import annotations

from typing import Any, Protocol, TypedDict

__all__ = [
    "ArrowStream",
    "MergeStats",
    "DeltaCommit",
    "Summary",
    "ShardRead",
    "SyncSummary",
    "Compaction",
    "Vacuum",
]


class ArrowStream(Protocol):
    """Arrow record batches, once: pass to ``pyarrow.table(...)``, ``polars.DataFrame(...)``
    or any Arrow PyCapsule consumer."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...


class MergeStats(TypedDict):
    """What a MERGE commit did."""

    rows_inserted: int
    rows_updated: int
    rows_deleted: int
    rows_copied: int
    bytes_rewritten: int
    bytes_added: int
    files_compacted: int


class DeltaCommit(TypedDict):
    """The Delta version a run committed."""

    version: int
    files_removed: int
    files_added: int
    merge: MergeStats | None
    already_committed: bool
    log_checkpoint: bool
    log_files_removed: int
    attempts: int


class Summary(TypedDict, total=False):
    """What a run did (``--json``)."""

    url: str
    table: str
    items: int
    items_scanned: int
    items_expired: int
    files: int
    bytes: int
    consumed_rcu: float
    pages: int
    segments: int
    read_budget: dict[str, Any]
    concurrency: int
    throttled_requests: int
    retried_requests: int
    files_rewritten: int
    runs: int
    already_committed: bool
    watermark: dict[str, Any] | None
    delta: DeltaCommit | None
    changes: DeltaCommit
    seconds: float
    columns_not_found: list[str]
    shard: dict[str, Any]
    already_applied: bool
    window_note: str


class ShardRead(TypedDict):
    """What a sync read of one shard."""

    shard: str
    records: int
    lag_seconds: float | None


class SyncSummary(TypedDict, total=False):
    """What a sync did (``--json``)."""

    url: str
    table: str
    stream: str
    bootstrap: Summary | None
    commits: list[Summary]
    records: int
    expired_deletes: int
    get_records_calls: int
    lag_seconds: float | None
    behind_seconds: float | None
    version: int | None
    shards: list[ShardRead]
    changes: str
    changes_version: int


class Compaction(TypedDict):
    """What ``optimize`` did."""

    table: str
    version: int | None
    files_before: int
    files_after: int
    files_removed: int
    files_added: int
    rows: int
    bytes_removed: int
    bytes_added: int
    log_checkpoint: bool
    seconds: float


class Vacuum(TypedDict):
    """What ``vacuum`` removed (or, with ``dry_run``, would)."""

    table: str
    dry_run: bool
    retain_hours: float
    oldest_version_kept: int
    files: list[str]
    bytes: int
