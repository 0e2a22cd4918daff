//! `ddbsnap optimize` and `ddbsnap vacuum`: keeping a Delta table that ddbsnap writes healthy
//! between runs (see [`crate::format::delta`]'s compaction and vacuum). Neither reads DynamoDB.

use std::sync::Arc;
use std::time::Duration;

use crate::aws::AwsContext;
use crate::error::{Error, Result};
use crate::format::delta::{Compaction, Vacuum, VacuumOptions};
use crate::progress::Progress;
use crate::sink::{Destination, S3Options, Target};

/// A Delta table to work on, and how to reach it.
#[derive(Debug, Clone)]
pub struct TableRequest {
    /// The table's location.
    pub destination: Destination,
    /// AWS access, for S3.
    pub aws: crate::aws::AwsOptions,
    /// S3 endpoint and region.
    pub s3: S3Options,
}

/// The location of `destination`, opened with the AWS access `aws` when it is on S3 (a
/// local one needs none).
pub(crate) async fn open_location(
    destination: &Destination,
    aws: &crate::aws::AwsOptions,
    s3: &S3Options,
) -> Result<Target> {
    let aws = match destination {
        Destination::Local(_) => None,
        _ => Some(AwsContext::load(aws).await?),
    };
    Target::open(destination, aws.as_ref().map(|a| &a.s3), s3).await
}

/// The Delta table of `request`; an error when its location holds none.
async fn open_table(request: &TableRequest) -> Result<Target> {
    let table = open_location(&request.destination, &request.aws, &request.s3).await?;
    if !crate::format::delta::exists(&table).await? {
        return Err(Error::Destination {
            url: table.url().to_owned(),
            message: "there is no Delta table here (no _delta_log with a commit); give the \
                      location the runs that write it were given"
                .into(),
            source: None,
        });
    }
    Ok(table)
}

/// `ddbsnap optimize`: compact the table's small files (with `cluster`, all of them) into
/// files of `target_file_bytes` in key order, in one commit that changes no data.
pub async fn optimize(
    request: &TableRequest,
    target_file_bytes: usize,
    cluster: bool,
    progress: Arc<dyn Progress>,
) -> Result<Compaction> {
    let table = open_table(request).await?;
    crate::format::delta::optimize(&table, target_file_bytes, cluster, progress).await
}

/// `ddbsnap vacuum`: remove the files no version inside the last `retain` needs (the table's
/// `delta.deletedFileRetentionDuration` when `None`; a shorter one only with `force`).
pub async fn vacuum(
    request: &TableRequest,
    retain: Option<Duration>,
    dry_run: bool,
    force: bool,
) -> Result<Vacuum> {
    let table = open_table(request).await?;
    let options = VacuumOptions {
        retain,
        dry_run,
        force,
    };
    crate::format::delta::vacuum(&table, options).await
}
