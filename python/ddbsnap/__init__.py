"""ddbsnap: copy a DynamoDB table into lossless Parquet snapshots or a Delta Lake table.

Every function takes the command line's options as keyword arguments (``read_fraction=0.25``
for ``--read-fraction 0.25``, ``resume=True`` for ``--resume``, lists for comma-separated
values), runs in this process, and returns what ``--json`` prints, as a dict. Errors raise a
subclass of :class:`DdbsnapError`, one per exit code of the command line, with the same
one-line message. Ctrl-C (KeyboardInterrupt) stops a run within about a second; a snapshot
keeps its checkpoint, so the same call with ``resume=True`` continues it.

Credentials and region come from the usual AWS chain (environment, profiles, SSO, instance
roles), or ``profile=``, ``region=`` and ``endpoint_url=``.
"""

import json as _json
import shutil as _shutil
import tempfile as _tempfile

from . import _native
from ._types import (
    ArrowStream,
    Compaction,
    DeltaCommit,
    MergeStats,
    ShardRead,
    Summary,
    SyncSummary,
    Vacuum,
)

__version__ = _native.version()

__all__ = [
    "ArrowStream",
    "Compaction",
    "DeltaCommit",
    "MergeStats",
    "ShardRead",
    "Summary",
    "SyncSummary",
    "Vacuum",
    "read",
    "read_export",
    "snapshot",
    "describe",
    "convert_export",
    "apply",
    "commit",
    "optimize",
    "vacuum",
    "sync",
    "DdbsnapError",
    "UsageError",
    "NotFoundError",
    "AuthError",
    "NetworkError",
    "DestinationError",
    "DataError",
    "AlreadyExistsError",
    "ThrottledError",
    "NotReadyError",
    "OutOfOrderError",
    "StreamGapError",
    "InterruptedRunError",
]


class DdbsnapError(Exception):
    """A failed run. ``exit_code`` is the command line's exit code for it."""

    exit_code = 1


class UsageError(DdbsnapError):
    """Bad arguments or options (exit code 2)."""

    exit_code = 2


class NotFoundError(DdbsnapError):
    """The table or index does not exist (exit code 3)."""

    exit_code = 3


class AuthError(DdbsnapError):
    """Missing or refused credentials (exit code 4)."""

    exit_code = 4


class NetworkError(DdbsnapError):
    """DynamoDB or S3 could not be reached (exit code 5)."""

    exit_code = 5


class DestinationError(DdbsnapError):
    """The destination (or an export's bucket) failed (exit code 6)."""

    exit_code = 6


class DataError(DdbsnapError):
    """Data that cannot be represented, or a damaged export (exit code 7)."""

    exit_code = 7


class AlreadyExistsError(DdbsnapError):
    """The destination holds a snapshot or an unfinished run (exit code 8)."""

    exit_code = 8


class ThrottledError(DdbsnapError):
    """DynamoDB kept throttling past the retry timeout (exit code 9)."""

    exit_code = 9


class NotReadyError(DdbsnapError):
    """``commit`` of a split run before every shard finished (exit code 10)."""

    exit_code = 10


class OutOfOrderError(DdbsnapError):
    """A change set that does not continue the table: older than what it holds, or after a
    gap (exit code 11; nothing was written). ``on_gap="force"`` applies a gapped one anyway,
    ``on_gap="refresh"`` reads the whole table instead where the command can."""

    exit_code = 11


class StreamGapError(DdbsnapError):
    """``sync``: changes of the table's DynamoDB stream were lost before they were read (a
    position older than the stream's 24 hours, a dropped shard, a new stream); exit code 12,
    nothing was written. ``on_gap="refresh"`` starts over from a full load."""

    exit_code = 12


class InterruptedRunError(DdbsnapError):
    """The run was interrupted; resume a snapshot with ``resume=True``, a sync by calling it
    again (exit code 130)."""

    exit_code = 130


_BY_CODE = {cls.exit_code: cls for cls in DdbsnapError.__subclasses__()}


def _flags(options):
    argv = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, ",".join(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv


def _run(*argv, **options):
    try:
        text = _native.run_json(["ddbsnap", *argv, *_flags(options)])
    except _native.Failure as failure:
        code, message = failure.args
        raise _BY_CODE.get(code, DdbsnapError)(message) from None
    return _json.loads(text)


def snapshot(table, to, **options):
    """Snapshot ``table`` to ``to`` (a directory or ``s3://bucket/prefix``); returns the run's
    summary. Options are ``ddbsnap snapshot``'s (``read_fraction``, ``segments``, ``columns``,
    ``filter_attr``, ``since``, ``refresh_every="7d"``, ``format="delta"``, ``mode="export"``,
    ``resume``, ...)."""
    return _run("snapshot", table, "--to", to, **options)


def describe(table, **options):
    """What a snapshot of ``table`` would read and cost: its keys, capacity, size, point-in-time
    recovery status and indexes."""
    return _run("describe", table, "--json", **options)


def convert_export(export, to, **options):
    """Convert the DynamoDB export at ``export`` (its ``AWSDynamoDB/<export-id>`` folder) to a
    snapshot (or, with ``format="delta"``, a Delta table) at ``to``; ``key=["pk", "sk"]``."""
    return _run("convert-export", export, "--to", to, **options)


def apply(changes, to_snapshot, out, **options):
    """Apply the change log ``changes`` to the snapshot ``to_snapshot``, writing ``out``."""
    return _run("apply", changes, "--to-snapshot", to_snapshot, "--out", out, **options)


def commit(to, shards, **options):
    """Publish the run split into ``shards`` shards at ``to`` once every shard has finished
    (``ddbsnap commit``); raises :class:`NotReadyError`, changing nothing, before that. See
    :mod:`ddbsnap.spark` for running the shards as Spark tasks."""
    return _run("commit", to, "--shards", str(shards), **options)


def optimize(table, **options):
    """Compact the small files of the Delta table ``table`` (a folder or ``s3://bucket/prefix``)
    into files of the target size (``file_size=128``, MiB) in one commit that changes no row
    (``ddbsnap optimize``); returns what it did (``version`` is None when there was nothing to
    compact)."""
    return _run("optimize", table, "--json", **options)


def sync(table, to, **options):
    """Keep the Delta table at ``to`` current from the DynamoDB stream of ``table``
    (``ddbsnap sync``): the first call loads the whole table, every later one merges the
    stream's new records and reads no table capacity (a Databricks job every few minutes).
    ``refresh=True`` loads it in full again, ``keep_expired=True`` keeps rows Time to Live
    deleted, ``enable_stream=True`` gives the table a stream when it has none,
    ``changes="s3://..."`` also appends every record read to a table of changes,
    ``bootstrap="export", export_to="s3://..."`` loads the table through an export. Returns what
    it did: ``records``, each commit's summary under ``commits``, ``lag_seconds``."""
    return _run("sync", table, "--to", to, "--json", **options)


def vacuum(table, **options):
    """Remove the files of the Delta table ``table`` that no version inside the retention
    window needs (``ddbsnap vacuum``): ``retain="168h"`` (default: the table's
    ``delta.deletedFileRetentionDuration``), ``dry_run=True`` lists them, ``force=True`` allows
    a window below the table's retention. Returns the files removed (or that would be)."""
    return _run("vacuum", table, "--json", **options)


def _batches(run, **options):
    """Run ``run`` into a temporary folder and hand out its files as one stream of record
    batches; the folder is removed once the stream is consumed or dropped."""
    folder = _tempfile.mkdtemp(prefix="ddbsnap-read-")
    try:
        run(folder, **options)
        return _native.open_snapshot(folder, owned=True)
    except BaseException:
        _shutil.rmtree(folder, ignore_errors=True)
        raise


def read(table, columns=None, **options):
    """Read ``table`` into memory as Arrow record batches, with the same type mapping,
    throttling and options as :func:`snapshot` (``read_fraction``, ``filter_attr``, ...).

    Returns an object with ``__arrow_c_stream__``: pass it to ``pyarrow.table(...)``,
    ``polars.DataFrame(...)`` or any Arrow PyCapsule consumer, once. The items go through a
    temporary local snapshot (bounded memory while reading the table), removed afterwards.
    """
    def run(folder, **opts):
        return snapshot(table, folder, columns=columns, **opts)

    return _batches(run, **options)


def read_export(export, **options):
    """Read the DynamoDB export at ``export`` (its ``AWSDynamoDB/<export-id>`` folder, on S3 or
    local) as Arrow record batches, typed as :func:`convert_export` types them (``key=[...]``
    names the key attributes). An incremental export gives its change log."""
    def run(folder, **opts):
        return convert_export(export, folder, **opts)

    return _batches(run, **options)
