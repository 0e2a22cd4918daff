//! The validated configuration of a snapshot run, and its builder for library users.

use chrono::{DateTime, Utc};

use crate::aws::AwsOptions;
use crate::convert::NumberMode;
use crate::error::{Error, Result};
use crate::filter::{RawFilter, TsFormat};
use crate::sink::{Compression, Destination, S3Options};

/// Default target size of one data file.
pub const DEFAULT_TARGET_FILE_BYTES: usize = 128 << 20;
pub use crate::sink::writer::{DEFAULT_PART_BYTES, DEFAULT_ROW_GROUP_BYTES, DEFAULT_ZSTD_LEVEL};
/// Default number of segments scanned at once.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 8;
/// How long a segment keeps retrying throttled or failed requests before giving up.
pub const DEFAULT_RETRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
/// Longest time a data file stays open, so a slow scan still checkpoints regularly.
pub const DEFAULT_CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);
/// Default overlap of `--since last` with the previous run's window.
pub const DEFAULT_OVERLAP: std::time::Duration = std::time::Duration::from_secs(5);
/// DynamoDB's limit on TotalSegments.
pub const MAX_SEGMENTS: u32 = 1_000_000;

/// Everything a snapshot run needs, validated: made only by [`SnapshotConfig::builder`], whose
/// `build` checks every option, and read through its accessors.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SnapshotConfig {
    /// Table name or ARN.
    pub(crate) table: String,
    /// Region, profile and endpoint for DynamoDB (and the credentials for S3).
    pub(crate) aws: AwsOptions,
    /// What is read and how fast.
    pub(crate) read: ReadOptions,
    /// Read the table through DynamoDB's Export to S3 instead of a Scan.
    pub(crate) export: Option<crate::source::export::ExportRequest>,
    /// Where and how the run writes.
    pub(crate) output: OutputOptions,
    /// Resuming, replacing, splitting and gaps.
    pub(crate) run: RunOptions,
}

/// What a run reads and how fast: the Scan and its read budget.
#[derive(Debug, Clone)]
pub(crate) struct ReadOptions {
    /// TotalSegments; `None` picks [`crate::plan::auto_segments`].
    pub(crate) segments: Option<u32>,
    /// Segments scanned at once; `None` lets the read budget decide (one per 400 RCU/s, 1 to 8).
    pub(crate) concurrency: Option<u32>,
    /// Leave out items whose TTL attribute is in the past (DynamoDB keeps them visible until
    /// Time to Live deletes them).
    pub(crate) skip_expired: bool,
    /// Strongly consistent reads (twice the RCU).
    pub(crate) consistent_read: bool,
    /// Fraction of the table's read capacity to use.
    pub(crate) read_fraction: f64,
    /// Absolute ceiling on the read budget in RCU/s (the budget itself for on-demand tables
    /// without a declared capacity).
    pub(crate) max_rcu: Option<f64>,
    /// Give up on a segment after this long without a successful page.
    pub(crate) retry_timeout: std::time::Duration,
    /// Secondary index to scan instead of the table.
    pub(crate) index: Option<String>,
    /// Attributes to read (empty: all).
    pub(crate) columns: Vec<String>,
    /// A raw FilterExpression.
    pub(crate) raw_filter: Option<RawFilter>,
    /// An incremental pull on a timestamp attribute; `--to` is then a dataset root.
    pub(crate) time: Option<TimeSpec>,
}

/// Where a run writes and how: the destination, the table format and the data files.
#[derive(Debug, Clone)]
pub(crate) struct OutputOptions {
    /// Where the snapshot goes.
    pub(crate) destination: Destination,
    /// S3-only settings.
    pub(crate) s3: S3Options,
    /// How the run is published: a snapshot folder or a Delta table version.
    pub(crate) format: crate::format::TableFormat,
    /// Number mapping.
    pub(crate) numbers: NumberMode,
    /// How a Delta table the run creates names its columns.
    pub(crate) column_mapping: crate::format::ColumnMapping,
    /// Parquet compression.
    pub(crate) compression: Compression,
    /// Zstandard level (1-22), when `compression` is zstd.
    pub(crate) zstd_level: i32,
    /// Roll data files at about this size.
    pub(crate) target_file_bytes: usize,
    /// Flush a row group at about this in-memory size.
    pub(crate) row_group_bytes: usize,
    /// Multipart upload part size.
    pub(crate) part_bytes: usize,
    /// Conversion threads, each writing its own files; `None`: one per two cores, one per
    /// 64 MiB of input at most.
    pub(crate) threads: Option<u32>,
}

/// How a run relates to the runs before it: resuming, replacing, splitting, gaps.
#[derive(Debug, Clone)]
pub(crate) struct RunOptions {
    /// Replace a snapshot already at the destination.
    pub(crate) overwrite: bool,
    /// Continue the unfinished snapshot at the destination from its checkpoint.
    pub(crate) resume: bool,
    /// Longest time a data file stays open (each closed file is a checkpoint).
    pub(crate) checkpoint_interval: std::time::Duration,
    /// This process is one shard of a split run (`--shard I/N`): it reads its part and saves
    /// its record; `ddbsnap commit` publishes the run.
    pub(crate) shard: Option<crate::shard::Shard>,
    /// The start time every shard of a split run gives (`--run-id`): it names the run's
    /// `run=` folder when runs have folders (Delta tables, incremental pulls).
    pub(crate) run_id: Option<DateTime<Utc>>,
    /// What to do with a change set that starts after what the table holds (`--on-gap`).
    pub(crate) on_gap: crate::window::OnGap,
    /// A `--since last` pull reads the whole table when its last full read is older.
    pub(crate) refresh_every: Option<std::time::Duration>,
    /// The DynamoDB stream a full load of `sync` records (where the stream is read from next).
    pub(crate) stream: Option<crate::source::stream::StreamState>,
}

impl SnapshotConfig {
    /// The table name or ARN.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Where the run writes.
    pub fn destination(&self) -> &Destination {
        &self.output.destination
    }

    /// Region, profile and endpoint for DynamoDB (and the credentials for S3).
    pub fn aws(&self) -> &AwsOptions {
        &self.aws
    }

    /// S3-only settings.
    pub fn s3(&self) -> &S3Options {
        &self.output.s3
    }

    /// How the run is published.
    pub fn format(&self) -> crate::format::TableFormat {
        self.output.format
    }
}

/// The timestamp window as asked for (resolved against the table and the previous runs when
/// the snapshot starts).
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSpec {
    /// Attribute holding the timestamp.
    pub attribute: String,
    /// How it holds time; `None`: detected.
    pub format: Option<TsFormat>,
    /// Inclusive lower bound.
    pub since: Option<Since>,
    /// Exclusive upper bound.
    pub until: Option<DateTime<Utc>>,
    /// How far `--since last` reaches back before the previous window's end.
    pub overlap: std::time::Duration,
}

/// A lower bound: a time, or the end of the previous run's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Since {
    /// This instant.
    At(DateTime<Utc>),
    /// The previous committed run's window end, minus the overlap.
    Last,
}

impl SnapshotConfig {
    /// Start a configuration for `table` written to `to` (a directory or `s3://bucket/prefix`).
    pub fn builder(table: impl Into<String>, to: impl Into<String>) -> SnapshotConfigBuilder {
        SnapshotConfigBuilder {
            table: table.into(),
            to: to.into(),
            aws: AwsOptions::default(),
            s3: S3Options::default(),
            segments: None,
            concurrency: None,
            threads: None,
            skip_expired: false,
            consistent_read: false,
            read_fraction: crate::throttle::DEFAULT_READ_FRACTION,
            max_rcu: None,
            retry_timeout: DEFAULT_RETRY_TIMEOUT,
            numbers: NumberMode::Exact,
            column_mapping: crate::format::ColumnMapping::None,
            compression: Compression::Zstd,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            target_file_bytes: DEFAULT_TARGET_FILE_BYTES,
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
            part_bytes: DEFAULT_PART_BYTES,
            overwrite: false,
            resume: false,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            index: None,
            columns: Vec::new(),
            raw_filter: None,
            time: None,
            export: None,
            format: crate::format::TableFormat::Snapshot,
            shard: None,
            run_id: None,
            on_gap: crate::window::OnGap::Fail,
            refresh_every: None,
        }
    }
}

/// Builder for [`SnapshotConfig`]; [`SnapshotConfigBuilder::build`] validates.
#[derive(Debug, Clone)]
#[must_use]
pub struct SnapshotConfigBuilder {
    table: String,
    to: String,
    aws: AwsOptions,
    s3: S3Options,
    segments: Option<u32>,
    concurrency: Option<u32>,
    threads: Option<u32>,
    skip_expired: bool,
    consistent_read: bool,
    read_fraction: f64,
    max_rcu: Option<f64>,
    retry_timeout: std::time::Duration,
    numbers: NumberMode,
    column_mapping: crate::format::ColumnMapping,
    compression: Compression,
    zstd_level: i32,
    target_file_bytes: usize,
    row_group_bytes: usize,
    part_bytes: usize,
    overwrite: bool,
    resume: bool,
    checkpoint_interval: std::time::Duration,
    index: Option<String>,
    columns: Vec<String>,
    raw_filter: Option<RawFilter>,
    time: Option<TimeSpec>,
    export: Option<crate::source::export::ExportRequest>,
    format: crate::format::TableFormat,
    shard: Option<crate::shard::Shard>,
    run_id: Option<DateTime<Utc>>,
    on_gap: crate::window::OnGap,
    refresh_every: Option<std::time::Duration>,
}

impl SnapshotConfigBuilder {
    /// With `--since last`: read the whole table instead of pulling when its last full read
    /// is older than `every` (how deleted items leave a table fed by pulls).
    pub fn refresh_every(mut self, every: std::time::Duration) -> Self {
        self.refresh_every = Some(every);
        self
    }

    /// What to do with a change set that starts after what the table holds (see
    /// [`crate::window`]); refused by default.
    pub fn on_gap(mut self, on_gap: crate::window::OnGap) -> Self {
        self.on_gap = on_gap;
        self
    }

    /// Run as one shard of a split run (see [`crate::shard`]).
    pub fn shard(mut self, shard: crate::shard::Shard) -> Self {
        self.shard = Some(shard);
        self
    }

    /// The start time shared by every shard of a split run, naming its `run=` folder.
    pub fn run_id(mut self, started: DateTime<Utc>) -> Self {
        self.run_id = Some(started);
        self
    }

    /// Publish as a snapshot folder (default) or as a Delta table version.
    pub fn format(mut self, format: crate::format::TableFormat) -> Self {
        self.format = format;
        self
    }

    /// AWS region.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.aws.region = Some(region.into());
        self
    }
    /// Region, profile, endpoint and roles at once (replacing any set before).
    pub fn aws(mut self, options: AwsOptions) -> Self {
        self.aws = options;
        self
    }
    /// Assume this IAM role for DynamoDB (and S3, unless [`Self::s3_role_arn`] is set).
    pub fn role_arn(mut self, arn: impl Into<String>) -> Self {
        self.aws.role_arn = Some(arn.into());
        self
    }
    /// Assume this IAM role for S3.
    pub fn s3_role_arn(mut self, arn: impl Into<String>) -> Self {
        self.aws.s3_role_arn = Some(arn.into());
        self
    }
    /// External ID for the assumed roles.
    pub fn external_id(mut self, id: impl Into<String>) -> Self {
        self.aws.external_id = Some(id.into());
        self
    }
    /// Session name of the assumed roles.
    pub fn role_session_name(mut self, name: impl Into<String>) -> Self {
        self.aws.role_session_name = Some(name.into());
        self
    }
    /// Named AWS profile.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.aws.profile = Some(profile.into());
        self
    }
    /// DynamoDB endpoint override.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.aws.endpoint_url = Some(url.into());
        self
    }
    /// S3 endpoint override.
    pub fn s3_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.s3.endpoint_url = Some(url.into());
        self
    }
    /// S3 bucket region.
    pub fn s3_region(mut self, region: impl Into<String>) -> Self {
        self.s3.region = Some(region.into());
        self
    }
    /// TotalSegments (default: automatic).
    pub fn segments(mut self, segments: u32) -> Self {
        self.segments = Some(segments);
        self
    }
    /// Segments scanned at once.
    pub fn concurrency(mut self, concurrency: u32) -> Self {
        self.concurrency = Some(concurrency);
        self
    }
    /// Conversion threads, each writing its own data files (default: one per two cores, fewer
    /// for small inputs).
    pub fn threads(mut self, threads: u32) -> Self {
        self.threads = Some(threads);
        self
    }
    /// Leave out items whose TTL attribute is in the past (Time to Live must be enabled).
    pub fn skip_expired(mut self, yes: bool) -> Self {
        self.skip_expired = yes;
        self
    }
    /// Strongly consistent reads.
    pub fn consistent_read(mut self, yes: bool) -> Self {
        self.consistent_read = yes;
        self
    }
    /// Fraction of the table's read capacity to use, in (0, 1].
    pub fn read_fraction(mut self, fraction: f64) -> Self {
        self.read_fraction = fraction;
        self
    }
    /// Absolute ceiling on the read budget, in RCU per second.
    pub fn max_rcu(mut self, rcu: f64) -> Self {
        self.max_rcu = Some(rcu);
        self
    }
    /// Give up on a segment after this long without a successful page.
    pub fn retry_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.retry_timeout = timeout;
        self
    }
    /// Number mapping.
    pub fn numbers(mut self, mode: NumberMode) -> Self {
        self.numbers = mode;
        self
    }
    /// Parquet compression.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }
    /// How a Delta table the run creates names its columns (ignored for snapshots; a table
    /// that exists keeps its own).
    pub fn column_mapping(mut self, mapping: crate::format::ColumnMapping) -> Self {
        self.column_mapping = mapping;
        self
    }
    /// Zstandard level, 1 to 22.
    pub fn zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = level;
        self
    }
    /// Target data file size in bytes.
    pub fn target_file_bytes(mut self, bytes: usize) -> Self {
        self.target_file_bytes = bytes;
        self
    }
    /// Row group flush size in bytes.
    pub fn row_group_bytes(mut self, bytes: usize) -> Self {
        self.row_group_bytes = bytes;
        self
    }
    /// Multipart part size in bytes (at least 5 MiB, S3's minimum).
    pub fn part_bytes(mut self, bytes: usize) -> Self {
        self.part_bytes = bytes;
        self
    }
    /// Replace an existing snapshot at the destination.
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Continue the unfinished snapshot at the destination from its `_checkpoint.json`.
    pub fn resume(mut self, yes: bool) -> Self {
        self.resume = yes;
        self
    }

    /// Close the open data file (and checkpoint) at least this often.
    pub fn checkpoint_interval(mut self, interval: std::time::Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// Scan this secondary index (global or local) instead of the table.
    pub fn index(mut self, name: impl Into<String>) -> Self {
        self.index = Some(name.into());
        self
    }

    /// Read only these top-level attributes (key attributes are always read).
    pub fn columns(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.columns = names.into_iter().map(Into::into).collect();
        self
    }

    /// Apply a FilterExpression (see [`RawFilter::parse`]).
    pub fn raw_filter(mut self, filter: RawFilter) -> Self {
        self.raw_filter = Some(filter);
        self
    }

    /// Pull only items whose timestamp attribute is in a window; each run becomes
    /// `<to>/run=<utc-id>/`.
    pub fn time_window(mut self, spec: TimeSpec) -> Self {
        self.time = Some(spec);
        self
    }

    /// Read the table with DynamoDB's Export to S3 (`--mode export`) instead of a Scan.
    pub fn export(mut self, request: crate::source::export::ExportRequest) -> Self {
        self.export = Some(request);
        self
    }

    /// Validate and build.
    pub fn build(self) -> Result<SnapshotConfig> {
        if self.table.trim().is_empty() {
            return Err(Error::invalid("the table name is empty"));
        }
        let destination = Destination::parse(&self.to)?;
        self.check_reading()?;
        self.check_runs()?;
        self.check_limits()?;
        Ok(SnapshotConfig {
            table: self.table,
            aws: self.aws,
            read: ReadOptions {
                segments: self.segments,
                concurrency: self.concurrency,
                skip_expired: self.skip_expired,
                consistent_read: self.consistent_read,
                read_fraction: self.read_fraction,
                max_rcu: self.max_rcu,
                retry_timeout: self.retry_timeout,
                index: self.index,
                columns: self.columns,
                raw_filter: self.raw_filter,
                time: self.time,
            },
            export: self.export,
            output: OutputOptions {
                destination,
                s3: self.s3,
                format: self.format,
                numbers: self.numbers,
                column_mapping: self.column_mapping,
                compression: self.compression,
                zstd_level: self.zstd_level,
                target_file_bytes: self.target_file_bytes,
                row_group_bytes: self.row_group_bytes,
                part_bytes: self.part_bytes,
                threads: self.threads,
            },
            run: RunOptions {
                overwrite: self.overwrite,
                resume: self.resume,
                checkpoint_interval: self.checkpoint_interval,
                shard: self.shard,
                run_id: self.run_id,
                on_gap: self.on_gap,
                refresh_every: self.refresh_every,
                stream: None,
            },
        })
    }

    /// What is read and how fast: segments, budget, columns, the timestamp window, resume.
    fn check_reading(&self) -> Result<()> {
        if let Some(s) = self.segments
            && !(1..=MAX_SEGMENTS).contains(&s)
        {
            return Err(Error::invalid(format!(
                "--segments must be between 1 and {MAX_SEGMENTS}, got {s}"
            )));
        }
        if !(self.read_fraction > 0.0 && self.read_fraction <= 1.0) {
            return Err(Error::invalid(format!(
                "--read-fraction must be greater than 0 and at most 1, got {}",
                self.read_fraction
            )));
        }
        if let Some(m) = self.max_rcu
            && !(m.is_finite() && m > 0.0)
        {
            return Err(Error::invalid(format!(
                "--max-rcu must be a positive number, got {m}"
            )));
        }
        if self.resume && self.overwrite {
            return Err(Error::invalid(
                "--resume continues the snapshot at the destination and --overwrite replaces \
                 it; give one of them",
            ));
        }
        if self.checkpoint_interval < std::time::Duration::from_secs(1) {
            return Err(Error::invalid(
                "the checkpoint interval must be at least 1 second",
            ));
        }
        if self.columns.iter().any(|c| c.trim().is_empty()) {
            return Err(Error::invalid("--columns holds an empty attribute name"));
        }
        if let Some(time) = &self.time {
            if time.attribute.is_empty() {
                return Err(Error::invalid("--filter-attr is empty"));
            }
            if let (Some(Since::At(since)), Some(until)) = (time.since, time.until)
                && since >= until
            {
                return Err(Error::invalid(format!(
                    "--since ({since}) must be before --until ({until})"
                )));
            }
        }
        Ok(())
    }

    /// How runs are published and split: export windows, Delta, shards and run ids.
    fn check_runs(&self) -> Result<()> {
        let since_last = self
            .time
            .as_ref()
            .is_some_and(|t| t.since == Some(Since::Last));
        if self.refresh_every.is_some() && !since_last {
            return Err(Error::invalid(
                "--refresh-every decides when a --since last pull reads the whole table \
                 instead; give it with --filter-attr ATTR --since last",
            ));
        }
        if self.format != crate::format::TableFormat::Delta
            && self.export.as_ref().is_some_and(|e| {
                matches!(
                    e.incremental,
                    Some(crate::source::export::IncrementalRange::SinceLast { .. })
                )
            })
        {
            return Err(Error::invalid(
                "--mode export --incremental --since last needs --format delta: the Delta \
                 table records where the last export ended (or give --since a time)",
            ));
        }
        if self.format == crate::format::TableFormat::Delta && self.overwrite {
            return Err(Error::invalid(
                "--overwrite does not apply to --format delta: every run is a new version of \
                 the table (earlier versions stay for time travel)",
            ));
        }
        if let Some(shard) = self.shard {
            if self.overwrite {
                return Err(Error::invalid(format!(
                    "--overwrite does not apply to --shard {shard}: the other shards write to \
                     the same place; give the shards an empty location"
                )));
            }
            if self.export.is_some() {
                return Err(Error::invalid(
                    "--shard does not apply to --mode export: each shard would start an export; \
                     export once, then convert it with `ddbsnap convert-export --shard I/N`",
                ));
            }
            let runs_have_folders = self.time.is_some() || self.format.runs_in_folders();
            if runs_have_folders && self.run_id.is_none() {
                return Err(Error::invalid(format!(
                    "--shard {shard} into a Delta table or an incremental pull needs --run-id \
                     (the run's start time, the same for every shard, e.g. 2026-12-01T06:00:00Z) \
                     so that the shards write into one run= folder"
                )));
            }
        } else if self.run_id.is_some() {
            return Err(Error::invalid(
                "--run-id names the run= folder of a split run; give it with --shard",
            ));
        }
        Ok(())
    }

    /// Counts, sizes and endpoints.
    fn check_limits(&self) -> Result<()> {
        if self.concurrency == Some(0) {
            return Err(Error::invalid("--concurrency must be at least 1"));
        }
        if self.threads == Some(0) {
            return Err(Error::invalid("--threads must be at least 1"));
        }
        if !(1..=22).contains(&self.zstd_level) {
            return Err(Error::invalid(format!(
                "--zstd-level must be between 1 and 22, got {}",
                self.zstd_level
            )));
        }
        if self.target_file_bytes < (1 << 20) {
            return Err(Error::invalid(
                "the target file size must be at least 1 MiB",
            ));
        }
        if self.row_group_bytes < (1 << 20) {
            return Err(Error::invalid("the row group size must be at least 1 MiB"));
        }
        if self.part_bytes < (5 << 20) {
            return Err(Error::invalid(
                "the multipart part size must be at least 5 MiB (S3's minimum)",
            ));
        }
        for url in [&self.aws.endpoint_url, &self.s3.endpoint_url]
            .into_iter()
            .flatten()
        {
            let parsed = url::Url::parse(url)
                .map_err(|e| Error::invalid(format!("invalid endpoint URL '{url}': {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(Error::invalid(format!(
                    "invalid endpoint URL '{url}': use http:// or https://"
                )));
            }
        }
        Ok(())
    }
}

/// Units of a duration option, largest first: weeks, days, hours, minutes, seconds.
const DURATION_UNITS: [(char, u64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

/// Parse a duration option such as `7d`, `12h`, `90m` or `30s` (a whole number and one unit:
/// `w`, `d`, `h`, `m` or `s`).
pub(crate) fn parse_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    match parse_span(text)? {
        std::time::Duration::ZERO => Err(format!(
            "'{}' is not a duration: it must be longer than 0",
            text.trim()
        )),
        span => Ok(span),
    }
}

/// [`parse_duration`] that also takes zero (`0h`: a retention of nothing).
pub(crate) fn parse_span(text: &str) -> std::result::Result<std::time::Duration, String> {
    let bad =
        || format!("'{text}' is not a duration: give a whole number and a unit, e.g. 7d, 12h, 30m");
    let text = text.trim();
    let unit = text.chars().last().ok_or_else(bad)?;
    let (_, seconds) = DURATION_UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .ok_or_else(bad)?;
    let count: u64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    count
        .checked_mul(*seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(bad)
}

/// A duration as [`parse_duration`] reads it, in the largest unit that divides it.
pub(crate) fn show_duration(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    let (unit, size) = DURATION_UNITS
        .iter()
        .find(|(_, size)| secs > 0 && secs.is_multiple_of(*size))
        .unwrap_or(&('s', 1));
    format!("{}{unit}", secs / size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert!(SnapshotConfig::builder("t", "./x").build().is_ok());
        for f in [0.0, -0.5, 1.5, f64::NAN] {
            let r = SnapshotConfig::builder("t", "./x").read_fraction(f).build();
            assert!(r.is_err(), "{f}");
        }
        assert!(
            SnapshotConfig::builder("t", "./x")
                .max_rcu(-1.0)
                .build()
                .is_err()
        );
        assert!(SnapshotConfig::builder("", "./x").build().is_err());
        assert!(SnapshotConfig::builder("t", "gs://b").build().is_err());
        assert!(
            SnapshotConfig::builder("t", "./x")
                .segments(0)
                .build()
                .is_err()
        );
        assert!(
            SnapshotConfig::builder("t", "./x")
                .concurrency(0)
                .build()
                .is_err()
        );
        assert!(
            SnapshotConfig::builder("t", "./x")
                .endpoint_url("localhost:8000")
                .build()
                .is_err()
        );
    }

    #[test]
    fn durations_read_and_show_in_their_units() {
        for (text, secs, shown) in [
            ("7d", 604_800, "1w"),
            ("36h", 129_600, "36h"),
            ("90m", 5_400, "90m"),
            ("1s", 1, "1s"),
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(d.as_secs(), secs, "{text}");
            assert_eq!(show_duration(d), shown);
        }
        for bad in ["", "7", "d", "7x", "-1d", "0h", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
