//! The one public error type of the library.
//!
//! Every failure a user can cause or meet (a wrong table name, missing credentials, an unreachable
//! endpoint, an unwritable destination, data that cannot be represented) has its own variant with
//! the context needed to say what is wrong and what to do, in one line. [`Error::exit_code`] is the
//! documented mapping the `ddbsnap` binary uses for its process exit status.

use std::fmt;

/// A boxed error source, kept for `-v` cause chains.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while planning, scanning, converting or writing a snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option or argument is invalid (bad URL, impossible value).
    #[error("{message}")]
    InvalidArgument {
        /// What is wrong and what to do.
        message: String,
    },

    /// The table (or index) does not exist where we looked.
    #[error(
        "table '{table}' not found in region {region}{endpoint}; check the table name, --region and --profile"
    )]
    TableNotFound {
        /// Table name as given.
        table: String,
        /// Region that was asked.
        region: String,
        /// ` at <endpoint>` when a custom endpoint was used, else empty.
        endpoint: String,
    },

    /// The table has no index of that name.
    #[error("table '{table}' has no index '{index}'; {known}")]
    IndexNotFound {
        /// Table name.
        table: String,
        /// Index name as given.
        index: String,
        /// The indexes there are.
        known: String,
    },

    /// No usable credentials, or the service rejected them.
    #[error("AWS credentials rejected or missing: {message}")]
    Credentials {
        /// What the service or the credential chain said, plus a hint.
        message: String,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },

    /// The credentials are valid but not allowed to do this.
    #[error("access denied: {message}")]
    AccessDenied {
        /// What the service said.
        message: String,
    },

    /// The DynamoDB endpoint could not be reached (DNS, refused connection, timeout).
    #[error(
        "cannot reach DynamoDB at {endpoint}: {message}; check --endpoint-url, --region and the network"
    )]
    Unreachable {
        /// Endpoint or region that was tried.
        endpoint: String,
        /// Short description of the failure.
        message: String,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },

    /// Any other DynamoDB error response.
    #[error("DynamoDB {operation} failed: {code}: {message}")]
    Dynamo {
        /// API operation (Scan, DescribeTable, ...).
        operation: &'static str,
        /// Error code returned by the service.
        code: String,
        /// Error message returned by the service.
        message: String,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },

    /// The destination cannot be read, written or created.
    #[error("destination {url}: {message}")]
    Destination {
        /// Destination URL or path.
        url: String,
        /// What failed and what to do.
        message: String,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },

    /// The destination already holds a (complete or incomplete) snapshot.
    #[error("{url} {what}")]
    AlreadyExists {
        /// Destination URL.
        url: String,
        /// What was found there and what to do.
        what: String,
    },

    /// A value cannot be represented losslessly in the output.
    #[error("attribute {path}: {message}")]
    Unrepresentable {
        /// Attribute path (`a.b[3]`).
        path: String,
        /// What is wrong.
        message: String,
    },

    /// A DynamoDB export is damaged, incomplete or not in a supported layout.
    #[error("export {url}: {message}")]
    CorruptExport {
        /// The export directory.
        url: String,
        /// What is wrong.
        message: String,
    },

    /// A native export failed or did not finish in time.
    #[error("DynamoDB export {arn} failed: {code}: {message}")]
    ExportFailed {
        /// The export's ARN.
        arn: String,
        /// FailureCode (or `Timeout`).
        code: String,
        /// FailureMessage.
        message: String,
    },

    /// Encoding or decoding Parquet/Arrow data failed.
    #[error("{context}: {source}")]
    Format {
        /// What was being done.
        context: String,
        /// Underlying Arrow or Parquet error.
        #[source]
        source: BoxError,
    },

    /// DynamoDB kept throttling or failing one segment's requests for longer than the retry
    /// timeout.
    #[error(
        "gave up on segment {segment} after {seconds} s of throttled or failed requests (last: \
         {last}); lower --read-fraction or --max-rcu, or try again later"
    )]
    GaveUp {
        /// Segment number.
        segment: u32,
        /// Seconds spent retrying.
        seconds: u64,
        /// The last error.
        last: String,
    },

    /// The run was interrupted (Ctrl-C) before its commit. The open data file was closed and
    /// the checkpoint saved, so the run can be resumed.
    #[error(
        "interrupted: no snapshot was committed at {url}; progress is saved in \
         _checkpoint.json: run the same command with --resume to continue, or with --overwrite \
         to start over"
    )]
    Interrupted {
        /// Snapshot root.
        url: String,
    },

    /// A sync was interrupted (a second Ctrl-C or SIGTERM, or one during its full load) before
    /// its commit; the next sync continues the run.
    #[error(
        "interrupted: nothing more was committed to {url}; progress is saved: run the same sync \
         again to continue"
    )]
    SyncInterrupted {
        /// The Delta table.
        url: String,
    },

    /// The run failed after it started writing; what it wrote up to its last checkpoint is
    /// kept. [`Error::kind`] is the kind of `error`.
    #[error("{error}; progress is saved in {url}/{checkpoint}: once the cause is fixed, {how}")]
    Incomplete {
        /// What went wrong.
        #[source]
        error: Box<Error>,
        /// Snapshot root.
        url: String,
        /// The checkpoint's name in it.
        checkpoint: String,
        /// How to continue.
        how: &'static str,
    },

    /// `ddbsnap commit` was asked to publish a split run whose shards have not all finished.
    #[error("cannot commit {url} yet: {message}")]
    NotReady {
        /// The run's folder.
        url: String,
        /// Which shards are missing, and what to do.
        message: String,
    },

    /// A change set that does not continue the table it would be applied to: it ends before
    /// what the table holds, or starts after it and so leaves a gap (see `--on-gap`). Nothing
    /// was written.
    #[error("{url}: {message}")]
    OutOfOrder {
        /// The table (a Delta table, or the snapshot the changes apply to).
        url: String,
        /// Both windows, and what to do.
        message: String,
    },

    /// Changes of the table's DynamoDB stream were lost before ddbsnap read them: a position
    /// older than the stream's 24 hours, a shard dropped before it was read to its end, or a
    /// new stream (the old one was disabled). Nothing was written (see `--on-gap`).
    #[error(
        "table {table}: {message}; refresh the Delta table from the whole table (sync --on-gap refresh) to start over from a full load"
    )]
    StreamGap {
        /// The DynamoDB table.
        table: String,
        /// What was lost.
        message: String,
    },

    /// A bug: an invariant of ddbsnap itself did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The process exit codes of the `ddbsnap` binary, one per failure class (documented in docs/exit-codes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitKind {
    /// 1: unexpected failure (a bug, or a service error not listed here).
    Other,
    /// 2: invalid arguments or options.
    Usage,
    /// 3: table or index not found.
    NotFound,
    /// 4: missing or rejected credentials, access denied.
    Auth,
    /// 5: DynamoDB endpoint unreachable.
    Network,
    /// 6: destination cannot be written or read.
    Destination,
    /// 7: data cannot be represented.
    Data,
    /// 8: destination already holds a snapshot.
    Exists,
    /// 9: DynamoDB kept throttling or failing requests past the retry timeout.
    Throttled,
    /// 10: `commit` of a split run before every shard finished.
    NotReady,
    /// 11: a change set that does not continue the table (older, or after a gap).
    OutOfOrder,
    /// 12: changes of the table's stream were lost before they were read.
    StreamGap,
    /// 130: interrupted.
    Interrupted,
}

impl ExitKind {
    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Other => 1,
            ExitKind::Usage => 2,
            ExitKind::NotFound => 3,
            ExitKind::Auth => 4,
            ExitKind::Network => 5,
            ExitKind::Destination => 6,
            ExitKind::Data => 7,
            ExitKind::Exists => 8,
            ExitKind::Throttled => 9,
            ExitKind::NotReady => 10,
            ExitKind::OutOfOrder => 11,
            ExitKind::StreamGap => 12,
            ExitKind::Interrupted => 130,
        }
    }
}

impl Error {
    /// Which documented exit class this error belongs to.
    pub fn kind(&self) -> ExitKind {
        match self {
            Error::InvalidArgument { .. } => ExitKind::Usage,
            Error::TableNotFound { .. } | Error::IndexNotFound { .. } => ExitKind::NotFound,
            Error::Credentials { .. } | Error::AccessDenied { .. } => ExitKind::Auth,
            Error::Unreachable { .. } => ExitKind::Network,
            Error::Destination { .. } => ExitKind::Destination,
            Error::AlreadyExists { .. } => ExitKind::Exists,
            Error::Unrepresentable { .. } | Error::CorruptExport { .. } => ExitKind::Data,
            Error::Interrupted { .. } | Error::SyncInterrupted { .. } => ExitKind::Interrupted,
            Error::GaveUp { .. } => ExitKind::Throttled,
            Error::NotReady { .. } => ExitKind::NotReady,
            Error::OutOfOrder { .. } => ExitKind::OutOfOrder,
            Error::StreamGap { .. } => ExitKind::StreamGap,
            Error::Incomplete { error, .. } => error.kind(),
            Error::Dynamo { .. }
            | Error::ExportFailed { .. }
            | Error::Format { .. }
            | Error::Internal(_) => ExitKind::Other,
        }
    }

    /// The process exit code for this error (see [`ExitKind`]).
    pub fn exit_code(&self) -> u8 {
        self.kind().code()
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            message: message.into(),
        }
    }

    pub(crate) fn format(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Format {
            context: context.into(),
            source: source.into(),
        }
    }

    pub(crate) fn unrepresentable(path: &AttrPath, message: impl Into<String>) -> Self {
        Error::Unrepresentable {
            path: path.to_string(),
            message: message.into(),
        }
    }
}

/// An attribute path inside an item (`top.field[3].x`), built while walking values so errors
/// can say exactly where they happened.
#[derive(Debug, Default, Clone)]
pub(crate) struct AttrPath(Vec<PathPart>);

#[derive(Debug, Clone)]
enum PathPart {
    Field(String),
    Index(usize),
}

impl AttrPath {
    pub(crate) fn push_field(&mut self, name: &str) {
        self.0.push(PathPart::Field(name.to_owned()));
    }
    pub(crate) fn push_index(&mut self, i: usize) {
        self.0.push(PathPart::Index(i));
    }
    pub(crate) fn pop(&mut self) {
        self.0.pop();
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<item>");
        }
        for (i, part) in self.0.iter().enumerate() {
            match part {
                PathPart::Field(name) if i == 0 => write!(f, "'{name}'")?,
                PathPart::Field(name) => write!(f, ".'{name}'")?,
                PathPart::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of every variant, with the context a run gives it.
    fn samples() -> Vec<Error> {
        let s = |t: &str| t.to_owned();
        let all = vec![
            Error::invalid("--segments must be between 1 and 1000000, got 0"),
            Error::TableNotFound {
                table: s("orders"),
                region: s("eu-west-1"),
                endpoint: String::new(),
            },
            Error::IndexNotFound {
                table: s("orders"),
                index: s("byStatus"),
                known: s("it has no secondary indexes"),
            },
            Error::Credentials {
                message: s("no usable AWS credentials found"),
                source: None,
            },
            Error::AccessDenied {
                message: s("the identity needs dynamodb:Scan on table 'orders'"),
            },
            Error::Unreachable {
                endpoint: s("http://127.0.0.1:1"),
                message: s("connection refused"),
                source: None,
            },
            Error::Dynamo {
                operation: "Scan",
                code: s("InternalServerError"),
                message: s("(the service gave no message)"),
                source: None,
            },
            Error::Destination {
                url: s("s3://lake/orders"),
                message: s("cannot write to the destination: access denied"),
                source: None,
            },
            Error::AlreadyExists {
                url: s("s3://lake/orders"),
                what: s("holds a Delta table (_delta_log/), not a snapshot folder"),
            },
            Error::Unrepresentable {
                path: s("'a'.'b'[3]"),
                message: s("a number with more than 38 digits"),
            },
            Error::CorruptExport {
                url: s("s3://raw/AWSDynamoDB/0170-x"),
                message: s("data/x.json.gz: MD5 does not match"),
            },
            Error::ExportFailed {
                arn: s("arn:aws:dynamodb:us-east-1:1:table/orders/export/0170-x"),
                code: s("Timeout"),
                message: s("not finished after 7200 s"),
            },
            Error::format("writing part-00000.parquet", "disk full"),
            Error::GaveUp {
                segment: 3,
                seconds: 600,
                last: s("ProvisionedThroughputExceededException"),
            },
            Error::Interrupted { url: s("./orders") },
            Error::SyncInterrupted { url: s("./orders") },
            Error::Incomplete {
                error: Box::new(Error::invalid("x")),
                url: s("./orders"),
                checkpoint: s("_checkpoint.json"),
                how: "run the same command with --resume",
            },
            Error::NotReady {
                url: s("s3://lake/orders"),
                message: s("shards 3 of 16 have not finished"),
            },
            Error::OutOfOrder {
                url: s("s3://lake/orders"),
                message: s("it holds every change up to 2026-11-21T00:00:00Z"),
            },
            Error::StreamGap {
                table: s("orders"),
                message: s("a new stream since the table last read one"),
            },
            Error::Internal(s("an invariant")),
        ];
        for e in &all {
            has_a_sample(e);
        }
        all
    }

    /// Adding a variant fails to compile here until [`samples`] has one of it.
    fn has_a_sample(e: &Error) {
        match e {
            Error::InvalidArgument { .. }
            | Error::TableNotFound { .. }
            | Error::IndexNotFound { .. }
            | Error::Credentials { .. }
            | Error::AccessDenied { .. }
            | Error::Unreachable { .. }
            | Error::Dynamo { .. }
            | Error::Destination { .. }
            | Error::AlreadyExists { .. }
            | Error::Unrepresentable { .. }
            | Error::CorruptExport { .. }
            | Error::ExportFailed { .. }
            | Error::Format { .. }
            | Error::GaveUp { .. }
            | Error::Interrupted { .. }
            | Error::SyncInterrupted { .. }
            | Error::Incomplete { .. }
            | Error::NotReady { .. }
            | Error::OutOfOrder { .. }
            | Error::StreamGap { .. }
            | Error::Internal(_) => {}
        }
    }

    #[test]
    fn every_message_is_one_line_in_the_users_words() {
        let samples = samples();
        assert_eq!(samples.len(), 21);
        for e in samples {
            let text = e.to_string();
            assert!(!text.contains('\n') && !text.trim().is_empty(), "{text}");
            assert!(
                !text.trim_end().ends_with(':'),
                "nothing after a colon: {text}"
            );
            assert!(!text.contains(": :"), "{text}");
            let leaks = crate::cli::words::leaks(&text);
            assert!(leaks.is_empty(), "{leaks:?}");
        }
    }

    #[test]
    fn exit_codes_are_distinct_and_documented() {
        let codes: Vec<u8> = samples()
            .iter()
            .filter(|e| !matches!(e, Error::Incomplete { .. }))
            .map(Error::exit_code)
            .collect();
        assert!(codes.contains(&11));
        let doc = include_str!("../docs/exit-codes.md");
        for code in codes {
            assert!(
                doc.contains(&format!("| {code} ")),
                "docs/exit-codes.md has {code}"
            );
        }
    }
}
