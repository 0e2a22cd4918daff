//! The export control plane: starting a native export (full or incremental) and waiting
//! for it, point-in-time recovery, and the windows DynamoDB accepts for incremental exports.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use md5::{Digest, Md5};

use crate::aws::AwsContext;
use crate::error::{Error, Result};
use crate::progress::{Progress, ProgressEvent};
use crate::table::TableInfo;

/// What `--mode export` asks DynamoDB for.
#[derive(Debug, Clone, Default)]
pub struct ExportRequest {
    /// Bucket the export is written to.
    pub bucket: String,
    /// Key prefix in the bucket (the export goes to `<prefix>/AWSDynamoDB/<export-id>/`).
    pub prefix: String,
    /// Full export: the point in time (default: now).
    pub export_time: Option<DateTime<Utc>>,
    /// Incremental export: the window and the view type.
    pub incremental: Option<IncrementalRange>,
    /// `AES256` or `KMS`.
    pub sse_algorithm: Option<String>,
    /// KMS key for `KMS` encryption.
    pub kms_key_id: Option<String>,
    /// Account that owns the bucket, when it is not the caller's.
    pub bucket_owner: Option<String>,
    /// Ask for Ion text instead of DynamoDB JSON (both convert the same).
    pub ion: bool,
    /// Give up waiting after this long.
    pub timeout: Duration,
    /// Time between DescribeExport calls.
    pub poll_interval: Duration,
}

/// What an incremental export covers, as asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum IncrementalRange {
    /// One export of this window.
    Window(IncrementalWindow),
    /// From where the Delta table at `--to` is current (its last export's ExportToTime, or
    /// its last full refresh) to `until` (default: now), in consecutive exports of at most 24
    /// hours applied in order (see [`split_window`]).
    SinceLast {
        /// ExportToTime of the last export; `None`: now.
        until: Option<DateTime<Utc>>,
        /// Also export old images.
        old_images: bool,
    },
}

/// Cut `[from, to)` into the fewest consecutive windows DynamoDB accepts (at most 24 hours
/// each), of equal length in whole seconds (the last one takes the rest), so none is shorter
/// than 15 minutes when the whole is not. Errors when the whole is shorter than 15 minutes.
pub fn split_window(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    old_images: bool,
) -> Result<Vec<IncrementalWindow>> {
    let span = to - from;
    if span < MIN_WINDOW {
        return Err(Error::invalid(format!(
            "the table is current up to {from}; an incremental export covers at least 15 \
             minutes, so there is nothing to export before {}",
            from + MIN_WINDOW
        )));
    }
    let max = MAX_WINDOW.num_seconds();
    let count = ((span.num_seconds() + max - 1) / max).max(1);
    let step = TimeDelta::seconds(span.num_seconds() / count);
    Ok((0..count)
        .map(|i| IncrementalWindow {
            from: from + step * i as i32,
            to: if i + 1 == count {
                to
            } else {
                from + step * (i + 1) as i32
            },
            old_images,
        })
        .collect())
}

/// The window of an incremental export.
#[derive(Debug, Clone, PartialEq)]
pub struct IncrementalWindow {
    /// ExportFromTime.
    pub from: DateTime<Utc>,
    /// ExportToTime.
    pub to: DateTime<Utc>,
    /// Also export the old image of each change (`NEW_AND_OLD_IMAGES`), or only the new one.
    pub old_images: bool,
}

/// Shortest and longest incremental export window DynamoDB accepts.
pub const MIN_WINDOW: TimeDelta = TimeDelta::minutes(15);
/// See [`MIN_WINDOW`].
pub const MAX_WINDOW: TimeDelta = TimeDelta::hours(24);

impl IncrementalWindow {
    /// Check the window against DynamoDB's documented limits before asking for it.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<()> {
        let span = self.to - self.from;
        if span < MIN_WINDOW || span > MAX_WINDOW {
            return Err(Error::invalid(format!(
                "an incremental export covers at least 15 minutes and at most 24 hours; \
                 --since {} to --until {} is {} minutes",
                self.from,
                self.to,
                span.num_minutes()
            )));
        }
        if self.to > now {
            return Err(Error::invalid(format!(
                "--until {} is in the future; an incremental export ends in the past",
                self.to
            )));
        }
        Ok(())
    }
}

/// A finished native export.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletedExport {
    /// Its ARN.
    pub arn: String,
    /// Its directory: `s3://bucket/prefix/AWSDynamoDB/<export-id>`.
    pub dir: String,
}

/// How far back the table's point-in-time recovery reaches (`EarliestRestorableDateTime`);
/// `None` when point-in-time recovery is off or DynamoDB does not say.
pub async fn earliest_restorable(
    aws: &AwsContext,
    table: &TableInfo,
) -> Result<Option<DateTime<Utc>>> {
    Ok(point_in_time_recovery(aws, table)
        .await?
        .and_then(|p| p.earliest_restorable_date_time)
        .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())))
}

/// The table's point-in-time recovery settings, as DescribeContinuousBackups gives them.
async fn point_in_time_recovery(
    aws: &AwsContext,
    table: &TableInfo,
) -> Result<Option<aws_sdk_dynamodb::types::PointInTimeRecoveryDescription>> {
    let backups = aws
        .dynamodb
        .describe_continuous_backups()
        .table_name(&table.name)
        .send()
        .await
        .map_err(|e| aws.classify("DescribeContinuousBackups", &table.name, e))?;
    Ok(backups
        .continuous_backups_description
        .and_then(|d| d.point_in_time_recovery_description))
}

/// Start an export of `table` as `request` says and wait for it: point-in-time recovery is
/// checked first; the ClientToken is derived from the request, so running the same command
/// again within DynamoDB's 8-hour window returns the same export instead of starting another.
pub async fn run_export(
    aws: &AwsContext,
    table: &TableInfo,
    request: &ExportRequest,
    progress: &dyn Progress,
) -> Result<CompletedExport> {
    use aws_sdk_dynamodb::types::{
        ExportFormat, ExportType, ExportViewType, IncrementalExportSpecification, S3SseAlgorithm,
    };
    let pitr_off = || {
        Error::invalid(format!(
            "point-in-time recovery is off for table '{}', so DynamoDB cannot export it: \
             enable it (aws dynamodb update-continuous-backups --table-name {} \
             --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true) or \
             snapshot with a scan (leave out --mode export)",
            table.name, table.name
        ))
    };
    let enabled = point_in_time_recovery(aws, table)
        .await?
        .and_then(|p| p.point_in_time_recovery_status)
        .is_some_and(|s| s.as_str() == "ENABLED");
    if !enabled {
        return Err(pitr_off());
    }
    let window = match &request.incremental {
        None => None,
        Some(IncrementalRange::Window(window)) => {
            window.validate(Utc::now())?;
            Some(window)
        }
        Some(IncrementalRange::SinceLast { .. }) => {
            return Err(Error::Internal(
                "an incremental export from the last one was not resolved to windows".into(),
            ));
        }
    };
    let arn = table
        .arn
        .clone()
        .ok_or_else(|| Error::Internal("DescribeTable gave no table ARN".into()))?;
    let token = client_token(&arn, request, window);
    let mut call = aws
        .dynamodb
        .export_table_to_point_in_time()
        .table_arn(&arn)
        .s3_bucket(&request.bucket)
        .s3_prefix(&request.prefix)
        .export_format(if request.ion {
            ExportFormat::Ion
        } else {
            ExportFormat::DynamodbJson
        })
        .client_token(token)
        .set_s3_bucket_owner(request.bucket_owner.clone())
        .set_s3_sse_kms_key_id(request.kms_key_id.clone())
        .set_s3_sse_algorithm(request.sse_algorithm.as_deref().map(S3SseAlgorithm::from));
    call = match window {
        None => call
            .export_type(ExportType::FullExport)
            .set_export_time(request.export_time.map(to_smithy)),
        Some(w) => call
            .export_type(ExportType::IncrementalExport)
            .incremental_export_specification(
                IncrementalExportSpecification::builder()
                    .export_from_time(to_smithy(w.from))
                    .export_to_time(to_smithy(w.to))
                    .export_view_type(if w.old_images {
                        ExportViewType::NewAndOldImages
                    } else {
                        ExportViewType::NewImage
                    })
                    .build(),
            ),
    };
    let started = call.send().await.map_err(|e| {
        if e.as_service_error()
            .is_some_and(|s| s.is_point_in_time_recovery_unavailable_exception())
        {
            pitr_off()
        } else {
            aws.classify("ExportTableToPointInTime", &table.name, e)
        }
    })?;
    let export_arn = started
        .export_description()
        .and_then(|d| d.export_arn())
        .ok_or_else(|| Error::Internal("ExportTableToPointInTime gave no ARN".into()))?
        .to_owned();
    wait_for(aws, (&table.name, export_arn), request, progress).await
}

/// The ClientToken of the export `request` asks for of the table `arn`: the same request
/// gives the same token, so DynamoDB returns the export it started for it.
fn client_token(arn: &str, request: &ExportRequest, window: Option<&IncrementalWindow>) -> String {
    let mut md5 = Md5::new();
    for part in [
        arn,
        &request.bucket,
        &request.prefix,
        &format!("{:?}", request.export_time),
        &format!("{window:?}"),
        &format!("ion={}", request.ion),
    ] {
        md5.update(part.as_bytes());
        md5.update([0u8]);
    }
    let hex: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("ddbsnap-{hex}")
}

/// Poll the export `export_arn` of `table` until it completes (its directory), fails, or
/// outlasts the request's timeout.
async fn wait_for(
    aws: &AwsContext,
    (table, export_arn): (&str, String),
    request: &ExportRequest,
    progress: &dyn Progress,
) -> Result<CompletedExport> {
    use aws_sdk_dynamodb::types::ExportStatus;
    let since = std::time::Instant::now();
    loop {
        let described = aws
            .dynamodb
            .describe_export()
            .export_arn(&export_arn)
            .send()
            .await
            .map_err(|e| aws.classify("DescribeExport", table, e))?;
        let d = described
            .export_description()
            .ok_or_else(|| Error::Internal("DescribeExport gave no description".into()))?;
        let status = d
            .export_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        progress.event(&ProgressEvent::Exporting {
            arn: export_arn.clone(),
            status: status.clone(),
            seconds: since.elapsed().as_secs(),
        });
        match d.export_status() {
            Some(ExportStatus::Completed) => {
                let id = export_arn.rsplit('/').next().unwrap_or_default();
                let prefix = request.prefix.trim_matches('/');
                let dir = if prefix.is_empty() {
                    format!("s3://{}/AWSDynamoDB/{id}", request.bucket)
                } else {
                    format!("s3://{}/{prefix}/AWSDynamoDB/{id}", request.bucket)
                };
                return Ok(CompletedExport {
                    arn: export_arn,
                    dir,
                });
            }
            Some(ExportStatus::Failed) => {
                return Err(Error::ExportFailed {
                    arn: export_arn,
                    code: d.failure_code().unwrap_or("Unknown").to_owned(),
                    message: d.failure_message().unwrap_or_default().to_owned(),
                });
            }
            _ => {}
        }
        if since.elapsed() >= request.timeout {
            return Err(Error::ExportFailed {
                arn: export_arn,
                code: "Timeout".into(),
                message: format!(
                    "still {status} after {} s; it keeps running in DynamoDB: run the same \
                     command again later to pick it up, or raise --export-timeout",
                    since.elapsed().as_secs()
                ),
            });
        }
        tokio::time::sleep(request.poll_interval).await;
    }
}

fn to_smithy(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_nanos(t.timestamp_nanos_opt().unwrap_or_default() as i128)
        .unwrap_or_else(|_| aws_smithy_types::DateTime::from_secs(t.timestamp()))
}
