//! Planning a run: the automatic segment count, and what one run scans (index, columns,
//! filters, the timestamp window resolved against earlier runs, where it writes).

use crate::aws::AwsContext;
use crate::error::{Error, Result};
pub(crate) use crate::table::{IndexInfo, KeyAttribute, TableInfo};

/// Bytes of table data per automatic segment.
pub(crate) const BYTES_PER_SEGMENT: i64 = 1 << 30;
/// Fewest automatic segments: enough parallelism to hide request latency on small tables.
pub(crate) const MIN_AUTO_SEGMENTS: u32 = 4;
/// Most automatic segments.
pub(crate) const MAX_AUTO_SEGMENTS: u32 = 1024;

/// The automatic segment count: one segment per GiB of table data (DescribeTable's
/// TableSizeBytes), at least 4 and at most 1024. Small and empty tables get 4 segments, so a
/// scan never fans out into hundreds of empty requests.
pub(crate) fn auto_segments(size_bytes: Option<i64>) -> u32 {
    let size = size_bytes.unwrap_or(0).max(0);
    let wanted = (size + BYTES_PER_SEGMENT - 1) / BYTES_PER_SEGMENT;
    (wanted.clamp(MIN_AUTO_SEGMENTS as i64, MAX_AUTO_SEGMENTS as i64)) as u32
}

/// The table's TTL attribute (DescribeTimeToLive), for `--skip-expired`: an error when Time to
/// Live is not enabled, since then no item expires.
async fn ttl_attribute(aws: &AwsContext, table: &str) -> Result<String> {
    let out = aws
        .dynamodb
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| aws.classify("DescribeTimeToLive", table, e))?;
    let ttl = out.time_to_live_description;
    let status = ttl
        .as_ref()
        .and_then(|t| t.time_to_live_status())
        .map_or("DISABLED", |s| s.as_str())
        .to_owned();
    match ttl
        .and_then(|t| t.attribute_name)
        .filter(|_| status == "ENABLED")
    {
        Some(attribute) => Ok(attribute),
        None => Err(Error::invalid(format!(
            "--skip-expired: Time to Live is {status} on table '{table}', so no item expires; \
             leave the flag out"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_segments() {
        assert_eq!(auto_segments(None), 4);
        assert_eq!(auto_segments(Some(0)), 4);
        assert_eq!(auto_segments(Some(3 << 30)), 4);
        assert_eq!(auto_segments(Some((10 << 30) + 1)), 11);
        assert_eq!(auto_segments(Some(1 << 50)), 1024);
    }
}

/// What one run scans, resolved against the table, the dataset root and a probe request.
#[derive(Debug, Clone)]
pub(crate) struct ScanPlan {
    /// The index scanned, if not the table.
    pub index: Option<IndexInfo>,
    /// Key attributes of what is scanned: the table's, then the index's own.
    pub keys: Vec<KeyAttribute>,
    /// Index, columns and filters, with the timestamp window resolved.
    pub spec: crate::filter::ScanSpec,
    /// Where the run writes: `--to`, or a new (or resumed) `run=<utc-id>` under it for an
    /// incremental pull.
    pub target: crate::sink::Target,
    /// What the run's summary says about its window: the gap `--on-gap` let it across, or
    /// read the whole table for.
    pub window_note: Option<String>,
    /// Why a `--since last` pull reads the whole table instead (its plan line says so).
    pub refresh: Option<String>,
    /// When the whole table was last read into what this pull continues.
    pub refreshed_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ScanPlan {
    /// Approximate size of what is scanned (for the automatic segment count).
    pub(crate) fn size_bytes(&self, table: &TableInfo) -> Option<i64> {
        match &self.index {
            Some(index) => index.size_bytes,
            None => table.size_bytes,
        }
    }

    /// Approximate item count of what is scanned.
    pub(crate) fn item_count(&self, table: &TableInfo) -> Option<i64> {
        match &self.index {
            Some(index) => index.item_count,
            None => table.item_count,
        }
    }
}

/// Resolve `config`'s index, columns and filters against `table`; for an incremental pull,
/// pick the run directory under the dataset root `root` and resolve `--since last` from the
/// latest committed run. Ends with a one-item probe Scan, so a bad expression fails here,
/// before anything is written.
pub(crate) async fn plan_scan(
    aws: &AwsContext,
    table: &TableInfo,
    config: &crate::config::SnapshotConfig,
    root: crate::sink::Target,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<ScanPlan> {
    use crate::filter::ScanSpec;

    let index = match &config.read.index {
        None => None,
        Some(name) => Some(table.index(name)?.clone()),
    };
    if let Some(index) = &index
        && index.is_global()
        && config.read.consistent_read
    {
        return Err(Error::invalid(format!(
            "--consistent-read cannot be used on global secondary index '{}': DynamoDB reads \
             global indexes with eventual consistency only; drop --consistent-read (local \
             indexes and the table support it)",
            index.name
        )));
    }
    let keys = table.scan_keys(index.as_ref());
    let target = run_target(root.clone(), config, started_at).await?;
    // A resumed run decides whether it is due for a full refresh as its first attempt did.
    let decided_at = match config.run.resume {
        true => crate::checkpoint::read_checkpoint(&target)
            .await?
            .map_or(started_at, |c| c.started_at),
        false => started_at,
    };
    let pull = pull_window(aws, (table, index.as_ref()), &root, config, decided_at).await?;
    let (time, window_note) = admit_pull(&root, config, pull.time, started_at).await?;
    let skip_expired = if config.read.skip_expired {
        Some(ttl_attribute(aws, &table.name).await?)
    } else {
        None
    };
    let spec = ScanSpec {
        index: config.read.index.clone(),
        columns: config.read.columns.clone(),
        raw: config.read.raw_filter.clone(),
        time,
        skip_expired,
    };
    if !spec.is_full_table() {
        probe(aws, table, &spec, &keys, config.read.consistent_read).await?;
    }
    Ok(ScanPlan {
        index,
        keys,
        spec,
        target,
        window_note,
        refresh: pull.refresh,
        refreshed_at: pull.refreshed_at,
    })
}

/// The window of an incremental pull: `--since` resolved (for `--since last`, from where the
/// table is current), or, for `--since last` on a target with nothing to continue or whose
/// last full read is older than `--refresh-every`, no window: the run reads the whole table.
struct PullWindow {
    time: Option<crate::filter::TimeFilter>,
    /// Why the pull reads the whole table instead.
    refresh: Option<String>,
    /// When the whole table was last read into what the pull continues.
    refreshed_at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn pull_window(
    aws: &AwsContext,
    (table, index): (&TableInfo, Option<&IndexInfo>),
    root: &crate::sink::Target,
    config: &crate::config::SnapshotConfig,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<PullWindow> {
    use crate::config::Since;
    let mut pull = PullWindow {
        time: None,
        refresh: None,
        refreshed_at: None,
    };
    let Some(spec) = &config.read.time else {
        return Ok(pull);
    };
    let since = match spec.since {
        None => None,
        Some(Since::At(t)) => Some(t),
        Some(Since::Last) => match since_last(root, config, spec, started_at).await? {
            Ok(current) => {
                pull.refreshed_at = current.refreshed_at;
                Some(current.until - chrono::TimeDelta::from_std(spec.overlap).unwrap_or_default())
            }
            Err(reason) => {
                pull.refresh = Some(reason);
                return Ok(pull);
            }
        },
    };
    if let (Some(since), Some(until)) = (since, spec.until)
        && since >= until
    {
        return Err(Error::invalid(format!(
            "--since resolves to {since}, not before --until {until}"
        )));
    }
    let format = match spec.format {
        Some(format) => format,
        None => detect_format(aws, table, index, &spec.attribute).await?,
    };
    pull.time = Some(crate::filter::TimeFilter {
        attribute: spec.attribute.clone(),
        format,
        since,
        until: spec.until,
    });
    Ok(pull)
}

/// Where `--since last` continues the table at `root`, or why the pull reads the whole table
/// instead: nothing to continue yet (the first run of a scheduled job makes a complete
/// mirror), or a last full read older than `--refresh-every` (how deletes reach a table fed
/// by pulls, which never see them).
async fn since_last(
    root: &crate::sink::Target,
    config: &crate::config::SnapshotConfig,
    spec: &crate::config::TimeSpec,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<std::result::Result<crate::format::Continue, String>> {
    let feed = crate::window::Feed::Pull {
        attribute: spec.attribute.clone(),
    };
    let Some(current) = config
        .output
        .format
        .publisher()
        .continues(root, &feed)
        .await?
    else {
        return Ok(Err(format!(
            "--since last: {} has no earlier run to continue, so this run reads the whole \
             table (a full refresh); later runs pull from it",
            root.url()
        )));
    };
    let Some(every) = config.run.refresh_every else {
        return Ok(Ok(current));
    };
    let every_text = crate::config::show_duration(every);
    Ok(match current.refreshed_at {
        None => Err(format!(
            "--refresh-every {every_text}: no run at {} records when the whole table was last \
             read, so this run reads it whole",
            root.url()
        )),
        Some(at) if started_at - at >= chrono::TimeDelta::from_std(every).unwrap_or_default() => {
            Err(format!(
                "--refresh-every {every_text}: the whole table was last read at {}, so this run \
                 reads it whole again (a full refresh, which also removes deleted items)",
                crate::window::show(at)
            ))
        }
        Some(_) => Ok(current),
    })
}

/// Admit a pull from a given `--since` into a Delta table or a dataset of pulls (see
/// [`crate::window`]): one that starts after what the table (the latest committed run) holds
/// leaves a gap, which `--on-gap` decides; `refresh` drops the window, so the run reads the
/// whole table. `--since last` continues by construction, and a resumed run was admitted when
/// it started. Returns the window to pull (`None`: the whole table) and what the summary says
/// about it.
async fn admit_pull(
    root: &crate::sink::Target,
    config: &crate::config::SnapshotConfig,
    time: Option<crate::filter::TimeFilter>,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<(Option<crate::filter::TimeFilter>, Option<String>)> {
    use crate::window::{Admission, ChangeWindow, Feed};
    let explicit = matches!(
        config.read.time.as_ref().and_then(|t| t.since),
        Some(crate::config::Since::At(_))
    );
    let Some(filter) = time.as_ref().filter(|_| explicit) else {
        return Ok((time, None));
    };
    let (Some(from), false) = (filter.since, config.run.resume) else {
        return Ok((time, None));
    };
    let change = ChangeWindow {
        feed: Feed::Pull {
            attribute: filter.attribute.clone(),
        },
        from,
        to: filter.until.map_or(started_at, |u| u.min(started_at)),
        id: None,
    };
    let publisher = config.output.format.publisher();
    let admission = publisher.admit(root, &change, config.run.on_gap).await?;
    Ok(match admission {
        // A pull is never "already applied": it reads current images again.
        Admission::Apply | Admission::AlreadyApplied(_) => (time, None),
        Admission::AcrossGap(_) => (time, admission.note()),
        Admission::Refresh(_) => (None, admission.note()),
    })
}

/// Where a run writes: `--to` itself, or, for incremental pulls and Delta tables, which keep
/// each run in a `run=` directory of `--to`, the run's directory (the unfinished one to resume,
/// or a new one; for a split run, the one its `--run-id` names). A shard's target is scoped to
/// its shard (its checkpoint and data file names).
pub(crate) async fn run_target(
    root: crate::sink::Target,
    config: &crate::config::SnapshotConfig,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<crate::sink::Target> {
    crate::format::check_kind(&root, config.output.format, config.read.time.is_some()).await?;
    if config.output.format == crate::format::TableFormat::Delta && !config.run.resume {
        crate::format::delta::check_writable(&root, config.output.column_mapping).await?;
    }
    let target = match (uses_run_dirs(config), config.run.shard, config.run.run_id) {
        (false, _, _) => root,
        (true, Some(_), Some(id)) => root.child(&crate::sink::run_dir_name(id)),
        (true, Some(shard), None) => {
            return Err(crate::error::Error::invalid(format!(
                "--shard {shard} needs --run-id here (see --help)"
            )));
        }
        (true, None, _) => root.run_dir(config.run.resume, started_at).await?,
    };
    // A snapshot folder is read as it is: the run's files wait in _staging/ until the commit.
    Ok(target
        .for_shard(config.run.shard)
        .staging(config.output.format.stages_files()))
}

/// True when runs write into `run=` folders of `--to` (incremental pulls, Delta tables).
pub(crate) fn uses_run_dirs(config: &crate::config::SnapshotConfig) -> bool {
    config.read.time.is_some() || config.output.format.runs_in_folders()
}

/// Make the run's folder ready for a new run: a `run=` folder is new (its first checkpoint
/// claims it), so only check that it can be written; `--to` itself must be empty, or is
/// cleared with `--overwrite`.
pub(crate) async fn prepare_new_run(
    target: &crate::sink::Target,
    config: &crate::config::SnapshotConfig,
) -> Result<()> {
    if uses_run_dirs(config) {
        target.probe().await
    } else {
        target.prepare(config.run.overwrite).await
    }
}

/// One Scan of one item with the run's index, projection and filters: DynamoDB checks the
/// expressions, so a mistake fails before anything is written. Only errors that a retry cannot
/// fix stop the run here (throttling and server errors are the scan's to handle).
async fn probe(
    aws: &AwsContext,
    table: &TableInfo,
    spec: &crate::filter::ScanSpec,
    keys: &[KeyAttribute],
    consistent_read: bool,
) -> Result<()> {
    let key_names: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
    let expressions = spec.expressions(&key_names)?;
    let sent = aws
        .dynamodb
        .scan()
        .table_name(&table.name)
        .set_index_name(spec.index.clone())
        .consistent_read(consistent_read)
        .set_filter_expression(expressions.filter)
        .set_projection_expression(expressions.projection)
        .set_expression_attribute_names(expressions.names)
        .set_expression_attribute_values(expressions.values)
        .limit(1)
        .send()
        .await;
    match sent.map_err(|e| aws.classify("Scan", &table.name, e)) {
        Ok(_) => Ok(()),
        Err(
            e @ (Error::InvalidArgument { .. }
            | Error::TableNotFound { .. }
            | Error::Credentials { .. }
            | Error::AccessDenied { .. }
            | Error::Unreachable { .. }),
        ) => Err(e),
        Err(_) => Ok(()),
    }
}

/// Items sampled to detect how a timestamp attribute holds time.
const FORMAT_SAMPLE: i32 = 200;

/// Detect the timestamp format from the first items that have the attribute: text is ISO 8601;
/// numbers with 12 digits or more before the point are epoch milliseconds, fewer are seconds.
async fn detect_format(
    aws: &AwsContext,
    table: &TableInfo,
    index: Option<&IndexInfo>,
    attribute: &str,
) -> Result<crate::filter::TsFormat> {
    use crate::filter::TsFormat;
    use aws_sdk_dynamodb::types::AttributeValue as AV;
    let out = aws
        .dynamodb
        .scan()
        .table_name(&table.name)
        .set_index_name(index.map(|i| i.name.clone()))
        .projection_expression("#t")
        .filter_expression("attribute_exists(#t)")
        .expression_attribute_names("#t", attribute)
        .limit(FORMAT_SAMPLE)
        .send()
        .await
        .map_err(|e| aws.classify("Scan", &table.name, e))?;
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for item in out.items() {
        let kind = match item.get(attribute) {
            Some(AV::S(_)) => "iso",
            Some(AV::N(n)) => {
                let digits =
                    crate::convert::number::Decimal::parse(n).map_or(0, |d| d.integer_digits());
                if digits >= 12 { "epoch-ms" } else { "epoch-s" }
            }
            _ => "other",
        };
        *counts.entry(kind).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    let hint = "pass --ts-format iso|epoch-s|epoch-ms";
    // The format most values have, if at least 4 in 5 have it (the others are counted as
    // unreadable timestamps during the pull).
    let winner = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .filter(|(_, n)| **n * 5 >= total * 4)
        .map(|(kind, _)| *kind);
    match winner {
        Some("iso") => Ok(TsFormat::Iso),
        Some("epoch-s") => Ok(TsFormat::EpochS),
        Some("epoch-ms") => Ok(TsFormat::EpochMs),
        _ if total == 0 => Err(Error::invalid(format!(
            "--filter-attr '{attribute}': none of the first {FORMAT_SAMPLE} items read has it, \
             so its format cannot be detected; check the name or {hint}"
        ))),
        _ => Err(Error::invalid(format!(
            "--filter-attr '{attribute}' holds mixed kinds of values ({}); {hint}",
            counts
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
