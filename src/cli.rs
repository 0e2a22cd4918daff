//! Command-line arguments (clap derive). Plain values only; [`SnapshotArgs::to_config`] turns
//! them into the validated [`SnapshotConfig`]. No I/O here.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Since, SnapshotConfig, TimeSpec};
use crate::convert::NumberMode;
use crate::error::Result;
use crate::filter::{RawFilter, parse_bound};
use crate::sink::Compression;

// Help headings, in the order `--help` shows them.
const SOURCE: &str = "Source";
const AWS: &str = "AWS access";
const BUDGET: &str = "Read budget";
const FILTERS: &str = "Filters";
const EXPORT: &str = "Export mode (--mode export)";
const OUTPUT: &str = "Output";
const PROGRESS: &str = "Progress";
const SHARDS: &str = "Shards (one run split over processes)";

/// `ddbsnap --version`: the version, and the commit it was built from when known (build.rs).
const VERSION: &str = env!("DDBSNAP_VERSION");

/// Snapshot a DynamoDB table into lossless Parquet on S3 or local disk.
#[derive(Debug, Parser)]
#[command(name = "ddbsnap", version = VERSION, about, long_about = None)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Print the cause chain of errors.
    #[arg(short, long, global = true, help_heading = PROGRESS)]
    pub verbose: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Scan a table and write a Parquet snapshot.
    Snapshot(Box<SnapshotArgs>),
    /// Convert an existing DynamoDB export (Export to S3, DynamoDB JSON or Ion) into a snapshot, with
    /// the same type mapping, files and manifest as `snapshot`. Reads no items from the table.
    ConvertExport(ConvertExportArgs),
    /// Merge a change log (a converted incremental export) into a snapshot and commit the
    /// result as a new full snapshot: latest write per key wins, deletes remove items. The
    /// change log must continue what the snapshot holds: the one applied last is a no-op, an
    /// older one or one after a gap is refused (exit code 11; see --on-gap).
    Apply(ApplyArgs),
    /// Publish a run split into shards (`--shard I/N`) once every shard has finished: join the
    /// shards' records, bring all files to one schema, write the manifest or commit one Delta
    /// version. Refused (exit code 10, nothing changed) while a shard has not finished.
    Commit(CommitArgs),
    /// Show a table's keys, capacity, size, PITR status and indexes, and what a full snapshot
    /// would read and how long it would take at the read budget. Reads no items.
    Describe(DescribeArgs),
    /// Compact the small files of a Delta table (`--format delta`) into files of the target
    /// size: one OPTIMIZE commit that changes no row. Runs that MERGE also do it by themselves
    /// once 16 small files have gathered.
    Optimize(OptimizeArgs),
    /// Keep a Delta table current from the table's DynamoDB stream: the first run loads the
    /// whole table (a Scan within the read budget), every later one merges the stream's new
    /// records (inserts, updates, deletes) and reads no table capacity. Needs a stream with new
    /// images (NEW_AND_OLD_IMAGES or NEW_IMAGE); a gap in it is exit code 12 (see --on-gap).
    Sync(Box<SyncArgs>),
    /// Remove the files of a Delta table that no version inside the retention window needs,
    /// as Delta's VACUUM does (time travel inside the window keeps working), and the folders of
    /// runs that never committed and whose checkpoint is older than the window.
    Vacuum(VacuumArgs),
}

/// How to reach S3, for the commands that only read and write storage (`commit`, `optimize`,
/// `vacuum`).
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// Region, profile and role for S3.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// S3 endpoint, for S3-compatible servers (else AWS_ENDPOINT_URL_S3, then
    /// AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL", help_heading = AWS)]
    pub s3_endpoint_url: Option<String>,
    /// Region of the S3 bucket.
    #[arg(long, help_heading = AWS)]
    pub s3_region: Option<String>,
}

impl StoreArgs {
    /// The S3 endpoint and region.
    pub(crate) fn s3(&self) -> crate::sink::S3Options {
        crate::sink::S3Options {
            endpoint_url: self.s3_endpoint_url.clone(),
            region: self.s3_region.clone(),
        }
    }
}

/// A Delta table and how to reach it (`optimize`, `vacuum`).
#[derive(Debug, Args)]
pub(crate) struct TableArgs {
    /// The Delta table: a local folder or s3://bucket/prefix (where the runs that write it
    /// put it).
    pub table: String,
    /// How to reach S3.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the result as one JSON object on stdout.
    #[arg(long, help_heading = PROGRESS)]
    pub json: bool,
}

impl TableArgs {
    /// The validated request.
    pub(crate) fn to_request(&self) -> Result<crate::pipeline::TableRequest> {
        Ok(crate::pipeline::TableRequest {
            destination: crate::sink::Destination::parse(&self.table)?,
            aws: self.store.aws.options(None),
            s3: self.store.s3(),
        })
    }
}

/// `ddbsnap optimize`.
#[derive(Debug, Args)]
pub(crate) struct OptimizeArgs {
    /// The table.
    #[command(flatten)]
    pub table: TableArgs,
    /// Target data file size in MiB: files under three quarters of it are compacted.
    #[arg(long, default_value_t = 128, value_name = "MiB", help_heading = OUTPUT)]
    pub file_size: usize,
    /// Rewrite every file, not only the small ones, sorted by key: each file then holds one
    /// key range, so a lookup or a MERGE of a few keys reads few files. Reads and writes the
    /// whole table.
    #[arg(long, help_heading = OUTPUT)]
    pub cluster: bool,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, help_heading = PROGRESS)]
    pub progress: ProgressMode,
}

/// `ddbsnap vacuum`.
#[derive(Debug, Args)]
pub(crate) struct VacuumArgs {
    /// The table.
    #[command(flatten)]
    pub table: TableArgs,
    /// The retention window (e.g. 168h, 7d): files a version inside it needs are kept.
    /// Default: the table's delta.deletedFileRetentionDuration (7 days unless set).
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_span)]
    pub retain: Option<std::time::Duration>,
    /// List what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a window shorter than the table's delta.deletedFileRetentionDuration (a reader
    /// or writer still on a recent version may then lose a file).
    #[arg(long)]
    pub force: bool,
}

/// `ddbsnap commit`.
#[derive(Debug, Args)]
pub(crate) struct CommitArgs {
    /// Where the shards wrote (their `ddbsnap snapshot --to`): the run's folder, or the Delta
    /// table (or incremental dataset) whose run= folder holds it.
    pub to: String,
    /// How many shards the run was split into (the N of `ddbsnap snapshot --shard I/N`).
    #[arg(long, value_name = "N", help_heading = SHARDS)]
    pub shards: u32,
    /// The run= folder to commit, when the location holds more than one unfinished split run
    /// (the `ddbsnap snapshot --run-id` the shards were given, or the folder's name).
    #[arg(long, value_name = "RUN", help_heading = SHARDS)]
    pub run: Option<String>,
    /// How to reach S3.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the summary as one JSON object on stdout.
    #[arg(long, help_heading = PROGRESS)]
    pub json: bool,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, help_heading = PROGRESS)]
    pub progress: ProgressMode,
}

impl CommitArgs {
    /// The validated request.
    pub(crate) fn to_request(&self) -> Result<crate::pipeline::CommitRequest> {
        let destination = crate::sink::Destination::parse(&self.to)?;
        if self.shards == 0 {
            return Err(crate::error::Error::invalid("--shards must be at least 1"));
        }
        let run = match &self.run {
            None => None,
            Some(run) if run.starts_with(crate::sink::RUN_PREFIX) => Some(run.clone()),
            Some(run) => Some(crate::sink::run_dir_name(parse_bound(run, "--run")?)),
        };
        Ok(crate::pipeline::CommitRequest {
            destination,
            run,
            shards: self.shards,
            aws: self.store.aws.options(None),
            s3: self.store.s3(),
        })
    }
}

/// `--shard` and `--run-id`, for the commands whose runs can be split.
#[derive(Debug, Args)]
#[command(next_help_heading = SHARDS)]
pub(crate) struct ShardArgs {
    /// Run as shard I of N (from 0): read the scan segments (export data files) whose number
    /// is I modulo N, at 1/N of the read budget, into files no other shard writes; `ddbsnap
    /// commit --shards N` publishes the run once all have finished. Running a shard again
    /// continues its part. `auto` or `auto/N` takes I from DDBSNAP_SHARD_INDEX,
    /// JOB_COMPLETION_INDEX (Kubernetes), AWS_BATCH_JOB_ARRAY_INDEX or SLURM_ARRAY_TASK_ID,
    /// and N from auto/N, DDBSNAP_SHARDS or SLURM_ARRAY_TASK_COUNT.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// With --shard into a Delta table or an incremental pull: the run's start time (RFC 3339
    /// or a date), the same for every shard; it names the run= folder they share.
    #[arg(long, value_name = "TIME", requires = "shard")]
    pub run_id: Option<String>,
}

impl ShardArgs {
    /// Apply these options to a configuration.
    pub(crate) fn apply(
        &self,
        mut b: crate::config::SnapshotConfigBuilder,
    ) -> Result<crate::config::SnapshotConfigBuilder> {
        if let Some(shard) = &self.shard {
            b = b.shard(crate::shard::Shard::parse(shard)?);
        }
        if let Some(id) = &self.run_id {
            b = b.run_id(parse_bound(id, "--run-id")?);
        }
        Ok(b)
    }
}

/// How fast a Scan reads the table: segments and the read budget (`snapshot`, the first load
/// of `sync`).
#[derive(Debug, Args)]
pub(crate) struct BudgetArgs {
    /// Scan segments (TotalSegments); default: one per GiB of table data, 4 to 1024.
    #[arg(long, help_heading = BUDGET)]
    pub segments: Option<u32>,
    /// Segments scanned at once (default: one per 400 RCU/s of read budget, 1 to 8).
    #[arg(long, help_heading = BUDGET)]
    pub concurrency: Option<u32>,
    /// Fraction of the table's read capacity to use (provisioned RCU, or the on-demand
    /// maximum / warm throughput).
    #[arg(long, default_value_t = crate::throttle::DEFAULT_READ_FRACTION, value_name = "F", help_heading = BUDGET)]
    pub read_fraction: f64,
    /// Absolute ceiling on the read rate in RCU/s; for on-demand tables with no declared
    /// capacity, the rate itself.
    #[arg(long, value_name = "RCU", help_heading = BUDGET)]
    pub max_rcu: Option<f64>,
    /// Give up after this many seconds of throttled or failed requests on one segment (or,
    /// for `sync`, on one shard's GetRecords).
    #[arg(long, default_value_t = 600, value_name = "SECONDS", help_heading = BUDGET)]
    pub retry_timeout: u64,
}

impl BudgetArgs {
    /// Apply these options to a configuration.
    pub(crate) fn apply(
        &self,
        mut b: crate::config::SnapshotConfigBuilder,
    ) -> crate::config::SnapshotConfigBuilder {
        b = b
            .read_fraction(self.read_fraction)
            .retry_timeout(std::time::Duration::from_secs(self.retry_timeout));
        if let Some(v) = self.segments {
            b = b.segments(v);
        }
        if let Some(v) = self.max_rcu {
            b = b.max_rcu(v);
        }
        if let Some(v) = self.concurrency {
            b = b.concurrency(v);
        }
        b
    }
}

/// `ddbsnap sync`.
#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Table name or ARN.
    pub table: String,
    /// Load the whole table again (a Scan) before reading the stream, whatever the Delta table
    /// holds: how a table that records no stream position starts being synced.
    #[arg(long, help_heading = SOURCE)]
    pub refresh: bool,
    /// Keep the rows of items Time to Live deleted (their stream records come from the
    /// DynamoDB service); by default they are deletes like any other.
    #[arg(long, help_heading = SOURCE)]
    pub keep_expired: bool,
    /// Give the table a stream (NEW_AND_OLD_IMAGES, UpdateTable) when it has none.
    #[arg(long, help_heading = SOURCE)]
    pub enable_stream: bool,
    /// Stream records one commit takes at most: a backlog is merged in several commits, so
    /// memory stays bounded.
    #[arg(long, value_name = "N", default_value_t = crate::pipeline::DEFAULT_MAX_RECORDS, help_heading = SOURCE)]
    pub max_records: u64,
    /// Keep running: read the stream and commit what it brought every --commit-every, until
    /// SIGTERM or Ctrl-C, which commits what was read and exits 0.
    #[arg(long, help_heading = SOURCE)]
    pub follow: bool,
    /// With --follow: how often to commit (e.g. 1m, 30s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "1m", requires = "follow", value_parser = crate::config::parse_duration, help_heading = SOURCE)]
    pub commit_every: std::time::Duration,
    /// How the full load reads the table: a Scan within the read budget, or DynamoDB's Export
    /// to S3 (no read capacity; needs point-in-time recovery and --export-to).
    #[arg(long, value_enum, default_value_t = Bootstrap::Scan, help_heading = SOURCE)]
    pub bootstrap: Bootstrap,
    /// With --bootstrap export: where DynamoDB writes the export, s3://bucket/prefix.
    #[arg(long, value_name = "URL", help_heading = SOURCE)]
    pub export_to: Option<String>,
    /// With --bootstrap export: how long to wait for the export to finish.
    #[arg(long, value_name = "SECONDS", default_value_t = 7200, help_heading = SOURCE)]
    pub export_timeout: u64,
    /// Strongly consistent reads for the full load (twice the read capacity).
    #[arg(long, help_heading = SOURCE)]
    pub consistent_read: bool,
    /// DynamoDB and DynamoDB Streams endpoint, for local or compatible servers (else
    /// AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_DYNAMODB_STREAMS, then AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL", help_heading = AWS)]
    pub endpoint_url: Option<String>,
    /// Where the table is and who asks.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// How fast the first load reads the table (a stream run reads no table capacity).
    #[command(flatten)]
    pub budget: BudgetArgs,
    /// The Delta table: a directory, file:///path or s3://bucket/prefix.
    #[arg(long, value_name = "URL", help_heading = OUTPUT)]
    pub to: String,
    /// Also append every stream record read, as a row (keys, new image, _op, _write_time,
    /// _old, _seq), to a second Delta table here: a table of changes to audit or build
    /// history from.
    #[arg(long, value_name = "URL", help_heading = OUTPUT)]
    pub changes: Option<String>,
    /// Output options, destination and display.
    #[command(flatten)]
    pub output: OutputArgs,
}

impl SyncArgs {
    /// The validated configuration these arguments describe, and how the sync runs.
    pub(crate) fn to_config(&self) -> Result<(SnapshotConfig, crate::pipeline::SyncOptions)> {
        // --resume is what sync does anyway (it finishes a run it left unfinished first).
        if self.output.overwrite {
            return Err(crate::error::Error::invalid(
                "sync keeps its Delta table and --overwrite does not apply; --refresh loads the \
                 table again into it",
            ));
        }
        if self.output.format == Some(crate::format::TableFormat::Snapshot) {
            return Err(crate::error::Error::invalid(
                "sync keeps a Delta table (--format snapshot does not apply); leave out --format",
            ));
        }
        let mut b =
            SnapshotConfig::builder(&self.table, &self.to).consistent_read(self.consistent_read);
        b = self.budget.apply(b);
        b = self.output.apply(&self.aws, b);
        b = b.format(crate::format::TableFormat::Delta);
        if let Some(v) = &self.endpoint_url {
            b = b.endpoint_url(v);
        }
        let options = crate::pipeline::SyncOptions {
            refresh: self.refresh,
            keep_expired: self.keep_expired,
            enable_stream: self.enable_stream,
            max_records: self.max_records,
            follow: self.follow.then_some(self.commit_every),
            changes: self.changes.clone(),
            bootstrap: self.bootstrap_export()?,
        };
        Ok((b.build()?, options))
    }
}

impl SyncArgs {
    /// The export a `--bootstrap export` load asks for (`None`: a Scan).
    fn bootstrap_export(&self) -> Result<Option<crate::source::export::ExportRequest>> {
        use crate::error::Error;
        let to = match (self.bootstrap, &self.export_to) {
            (Bootstrap::Scan, None) => return Ok(None),
            (Bootstrap::Scan, Some(_)) => {
                return Err(Error::invalid("--export-to needs --bootstrap export"));
            }
            (Bootstrap::Export, None) => {
                return Err(Error::invalid(
                    "--bootstrap export needs --export-to s3://bucket/prefix for DynamoDB's files",
                ));
            }
            (Bootstrap::Export, Some(to)) => to,
        };
        if self.consistent_read {
            return Err(Error::invalid(
                "--consistent-read is for a Scan; an export reads a point in time",
            ));
        }
        let (bucket, prefix) = export_bucket(to)?;
        Ok(Some(crate::source::export::ExportRequest {
            bucket,
            prefix,
            timeout: std::time::Duration::from_secs(self.export_timeout),
            poll_interval: std::time::Duration::from_secs(10),
            ..Default::default()
        }))
    }
}

/// How `sync` loads the table in full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Bootstrap {
    /// A Scan within the read budget.
    #[default]
    Scan,
    /// DynamoDB's Export to S3 (point-in-time recovery on).
    Export,
}

/// The bucket and key prefix of `--export-to URL` (DynamoDB exports to S3 only).
fn export_bucket(to: &str) -> Result<(String, String)> {
    match crate::sink::Destination::parse(to)? {
        crate::sink::Destination::S3 { bucket, prefix } => Ok((bucket, prefix)),
        crate::sink::Destination::Local(_) => Err(crate::error::Error::invalid(format!(
            "--export-to must be an s3://bucket/prefix URL (DynamoDB exports to S3 only), got '{to}'"
        ))),
    }
}

/// `ddbsnap describe`.
#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// Table name or ARN.
    pub table: String,
    /// Estimate a scan of this secondary index instead of the table.
    #[arg(long, value_name = "NAME", help_heading = SOURCE)]
    pub index: Option<String>,
    /// Estimate strongly consistent reads.
    #[arg(long, help_heading = SOURCE)]
    pub consistent_read: bool,
    /// DynamoDB endpoint, for local or compatible servers (else AWS_ENDPOINT_URL_DYNAMODB,
    /// then AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL", help_heading = AWS)]
    pub endpoint_url: Option<String>,
    /// Where the table is and who asks.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Fraction of the read capacity a snapshot would use.
    #[arg(long, default_value_t = crate::throttle::DEFAULT_READ_FRACTION, value_name = "F", help_heading = BUDGET)]
    pub read_fraction: f64,
    /// Ceiling on the read rate in RCU/s, as for `snapshot`.
    #[arg(long, value_name = "RCU", help_heading = BUDGET)]
    pub max_rcu: Option<f64>,
    /// Print one JSON object on stdout.
    #[arg(long, help_heading = PROGRESS)]
    pub json: bool,
}

/// Region, profile and roles, shared by every subcommand.
#[derive(Debug, Args)]
#[command(next_help_heading = AWS)]
pub(crate) struct AwsArgs {
    /// AWS region (else AWS_REGION, AWS_DEFAULT_REGION or the profile's).
    #[arg(long)]
    pub region: Option<String>,
    /// AWS profile from the config and credentials files (else AWS_PROFILE, then the
    /// environment's credentials, SSO, web identity, container or instance role); never falls
    /// back to other credentials when the profile is missing.
    #[arg(long)]
    pub profile: Option<String>,
    /// Assume this IAM role (STS AssumeRole, from the profile's or environment's credentials)
    /// for DynamoDB, and for S3 unless --s3-role-arn is given; refreshed before it expires.
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// Assume this IAM role for S3 (the lake in another account), from the same base
    /// credentials as --role-arn.
    #[arg(long, value_name = "ARN")]
    pub s3_role_arn: Option<String>,
    /// External ID the role's trust policy requires (with --role-arn or --s3-role-arn).
    #[arg(long, value_name = "ID")]
    pub external_id: Option<String>,
    /// Session name of the assumed roles, as CloudTrail shows it (default: `ddbsnap-<pid>`).
    #[arg(long, value_name = "NAME")]
    pub role_session_name: Option<String>,
}

impl AwsArgs {
    /// The AWS options these arguments describe, with DynamoDB at `endpoint_url` (if given).
    pub(crate) fn options(&self, endpoint_url: Option<&str>) -> crate::aws::AwsOptions {
        crate::aws::AwsOptions {
            region: self.region.clone(),
            profile: self.profile.clone(),
            endpoint_url: endpoint_url.map(str::to_owned),
            role_arn: self.role_arn.clone(),
            s3_role_arn: self.s3_role_arn.clone(),
            external_id: self.external_id.clone(),
            role_session_name: self.role_session_name.clone(),
        }
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProgressMode {
    /// A bar when stderr is a terminal, nothing otherwise.
    #[default]
    Auto,
    /// Always a bar on stderr.
    Bar,
    /// One JSON object per event on stderr.
    Json,
    /// Nothing.
    None,
}

/// `ddbsnap snapshot`.
#[derive(Debug, Args)]
pub(crate) struct SnapshotArgs {
    /// Table name or ARN.
    pub table: String,
    /// Strongly consistent reads (twice the read capacity; not on global secondary indexes).
    #[arg(long, help_heading = SOURCE)]
    pub consistent_read: bool,
    /// Scan this global or local secondary index instead of the table (its key schema and
    /// capacity are used).
    #[arg(long, value_name = "NAME", help_heading = SOURCE)]
    pub index: Option<String>,
    /// How to read the table: a segmented Scan (default), or DynamoDB's native Export to S3
    /// (needs point-in-time recovery; reads no table capacity).
    #[arg(long, value_enum, default_value_t = Mode::Scan, help_heading = SOURCE)]
    pub mode: Mode,
    /// DynamoDB endpoint, for local or compatible servers (else AWS_ENDPOINT_URL_DYNAMODB,
    /// then AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL", help_heading = AWS)]
    pub endpoint_url: Option<String>,
    /// Where the table is and who asks.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// How fast the table is read.
    #[command(flatten)]
    pub budget: BudgetArgs,
    /// Leave out items whose TTL attribute (from DescribeTimeToLive) is in the past: DynamoDB
    /// keeps them visible to Scan until Time to Live deletes them, typically within two days.
    /// Counted in the summary's items_expired.
    #[arg(long, help_heading = FILTERS)]
    pub skip_expired: bool,
    /// Read only these top-level attributes, comma-separated (names verbatim; key attributes
    /// and --filter-attr are always read).
    #[arg(long, value_name = "A,B,...", value_delimiter = ',', help_heading = FILTERS)]
    pub columns: Vec<String>,
    /// A DynamoDB FilterExpression, e.g. '#s = :v'.
    #[arg(long, value_name = "EXPR", help_heading = FILTERS)]
    pub filter: Option<String>,
    /// ExpressionAttributeNames for --filter, as JSON: '{"#s":"status"}'.
    #[arg(long, value_name = "JSON", requires = "filter", help_heading = FILTERS)]
    pub names: Option<String>,
    /// ExpressionAttributeValues for --filter, as DynamoDB JSON: '{":v":{"S":"active"}}'.
    #[arg(long, value_name = "JSON", requires = "filter", help_heading = FILTERS)]
    pub values: Option<String>,
    /// Timestamp attribute of an incremental pull; --to is then a dataset root and the run is
    /// written to `<to>/run=<utc-id>/`.
    #[arg(long, value_name = "ATTR", help_heading = FILTERS)]
    pub filter_attr: Option<String>,
    /// Inclusive lower bound: RFC 3339, a date, epoch seconds or milliseconds, or 'last' (the
    /// previous committed run's window end, minus --overlap). With --mode export
    /// --incremental: the export window's start; 'last' (with --format delta) continues from
    /// where the Delta table is current, in exports of at most 24 hours each.
    #[arg(long, value_name = "TIME", help_heading = FILTERS)]
    pub since: Option<String>,
    /// Exclusive upper bound: RFC 3339, a date, or epoch seconds or milliseconds. With --mode
    /// export --incremental: the export window's end (with --since last: default now).
    #[arg(long, value_name = "TIME", help_heading = FILTERS)]
    pub until: Option<String>,
    /// How --filter-attr holds time (default: detected from the key schema or a sample).
    #[arg(long, value_enum, requires = "filter_attr", help_heading = FILTERS)]
    pub ts_format: Option<crate::filter::TsFormat>,
    /// Seconds `--since last` reaches back into the previous window, for clock skew and late
    /// writes.
    #[arg(long, value_name = "SECONDS", requires = "filter_attr", default_value_t = crate::config::DEFAULT_OVERLAP.as_secs(), help_heading = FILTERS)]
    pub overlap: u64,
    /// With --since last: read the whole table instead of pulling when its last full read is
    /// older than this (e.g. 7d, 24h): how deleted items leave a table fed by pulls.
    #[arg(long, value_name = "DURATION", requires = "filter_attr", value_parser = crate::config::parse_duration, help_heading = FILTERS)]
    pub refresh_every: Option<std::time::Duration>,
    /// With --mode export: where DynamoDB writes the export, s3://bucket/prefix.
    #[arg(long, value_name = "URL", help_heading = EXPORT)]
    pub export_to: Option<String>,
    /// With --mode export: the point in time to export (default: now).
    #[arg(long, value_name = "TIME", help_heading = EXPORT)]
    pub export_time: Option<String>,
    /// With --mode export: an incremental export of the changes in [--since, --until), written
    /// as a change log.
    #[arg(long, help_heading = EXPORT)]
    pub incremental: bool,
    /// With --incremental: export only the new image of each change (default: new and old).
    #[arg(long, help_heading = EXPORT)]
    pub new_image_only: bool,
    /// With --mode export: the format DynamoDB writes (both convert to the same snapshot).
    #[arg(long, value_enum, default_value_t = ExportFormat::DynamodbJson, help_heading = EXPORT)]
    pub export_format: ExportFormat,
    /// With --mode export: server-side encryption of the export, AES256 or KMS.
    #[arg(long, value_name = "ALG", help_heading = EXPORT)]
    pub sse_algorithm: Option<String>,
    /// With --sse-algorithm KMS: the KMS key.
    #[arg(long, value_name = "KEY", help_heading = EXPORT)]
    pub kms_key_id: Option<String>,
    /// With --mode export: the account that owns the export bucket.
    #[arg(long, value_name = "ACCOUNT", help_heading = EXPORT)]
    pub bucket_owner: Option<String>,
    /// With --mode export: how long to wait for the export to finish.
    #[arg(long, value_name = "SECONDS", default_value_t = 7200, help_heading = EXPORT)]
    pub export_timeout: u64,
    /// Destination: a directory, file:///path or s3://bucket/prefix.
    #[arg(long, value_name = "URL", help_heading = OUTPUT)]
    pub to: String,
    /// Output format, destination and display.
    #[command(flatten)]
    pub output: OutputArgs,
    /// One shard of a split run.
    #[command(flatten)]
    pub shards: ShardArgs,
}

/// Output options shared by `snapshot` and `convert-export`.
#[derive(Debug, Args)]
pub(crate) struct OutputArgs {
    /// S3 endpoint, for S3-compatible servers (else AWS_ENDPOINT_URL_S3, then
    /// AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL", help_heading = AWS)]
    pub s3_endpoint_url: Option<String>,
    /// Region of the S3 bucket, when it differs from the table's.
    #[arg(long, help_heading = AWS)]
    pub s3_region: Option<String>,
    /// Number mapping: exact (Int64 / Decimal128 / text) or float64 (lossy).
    #[arg(long, value_enum, default_value_t = NumberMode::Exact, help_heading = OUTPUT)]
    pub numbers: NumberMode,
    /// Parquet compression.
    #[arg(long, value_enum, default_value_t = Compression::Zstd, help_heading = OUTPUT)]
    pub compression: Compression,
    /// Zstandard level (1-22): 1 is fast, higher levels give smaller files for more CPU.
    #[arg(long, default_value_t = crate::config::DEFAULT_ZSTD_LEVEL, value_name = "N", help_heading = OUTPUT)]
    pub zstd_level: i32,
    /// Target data file size in MiB.
    #[arg(long, default_value_t = 128, value_name = "MiB", help_heading = OUTPUT)]
    pub file_size: usize,
    /// Row group size in MiB, shared by the conversion threads (bounds memory: the default
    /// keeps a conversion under 100 MB).
    #[arg(long, default_value_t = crate::config::DEFAULT_ROW_GROUP_BYTES >> 20, value_name = "MiB", help_heading = OUTPUT)]
    pub row_group_size: usize,
    /// Conversion threads, each writing its own data files (default: one per two cores, as
    /// parsing takes the others, and one per 64 MiB of input at most, so small tables make one
    /// file).
    #[arg(long, value_name = "N", help_heading = OUTPUT)]
    pub threads: Option<u32>,
    /// Output: a snapshot folder (the default), or a Delta Lake table that each run updates
    /// by one new version (created on the first run). `sync` always writes a Delta table.
    #[arg(long, value_enum, help_heading = OUTPUT)]
    pub format: Option<crate::format::TableFormat>,
    /// Column names of a Delta table this run creates: plain (characters Delta does not allow
    /// in a name, such as spaces, become `_`), or Delta column mapping by name, which keeps
    /// every attribute's exact name and needs readers of Delta protocol reader 2 (delta-rs,
    /// DuckDB, Spark 3.2+ with Delta 1.2+, Databricks; not polars). A table that exists keeps
    /// its own.
    #[arg(long, value_enum, default_value_t = crate::format::ColumnMapping::None, value_name = "MODE", help_heading = OUTPUT)]
    pub column_mapping: crate::format::ColumnMapping,
    /// A change set (an incremental export, a pull from a given time) that starts after what
    /// the table holds leaves a gap: refuse it (exit code 11, nothing written), read the whole
    /// table again instead, or apply it anyway (the changes in the gap are lost).
    #[arg(long, value_enum, default_value_t = crate::window::OnGap::Fail, value_name = "WHAT", help_heading = OUTPUT)]
    pub on_gap: crate::window::OnGap,
    /// Replace a snapshot already at the destination.
    #[arg(long, help_heading = OUTPUT)]
    pub overwrite: bool,
    /// Continue the unfinished snapshot at the destination from its _checkpoint.json (after a
    /// crash, a kill or Ctrl-C); give the same source and options as the first run.
    #[arg(long, conflicts_with = "overwrite", help_heading = OUTPUT)]
    pub resume: bool,
    /// Close the open data file, and so save a checkpoint, at least this often.
    #[arg(long, default_value_t = 300, value_name = "SECONDS", help_heading = OUTPUT)]
    pub checkpoint_every: u64,
    /// Print the summary as one JSON object on stdout.
    #[arg(long, help_heading = PROGRESS)]
    pub json: bool,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, help_heading = PROGRESS)]
    pub progress: ProgressMode,
}

impl OutputArgs {
    /// Apply these options (and `aws`) to a configuration.
    pub(crate) fn apply(
        &self,
        aws: &AwsArgs,
        mut b: crate::config::SnapshotConfigBuilder,
    ) -> crate::config::SnapshotConfigBuilder {
        b = b
            .numbers(self.numbers)
            .compression(self.compression)
            .zstd_level(self.zstd_level)
            .target_file_bytes(self.file_size.saturating_mul(1 << 20))
            .row_group_bytes(self.row_group_size.saturating_mul(1 << 20))
            .format(self.format.unwrap_or_default())
            .column_mapping(self.column_mapping)
            .on_gap(self.on_gap)
            .overwrite(self.overwrite)
            .resume(self.resume)
            .checkpoint_interval(std::time::Duration::from_secs(self.checkpoint_every));
        if let Some(n) = self.threads {
            b = b.threads(n);
        }
        b = b.aws(aws.options(None));
        if let Some(v) = &self.s3_endpoint_url {
            b = b.s3_endpoint_url(v);
        }
        if let Some(v) = &self.s3_region {
            b = b.s3_region(v);
        }
        b
    }
}

/// `ddbsnap convert-export`.
#[derive(Debug, Args)]
pub(crate) struct ConvertExportArgs {
    /// The export's own folder: `s3://bucket/prefix/AWSDynamoDB/<export-id>`, or the same
    /// folder in a local copy of the whole prefix (incremental exports keep their data files
    /// in the prefix's shared `AWSDynamoDB/data/`).
    pub export: String,
    /// The table's key attributes, partition key first (an export does not record them): they
    /// become the first columns and the manifest's key schema. Into a Delta table, the table's
    /// own keys when it has them, else DynamoDB's (DescribeTable of the export's table).
    #[arg(long, value_name = "PK[,SK]", value_delimiter = ',', help_heading = SOURCE)]
    pub key: Vec<String>,
    /// Region, profile and role for S3 (and for DescribeTable of the exported table).
    #[command(flatten)]
    pub aws: AwsArgs,
    /// DynamoDB endpoint for DescribeTable of the exported table, for local or compatible
    /// servers (else AWS_ENDPOINT_URL_DYNAMODB, then AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL", help_heading = AWS)]
    pub endpoint_url: Option<String>,
    /// Destination: a directory, file:///path or s3://bucket/prefix.
    #[arg(long, value_name = "URL", help_heading = OUTPUT)]
    pub to: String,
    /// Output format, destination and display.
    #[command(flatten)]
    pub output: OutputArgs,
    /// One shard of a split run.
    #[command(flatten)]
    pub shards: ShardArgs,
}

/// `ddbsnap apply`.
#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// The change log: a snapshot made by `convert-export` from an incremental export.
    pub changes: String,
    /// The snapshot the changes apply to.
    #[arg(long, value_name = "URL", help_heading = SOURCE)]
    pub to_snapshot: String,
    /// Key attributes, partition key first (default: the snapshot's key schema).
    #[arg(long, value_name = "PK[,SK]", value_delimiter = ',', help_heading = SOURCE)]
    pub key: Vec<String>,
    /// Region, profile and role for S3.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Where the new snapshot goes.
    #[arg(long, value_name = "URL", help_heading = OUTPUT)]
    pub out: String,
    /// Output format, destination and display.
    #[command(flatten)]
    pub output: OutputArgs,
}

impl ApplyArgs {
    /// The change log's and the snapshot's locations, and the validated configuration.
    pub(crate) fn to_config(
        &self,
    ) -> Result<(
        crate::sink::Destination,
        crate::sink::Destination,
        SnapshotConfig,
    )> {
        let changes = crate::sink::Destination::parse(&self.changes)?;
        let base = crate::sink::Destination::parse(&self.to_snapshot)?;
        let config = self
            .output
            .apply(&self.aws, SnapshotConfig::builder("apply", &self.out))
            .build()?;
        Ok((changes, base, config))
    }
}

impl ConvertExportArgs {
    /// The validated configuration and the export's location.
    pub(crate) fn to_config(&self) -> Result<(crate::sink::Destination, SnapshotConfig)> {
        let source = crate::sink::Destination::parse(&self.export)?;
        let mut b = self
            .output
            .apply(&self.aws, SnapshotConfig::builder("export", &self.to));
        b = b.aws(self.aws.options(self.endpoint_url.as_deref()));
        let config = self.shards.apply(b)?.build()?;
        Ok((source, config))
    }
}

/// The format of a native export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// DynamoDB JSON lines.
    #[default]
    DynamodbJson,
    /// Ion text.
    Ion,
}

/// How `snapshot` reads the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// A segmented parallel Scan, within the read budget.
    #[default]
    Scan,
    /// DynamoDB's Export to S3, then converted.
    Export,
}

impl SnapshotArgs {
    fn export_config(&self, b: crate::config::SnapshotConfigBuilder) -> Result<SnapshotConfig> {
        use crate::error::Error;
        use crate::source::export::{ExportRequest, IncrementalRange, IncrementalWindow};
        let scan_only = [
            ("--filter-attr", self.filter_attr.is_some()),
            ("--filter", self.filter.is_some()),
            ("--columns", !self.columns.is_empty()),
            ("--index", self.index.is_some()),
            ("--consistent-read", self.consistent_read),
            ("--skip-expired", self.skip_expired),
        ];
        if let Some((flag, _)) = scan_only.iter().find(|(_, given)| *given) {
            return Err(Error::invalid(format!(
                "{flag} cannot be used with --mode export"
            )));
        }
        let to = self.export_to.as_deref().ok_or_else(|| {
            Error::invalid(
                "--mode export needs --export-to s3://bucket/prefix for DynamoDB's files",
            )
        })?;
        let (bucket, prefix) = export_bucket(to)?;
        let incremental = if self.incremental {
            let bound = |v: &Option<String>, flag: &str| {
                v.as_deref()
                    .ok_or_else(|| Error::invalid(format!("--incremental needs {flag}")))
                    .and_then(|t| parse_bound(t, flag))
            };
            if self.since.as_deref() == Some("last") {
                Some(IncrementalRange::SinceLast {
                    until: match &self.until {
                        Some(t) => Some(parse_bound(t, "--until")?),
                        None => None,
                    },
                    old_images: !self.new_image_only,
                })
            } else {
                let window = IncrementalWindow {
                    from: bound(&self.since, "--since")?,
                    to: bound(&self.until, "--until")?,
                    old_images: !self.new_image_only,
                };
                window.validate(chrono::Utc::now())?;
                Some(IncrementalRange::Window(window))
            }
        } else {
            if self.since.is_some() || self.until.is_some() || self.new_image_only {
                return Err(Error::invalid(
                    "--since, --until and --new-image-only go with --incremental in export mode",
                ));
            }
            None
        };
        let export_time = match &self.export_time {
            Some(_) if incremental.is_some() => {
                return Err(Error::invalid(
                    "--export-time is for full exports; an incremental one has --since and --until",
                ));
            }
            Some(t) => Some(parse_bound(t, "--export-time")?),
            None => None,
        };
        b.export(ExportRequest {
            bucket,
            prefix,
            export_time,
            incremental,
            sse_algorithm: self.sse_algorithm.clone(),
            kms_key_id: self.kms_key_id.clone(),
            bucket_owner: self.bucket_owner.clone(),
            ion: self.export_format == ExportFormat::Ion,
            timeout: std::time::Duration::from_secs(self.export_timeout),
            poll_interval: std::time::Duration::from_secs(10),
        })
        .build()
    }

    /// The validated configuration these arguments describe.
    pub(crate) fn to_config(&self) -> Result<SnapshotConfig> {
        let mut b = SnapshotConfig::builder(&self.table, &self.to)
            .consistent_read(self.consistent_read)
            .skip_expired(self.skip_expired);
        b = self.budget.apply(b);
        b = self.output.apply(&self.aws, b);
        b = self.shards.apply(b)?;
        if let Some(v) = &self.endpoint_url {
            b = b.endpoint_url(v);
        }
        if let Some(v) = &self.index {
            b = b.index(v);
        }
        if !self.columns.is_empty() {
            b = b.columns(self.columns.iter().map(|c| c.trim()));
        }
        if let Some(expression) = &self.filter {
            b = b.raw_filter(RawFilter::parse(
                expression,
                self.names.as_deref(),
                self.values.as_deref(),
            )?);
        }
        if self.mode == Mode::Export {
            return self.export_config(b);
        }
        let export_only = [
            ("--export-to", self.export_to.is_some()),
            ("--export-time", self.export_time.is_some()),
            ("--incremental", self.incremental),
            ("--new-image-only", self.new_image_only),
            (
                "--export-format",
                self.export_format != ExportFormat::DynamodbJson,
            ),
            ("--sse-algorithm", self.sse_algorithm.is_some()),
            ("--kms-key-id", self.kms_key_id.is_some()),
            ("--bucket-owner", self.bucket_owner.is_some()),
        ];
        if let Some((flag, _)) = export_only.iter().find(|(_, given)| *given) {
            return Err(crate::error::Error::invalid(format!(
                "{flag} needs --mode export"
            )));
        }
        if self.filter_attr.is_none() && (self.since.is_some() || self.until.is_some()) {
            return Err(crate::error::Error::invalid(
                "--since and --until need --filter-attr (or --mode export --incremental)",
            ));
        }
        if let Some(attribute) = &self.filter_attr {
            let since = match self.since.as_deref() {
                None => None,
                Some("last") => Some(Since::Last),
                Some(text) => Some(Since::At(parse_bound(text, "--since")?)),
            };
            let until = match self.until.as_deref() {
                None => None,
                Some(text) => Some(parse_bound(text, "--until")?),
            };
            b = b.time_window(TimeSpec {
                attribute: attribute.clone(),
                format: self.ts_format,
                since,
                until,
                overlap: std::time::Duration::from_secs(self.overlap),
            });
        }
        if let Some(every) = self.refresh_every {
            b = b.refresh_every(every);
        }
        b.build()
    }
}

/// The words users see: help texts and messages name options and values as the command line
/// takes them, never as the code spells them.
#[cfg(test)]
pub(crate) mod words {
    use clap::{CommandFactory, ValueEnum};

    fn debug_names<T: ValueEnum + std::fmt::Debug>() -> Vec<String> {
        T::value_variants()
            .iter()
            .filter_map(|v| {
                let debug = format!("{v:?}");
                let name = v.to_possible_value()?.get_name().to_owned();
                (debug != name).then_some(debug)
            })
            .collect()
    }

    /// The code's names of every value the command line takes (`EpochS` for `epoch-s`).
    fn code_names() -> Vec<String> {
        [
            debug_names::<crate::filter::TsFormat>(),
            debug_names::<crate::convert::NumberMode>(),
            debug_names::<crate::format::TableFormat>(),
            debug_names::<crate::sink::Compression>(),
            debug_names::<crate::window::OnGap>(),
            debug_names::<super::ProgressMode>(),
            debug_names::<super::ExportFormat>(),
            debug_names::<super::Mode>(),
        ]
        .concat()
    }

    /// Code names that are also the names of what they stand for: DynamoDB's Scan and Export
    /// to S3, Delta Lake, Amazon Ion.
    const PROPER_NAMES: [&str; 4] = ["Export", "Scan", "Delta", "Ion"];

    /// Where `text` uses a code name of a value in the middle of a sentence (at a sentence's
    /// start a capital is English: "Snapshot a table").
    pub(crate) fn leaks(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        let names = code_names();
        for name in names.iter().filter(|n| !PROPER_NAMES.contains(&n.as_str())) {
            for (at, _) in text.match_indices(name.as_str()) {
                let before = text[..at].trim_end_matches([' ', '(', '`', '\'']);
                let after = text[at + name.len()..].chars().next();
                let whole = !text[..at].ends_with(|c: char| c.is_alphanumeric())
                    && !after.is_some_and(|c| c.is_alphanumeric());
                let sentence_start = before.is_empty() || before.ends_with(['.', '\n', ':']);
                if whole && !sentence_start {
                    let from = text[..at]
                        .char_indices()
                        .rev()
                        .nth(30)
                        .map_or(0, |(i, _)| i);
                    let end = (at + name.len() + 30).min(text.len());
                    let end = (end..=text.len())
                        .find(|&i| text.is_char_boundary(i))
                        .unwrap_or(end);
                    found.push(format!("{name} in: ...{}...", &text[from..end]));
                }
            }
        }
        found
    }

    /// Every `--option` a help text of `cmd` names that `cmd` does not take. Options of other
    /// commands named with their command (`ddbsnap commit --shards N`) are theirs.
    fn foreign_options(cmd: &clap::Command, text: &str) -> Vec<String> {
        let own: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_owned))
            .chain(["help".to_owned(), "version".to_owned()])
            .collect();
        let others: Vec<&str> = text
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|quoted| quoted.starts_with("ddbsnap "))
            .collect();
        let mut found = Vec::new();
        for (at, _) in text.match_indices("--") {
            let name: String = text[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let named_elsewhere = others.iter().any(|o| o.contains(&format!("--{name}")));
            if !name.is_empty() && !own.contains(&name) && !named_elsewhere {
                found.push(format!("{}: --{name}", cmd.get_name()));
            }
        }
        found
    }

    #[test]
    fn every_help_names_its_own_options_and_the_users_values() {
        let mut cli = super::Cli::command();
        cli.build();
        let mut wrong = Vec::new();
        for cmd in cli.get_subcommands() {
            let help = cmd.clone().render_long_help().to_string();
            wrong.extend(leaks(&help));
            for arg in cmd.get_arguments() {
                for text in [arg.get_help(), arg.get_long_help()].into_iter().flatten() {
                    wrong.extend(foreign_options(cmd, &text.to_string()));
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        // The check finds what it is for.
        assert!(!leaks("not a readable EpochMs timestamp").is_empty());
        assert!(!leaks("with --numbers Float64").is_empty());
        assert!(leaks("Snapshot a table. Delta tables, Export to S3").is_empty());
    }
}

/// Every command's arguments as the Python API takes them (its `.pyi` stubs are generated from
/// this, and a test keeps them equal): per command, its help line, then each positional
/// argument and option with its keyword name, type (`bool`, `int`, `float`, `str`, `list`,
/// `choice`), choices, default and help.
pub(crate) fn python_signatures() -> serde_json::Value {
    use clap::CommandFactory;
    let cli = Cli::command();
    let mut commands = serde_json::Map::new();
    for command in cli.get_subcommands() {
        let (mut positional, mut options) = (Vec::new(), Vec::new());
        for arg in command.get_arguments() {
            if arg.is_hide_set() || matches!(arg.get_id().as_str(), "help" | "version") {
                continue;
            }
            let name = arg
                .get_long()
                .unwrap_or(arg.get_id().as_str())
                .replace('-', "_");
            let kind = python_type(arg);
            let choices: Vec<String> = match kind {
                "choice" => (arg.get_possible_values().iter())
                    .filter(|p| !p.is_hide_set())
                    .map(|p| p.get_name().to_owned())
                    .collect(),
                _ => Vec::new(),
            };
            let entry = serde_json::json!({
                "name": name,
                "type": kind,
                "choices": choices,
                "default": arg.get_default_values().first().map(|v| v.to_string_lossy()),
                "required": arg.is_required_set(),
                "help": arg.get_help().map(|h| h.to_string()),
            });
            match arg.is_positional() {
                true => positional.push(entry),
                false => options.push(entry),
            }
        }
        let about = command.get_about().map(|a| a.to_string());
        let entry =
            serde_json::json!({"about": about, "positional": positional, "options": options});
        commands.insert(command.get_name().to_owned(), entry);
    }
    serde_json::Value::Object(commands)
}

/// The Python type of `arg`'s value.
fn python_type(arg: &clap::Arg) -> &'static str {
    use std::any::TypeId;
    if matches!(arg.get_action(), clap::ArgAction::SetTrue) {
        return "bool";
    }
    if matches!(arg.get_action(), clap::ArgAction::Append) || arg.get_value_delimiter().is_some() {
        return "list";
    }
    if !arg.get_possible_values().is_empty() {
        return "choice";
    }
    let id = arg.get_value_parser().type_id();
    let ints = [
        TypeId::of::<u64>(),
        TypeId::of::<u32>(),
        TypeId::of::<usize>(),
        TypeId::of::<i64>(),
        TypeId::of::<i32>(),
        TypeId::of::<u8>(),
    ];
    if ints.iter().any(|t| id == *t) {
        "int"
    } else if id == TypeId::of::<f64>() {
        "float"
    } else {
        "str"
    }
}

#[cfg(test)]
mod signature_tests {
    #[test]
    fn python_signatures_give_each_option_its_type_and_default() {
        let all = super::python_signatures();
        let option = |command: &str, name: &str| {
            all[command]["options"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["name"] == name)
                .unwrap_or_else(|| panic!("{command} --{name}"))
                .clone()
        };
        let fraction = option("snapshot", "read_fraction");
        assert_eq!(
            (fraction["type"].as_str(), fraction["default"].as_str()),
            (Some("float"), Some("0.5"))
        );
        assert_eq!(option("snapshot", "resume")["type"], "bool");
        assert_eq!(option("snapshot", "segments")["type"], "int");
        assert_eq!(option("snapshot", "columns")["type"], "list");
        let format = option("snapshot", "format");
        assert!(
            format["choices"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "delta"),
            "{format}"
        );
        assert_eq!(option("sync", "changes")["type"], "str");
        assert_eq!(all["snapshot"]["positional"][0]["name"], "table");
        if std::env::var_os("DDBSNAP_PRINT_SIGNATURES").is_some() {
            println!("{}", serde_json::to_string_pretty(&all).unwrap());
        }
    }
}
