//! Where snapshots go: a local directory or an S3 prefix, both behind `object_store`.
//!
//! [`Destination::parse`] validates the `--to` URL; [`Target::open`] builds the store (S3 with
//! the aws-config credential bridge, or the local filesystem) and [`Target::prepare`] checks,
//! before any table read, that the location is usable: reachable, writable, and not already
//! holding a snapshot unless the caller asked to overwrite it.

mod dictionary;
pub(crate) mod physical;
pub mod reader;
pub(crate) mod rewrite;
pub(crate) mod sort;
pub(crate) mod stats;
pub(crate) mod writer;

use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::aws::SdkCredentials;
use crate::error::{BoxError, Error, Result};
use crate::shard::{SHARDS_DIR, Shard};

pub use writer::{Compression, DataFile};

/// Name of the commit marker at the snapshot root.
pub const MANIFEST_FILE: &str = "_manifest.json";
/// Name of the resume checkpoint at the snapshot root.
pub const CHECKPOINT_FILE: &str = "_checkpoint.json";
pub(crate) const PROBE_FILE: &str = "_ddbsnap_write_probe";
/// Folder of a run's folder where its data files wait until the commit moves them into place:
/// readers skip `_` folders (pandas, pyarrow, Spark) or glob `*.parquet` in the folder itself
/// (DuckDB, polars), so none of them sees an unfinished run.
pub const STAGING_DIR: &str = "_staging";

/// A validated `--to` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A local directory (created if missing).
    Local(PathBuf),
    /// An S3 bucket and key prefix (no leading or trailing slash).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix, possibly empty.
        prefix: String,
    },
}

/// An S3 error as the user reads it: the response's XML body, when there is one, reduced to its
/// error code and message; and the code.
fn s3_cause(cause: &str) -> (String, Option<String>) {
    let Some(start) = cause.find("<?xml").or_else(|| cause.find("<Error>")) else {
        return (cause.to_owned(), None);
    };
    let body = &cause[start..];
    let tag = |name: &str| {
        let (open, close) = (format!("<{name}>"), format!("</{name}>"));
        let from = body.find(&open)? + open.len();
        let to = body[from..].find(&close)? + from;
        Some(body[from..to].trim().to_owned())
    };
    let head = cause[..start].trim_end().trim_end_matches(':').trim_end();
    let code = tag("Code");
    let text = match (&code, tag("Message")) {
        (Some(code), Some(message)) => format!("{head}: {code}: {message}"),
        (Some(code), None) => format!("{head}: {code}"),
        _ => head.to_owned(),
    };
    (text, code)
}

/// URL schemes whose `scheme:` without `//` is a typo, not a local path.
const URL_SCHEMES: [&str; 12] = [
    "s3", "s3a", "s3n", "file", "http", "https", "gs", "gcs", "az", "abfs", "abfss", "dbfs",
];

impl Destination {
    /// For a local folder that does not exist yet, the outermost folder that opening it
    /// creates; `None` when it exists, or on S3.
    pub(crate) fn missing_local_root(&self) -> Option<PathBuf> {
        let Destination::Local(dir) = self else {
            return None;
        };
        let dir = std::path::absolute(dir).ok()?;
        let mut missing = None;
        for folder in dir.ancestors() {
            if folder.exists() {
                break;
            }
            missing = Some(folder.to_owned());
        }
        missing
    }

    /// Parse a local path, a `file://` URL or an `s3://bucket/prefix` URL.
    pub fn parse(to: &str) -> Result<Self> {
        let to = to.trim();
        if to.is_empty() {
            return Err(Error::invalid(
                "--to is empty; give a directory or an s3://bucket/prefix URL",
            ));
        }
        let scheme = to.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if scheme.is_none()
            && let Some((head, _)) = to.split_once(':')
            && URL_SCHEMES.contains(&head.to_ascii_lowercase().as_str())
        {
            // `s3:/bucket/p` or `s3:bucket/p` would otherwise be a local folder named `s3:`.
            return Err(Error::invalid(format!(
                "'{to}' looks like a mistyped URL ('{head}:' without '//'); write \
                 {head}://bucket/prefix, or ./{to} for a local folder of that name"
            )));
        }
        match scheme.as_deref() {
            None => Ok(Destination::Local(PathBuf::from(to))),
            Some("file") => {
                let url = url::Url::parse(to)
                    .map_err(|e| Error::invalid(format!("invalid --to URL '{to}': {e}")))?;
                let path = url.to_file_path().map_err(|_| {
                    Error::invalid(format!(
                        "invalid --to URL '{to}': not a local absolute path"
                    ))
                })?;
                Ok(Destination::Local(path))
            }
            Some("s3" | "s3a") => {
                let rest = &to[to.find("://").expect("has scheme") + 3..];
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let valid_bucket = (3..=63).contains(&bucket.len())
                    && bucket.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                    });
                if !valid_bucket {
                    return Err(Error::invalid(format!(
                        "invalid --to URL '{to}': '{bucket}' is not a valid S3 bucket name; \
                         use s3://bucket/prefix"
                    )));
                }
                Ok(Destination::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.trim_matches('/').to_owned(),
                })
            }
            Some(other) => Err(Error::invalid(format!(
                "unsupported --to URL scheme '{other}://' in '{to}'; use a local directory, \
                 file:///path or s3://bucket/prefix"
            ))),
        }
    }

    /// The location as a URL-ish string for messages and manifests.
    pub fn display(&self) -> String {
        match self {
            Destination::Local(p) => p.display().to_string(),
            Destination::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Destination::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// S3 settings that are not part of the shared AWS configuration.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Endpoint override for S3-compatible servers (else `AWS_ENDPOINT_URL_S3`, then
    /// `AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// Bucket region, when it differs from the DynamoDB region.
    pub region: Option<String>,
}

/// An opened destination: the store, the snapshot root inside it and its display URL.
#[derive(Debug, Clone)]
pub struct Target {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) root: Path,
    pub(crate) url: String,
    /// The shard of a split run writing here, if any: its checkpoint and data file names.
    pub(crate) shard: Option<Shard>,
    /// The run's data files wait in `_staging/` until the commit moves them into the folder:
    /// readers of a snapshot folder take every file in it (a Delta run folder is read only
    /// through the table's log, so its files need not wait).
    pub(crate) staged: bool,
}

impl Target {
    /// Build the object store for `dest`. Local destinations need no AWS configuration.
    pub async fn open(
        dest: &Destination,
        sdk: Option<&aws_config::SdkConfig>,
        s3: &S3Options,
    ) -> Result<Self> {
        let url = dest.display();
        match dest {
            Destination::Local(dir) => {
                let err = |message: String, e: std::io::Error| Error::Destination {
                    url: url.clone(),
                    message,
                    source: Some(Box::new(e)),
                };
                tokio::fs::create_dir_all(dir).await.map_err(|e| {
                    err(
                        format!("cannot create the directory: {e}; choose a writable location"),
                        e,
                    )
                })?;
                let abs = tokio::fs::canonicalize(dir)
                    .await
                    .map_err(|e| err(format!("cannot resolve the directory: {e}"), e))?;
                let store =
                    LocalFileSystem::new_with_prefix(&abs).map_err(|e| Error::Destination {
                        url: url.clone(),
                        message: e.to_string(),
                        source: Some(Box::new(e)),
                    })?;
                Ok(Target {
                    store: Arc::new(store),
                    root: Path::default(),
                    url: abs.display().to_string(),
                    shard: None,
                    staged: false,
                })
            }
            Destination::S3 { bucket, prefix } => {
                let sdk =
                    sdk.ok_or_else(|| Error::Internal("S3 needs an AWS configuration".into()))?;
                let provider = sdk
                    .credentials_provider()
                    .ok_or_else(|| Error::Credentials {
                        message: "no AWS credential chain available for S3".into(),
                        source: None,
                    })?;
                let region = s3
                    .region
                    .clone()
                    .or_else(|| sdk.region().map(|r| r.to_string()))
                    .unwrap_or_else(|| "us-east-1".to_owned());
                let endpoint = s3
                    .endpoint_url
                    .clone()
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
                    .filter(|e| !e.is_empty());
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_credentials(Arc::new(SdkCredentials::new(provider)));
                if let Some(endpoint) = endpoint {
                    builder = builder
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                let store = builder.build().map_err(|e| Error::Destination {
                    url: url.clone(),
                    message: format!("cannot configure S3: {e}"),
                    source: Some(Box::new(e)),
                })?;
                Ok(Target {
                    store: Arc::new(store),
                    root: Path::from(prefix.as_str()),
                    url,
                    shard: None,
                    staged: false,
                })
            }
        }
    }

    /// Open a location to read from (an export, a snapshot to apply changes to): nothing is
    /// created, and a local directory that does not exist is an error. A local location is
    /// opened over the whole filesystem, so files next to it (an incremental export's shared
    /// `data/` folder) are reachable from its root; an S3 location is opened over its bucket.
    pub async fn open_source(
        src: &Destination,
        sdk: Option<&aws_config::SdkConfig>,
        s3: &S3Options,
    ) -> Result<Self> {
        let Destination::Local(dir) = src else {
            return Self::open(src, sdk, s3).await;
        };
        let abs = match tokio::fs::canonicalize(dir).await {
            Ok(abs) if abs.is_dir() => abs,
            Ok(_) => {
                return Err(Error::invalid(format!(
                    "{} is a file, not a directory; give the directory that holds it",
                    dir.display()
                )));
            }
            Err(e) => {
                return Err(Error::invalid(format!(
                    "{} cannot be read ({e}); give an existing directory or an s3:// URL",
                    dir.display()
                )));
            }
        };
        let root = Path::from_absolute_path(&abs).map_err(|e| {
            Error::invalid(format!("{} cannot be used as a path: {e}", abs.display()))
        })?;
        Ok(Target {
            store: Arc::new(LocalFileSystem::new()),
            root,
            url: abs.display().to_string(),
            shard: None,
            staged: false,
        })
    }

    /// A target over a caller-provided store (tests, other object stores).
    pub fn from_store(store: Arc<dyn ObjectStore>, root: &str, url: impl Into<String>) -> Self {
        Target {
            store,
            root: Path::from(root),
            url: url.into(),
            shard: None,
            staged: false,
        }
    }

    /// The location `name` directly under this one (a run of a dataset root).
    pub fn child(&self, name: &str) -> Target {
        Target {
            store: Arc::clone(&self.store),
            root: self.root.clone().join(name),
            url: format!("{}/{name}", self.url.trim_end_matches('/')),
            shard: None,
            staged: false,
        }
    }

    /// The location this one is directly under, and this one's name in it (`None` at a store's
    /// root).
    pub(crate) fn split_parent(&self) -> Option<(Target, String)> {
        let name = self.root.filename()?.to_owned();
        let parent: Path = {
            let parts: Vec<_> = self.root.parts().collect();
            parts[..parts.len() - 1].iter().cloned().collect()
        };
        let url = self.url.trim_end_matches('/');
        let url = url.strip_suffix(&name).unwrap_or(url).trim_end_matches('/');
        Some((
            Target {
                store: Arc::clone(&self.store),
                root: parent,
                url: url.to_owned(),
                shard: None,
                staged: false,
            },
            name,
        ))
    }

    /// The run directory to write into under this dataset root: the latest unfinished run
    /// when `resume` (an error when there is none), else a new `run=<started_at>` one (an error
    /// when an unfinished run would be left behind).
    pub async fn run_dir(
        &self,
        resume: bool,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Target> {
        let runs = self.runs().await?;
        let unfinished = runs.iter().rev().find(|r| r.unfinished && !r.committed);
        if resume {
            let run = unfinished.ok_or_else(|| {
                Error::invalid(format!(
                    "{} has no unfinished run to resume; run without --resume",
                    self.url
                ))
            })?;
            return Ok(self.child(&run.name));
        }
        if let Some(run) = unfinished {
            return Err(Error::AlreadyExists {
                url: self.child(&run.name).url().to_owned(),
                what: "is an unfinished run of this dataset (or one still running); once no \
                       other run is writing it, pass --resume to continue it, or delete it"
                    .into(),
            });
        }
        // Two runs started within one second get `-2`, `-3`, ... (names still sort by start).
        let base = run_dir_name(started_at);
        let name = std::iter::once(base.clone())
            .chain((2..).map(|k| format!("{base}-{k}")))
            .find(|name| !runs.iter().any(|r| &r.name == name))
            .expect("some name is free");
        Ok(self.child(&name))
    }

    /// Runs (`run=<utc-id>` directories) under this dataset root, oldest first, with whether
    /// each is committed (has `_manifest.json`) or unfinished (has `_checkpoint.json` only).
    pub async fn runs(&self) -> Result<Vec<RunDir>> {
        let listing = self
            .store
            .list_with_delimiter(Some(&self.root))
            .await
            .map_err(|e| self.error("cannot list the dataset root", e))?;
        let mut runs = Vec::new();
        for prefix in listing.common_prefixes {
            let Some(name) = prefix.filename().filter(|n| n.starts_with(RUN_PREFIX)) else {
                continue;
            };
            let run = self.child(name);
            let exists = |file: &'static str| {
                let run = &run;
                async move {
                    match run.store.head(&run.path(file)).await {
                        Ok(_) => Ok(true),
                        Err(object_store::Error::NotFound { .. }) => Ok(false),
                        Err(e) => Err(run.error(&format!("reading {file}"), e)),
                    }
                }
            };
            runs.push(RunDir {
                name: name.to_owned(),
                committed: exists(MANIFEST_FILE).await?,
                unfinished: exists(CHECKPOINT_FILE).await?,
            });
        }
        runs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(runs)
    }

    /// This location, written by `shard` of a split run (its checkpoint and data file names).
    pub(crate) fn for_shard(self, shard: Option<Shard>) -> Target {
        Target { shard, ..self }
    }

    /// This location, its run's data files `staged` in `_staging/` until the commit.
    pub(crate) fn staging(self, staged: bool) -> Target {
        Target { staged, ..self }
    }

    /// The shard of a split run writing here.
    pub(crate) fn shard(&self) -> Option<Shard> {
        self.shard
    }

    /// Name of the checkpoint of the run (or shard) writing here.
    pub(crate) fn checkpoint_name(&self) -> String {
        self.shard
            .map_or_else(|| CHECKPOINT_FILE.to_owned(), |s| s.record_name())
    }

    /// Name of the data file numbered `index` of the run (or shard) writing here.
    pub(crate) fn data_file_name(&self, index: usize) -> String {
        let name = match self.shard {
            None => data_file_name(index),
            Some(shard) => format!("{}{index:05}.parquet", shard.file_prefix()),
        };
        if self.staged {
            staged_name(&name)
        } else {
            name
        }
    }

    /// True when `name` (relative to the root) is a data file, or its upload staging file,
    /// that the run (or shard) writing here may have left: in the folder or in `_staging/`; a
    /// shard's own only, for a shard.
    pub(crate) fn writes_data_file(&self, name: &str) -> bool {
        let name = name.split('#').next().unwrap_or(name);
        let (folder, file) = name.rsplit_once('/').unwrap_or(("", name));
        if !is_data_file_name(file) || !(folder.is_empty() || folder == STAGING_DIR) {
            return false;
        }
        match self.shard {
            None => true,
            Some(shard) => {
                folder == if self.staged { STAGING_DIR } else { "" }
                    && file.starts_with(&shard.file_prefix())
            }
        }
    }

    /// Path of `name` under the snapshot root; `/` separates folders (`_shards/0-of-4.json`).
    pub(crate) fn path(&self, name: &str) -> Path {
        name.split('/')
            .fold(self.root.clone(), |path, part| path.join(part))
    }

    /// The local directory of this location, when it is one.
    pub(crate) fn local_dir(&self) -> Option<PathBuf> {
        let dir = std::path::Path::new(&self.url);
        (!self.url.contains("://") && dir.is_absolute()).then(|| dir.to_owned())
    }

    /// The store behind this target.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Display URL of the snapshot root.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Map an object_store error into a destination error with a hint.
    pub(crate) fn error(&self, doing: &str, e: object_store::Error) -> Error {
        let hint = match &e {
            object_store::Error::NotFound { .. } => {
                "not found; check that the bucket exists and the prefix is right"
            }
            object_store::Error::PermissionDenied { .. } => {
                "permission denied; the identity needs s3:PutObject, s3:GetObject, s3:ListBucket \
                 and s3:DeleteObject here"
            }
            object_store::Error::Unauthenticated { .. } => {
                "the credentials were rejected; check the profile or the access key"
            }
            _ => "",
        };
        let (cause, code) = s3_cause(&crate::aws::root_cause(&e));
        if code.as_deref() == Some("NoSuchBucket") {
            return self.no_such_bucket(e);
        }
        let lower = cause.to_ascii_lowercase();
        let hint = if hint.is_empty()
            && (lower.contains("connect") || lower.contains("dns") || lower.contains("timed out"))
        {
            "cannot reach the S3 endpoint; check --s3-endpoint-url, --s3-region and the network"
        } else {
            hint
        };
        let message = if hint.is_empty() {
            format!("{doing}: {cause}")
        } else {
            format!("{doing}: {hint} ({cause})")
        };
        Error::Destination {
            url: self.url.clone(),
            message,
            source: Some(Box::new(e) as BoxError),
        }
    }

    /// True when `e` says the bucket does not exist (S3 answers a GET in a missing bucket with
    /// a 404 like a missing object's, told apart by its error code).
    pub(crate) fn is_no_such_bucket(e: &object_store::Error) -> bool {
        s3_cause(&crate::aws::root_cause(e)).1.as_deref() == Some("NoSuchBucket")
    }

    /// The error for a bucket that does not exist: its name, no S3 response body.
    pub(crate) fn no_such_bucket(&self, e: object_store::Error) -> Error {
        let bucket = self
            .url
            .strip_prefix("s3://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or(&self.url);
        Error::Destination {
            url: self.url.clone(),
            message: format!(
                "bucket '{bucket}' does not exist; check the name (and --s3-endpoint-url or \
                 --s3-region)"
            ),
            source: Some(Box::new(e) as BoxError),
        }
    }

    /// Everything ddbsnap may have written directly under the root (data files, their local
    /// staging files, the manifest, the checkpoint, the write probe). Anything else there is
    /// refused: ddbsnap never deletes files it did not write.
    pub(crate) async fn list_owned(&self) -> Result<Vec<OwnedFile>> {
        let listing: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&self.root))
            .try_collect()
            .await
            .map_err(|e| self.error("cannot list the destination", e))?;
        let ours = |name: &str| {
            // `part-00000.parquet#3` is a local upload staging file left by a killed run.
            let name = name.split('#').next().unwrap_or(name);
            name == MANIFEST_FILE
                || name == CHECKPOINT_FILE
                || name == PROBE_FILE
                || is_data_file_name(name)
        };
        let mut owned = Vec::new();
        for meta in listing {
            let rel: Vec<_> = meta
                .location
                .prefix_match(&self.root)
                .into_iter()
                .flatten()
                .collect();
            let name = rel.iter().map(|p| p.as_ref()).collect::<Vec<_>>().join("/");
            // A shard's record, or data files staged until the commit.
            let nested = rel.len() == 2
                && match rel[0].as_ref() {
                    SHARDS_DIR => Shard::from_record_name(&name).is_some(),
                    STAGING_DIR => is_data_file_name(
                        published_name(&name).split('#').next().unwrap_or_default(),
                    ),
                    _ => false,
                };
            if (rel.len() == 1 && ours(&name)) || nested {
                owned.push(OwnedFile {
                    name,
                    location: meta.location,
                    size: meta.size,
                });
            } else if !name.starts_with('.') || rel.len() > 1 {
                return Err(Error::Destination {
                    url: self.url.clone(),
                    message: format!(
                        "is not empty (found '{name}', which ddbsnap did not write); \
                         choose an empty location or a new prefix"
                    ),
                    source: None,
                });
            }
        }
        Ok(owned)
    }

    /// Check the destination before reading the table: it can be listed and written, and holds
    /// no snapshot (complete or not) unless `overwrite`, in which case the old one is removed,
    /// manifest first so it never describes half-deleted data. Files that ddbsnap did not write
    /// are never deleted: a location holding them is refused.
    pub async fn prepare(&self, overwrite: bool) -> Result<()> {
        let owned = self.list_owned().await?;
        let has = |name: &str| owned.iter().any(|f| f.name == name);
        if !owned.is_empty() && !overwrite {
            return Err(Error::AlreadyExists {
                url: self.url.clone(),
                what: if has(MANIFEST_FILE) {
                    "already holds a committed snapshot (_manifest.json); pass --overwrite to \
                     replace it"
                        .into()
                } else if has(CHECKPOINT_FILE) {
                    "holds an unfinished snapshot (_checkpoint.json, no _manifest.json); pass \
                     --resume to continue it or --overwrite to start over"
                        .into()
                } else {
                    "holds data files of a failed run (no _manifest.json); pass --overwrite to \
                     replace them"
                        .into()
                },
            });
        }
        if has(MANIFEST_FILE) {
            self.delete(&self.path(MANIFEST_FILE)).await?;
        }
        for file in owned {
            self.delete(&file.location).await?;
        }
        self.probe().await
    }

    /// The names of the files and of the folders directly under the root.
    pub(crate) async fn top_level(&self) -> Result<(Vec<String>, Vec<String>)> {
        let listing = self
            .store
            .list_with_delimiter(Some(&self.root))
            .await
            .map_err(|e| self.error("cannot list the destination", e))?;
        let name = |p: &Path| p.filename().map(str::to_owned);
        Ok((
            listing
                .objects
                .iter()
                .filter_map(|o| name(&o.location))
                .collect(),
            listing.common_prefixes.iter().filter_map(name).collect(),
        ))
    }

    /// Write and delete a small object: fails early when the destination is read-only.
    pub(crate) async fn probe(&self) -> Result<()> {
        let probe = self.path(PROBE_FILE);
        self.store
            .put(&probe, bytes::Bytes::from_static(b"ddbsnap").into())
            .await
            .map_err(|e| self.error("cannot write to the destination", e))?;
        self.delete(&probe).await
    }

    pub(crate) async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(&format!("cannot delete {path}"), e)),
        }
    }
}

/// Remove `dir` and the folders under it when none of them holds a file: what opening a
/// destination created for a run that then wrote nothing. Never removes a file.
pub(crate) fn remove_empty_folders(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_folders(&entry.path());
            }
        }
    }
    // Fails, and so keeps the folder, when anything is left in it.
    let _ = std::fs::remove_dir(dir);
}

/// Prefix of run directories under a dataset root: `run=2026-11-24T10-00-00Z`.
pub const RUN_PREFIX: &str = "run=";

/// The name of the `run=` directory of a run started at `started_at`.
pub(crate) fn run_dir_name(started_at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{RUN_PREFIX}{}", started_at.format("%Y-%m-%dT%H-%M-%SZ"))
}

/// One run directory under a dataset root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    /// Directory name (`run=...`).
    pub name: String,
    /// It holds `_manifest.json`.
    pub committed: bool,
    /// It holds `_checkpoint.json` (and, when not committed, can be resumed).
    pub unfinished: bool,
}

/// A file ddbsnap wrote under a snapshot root.
#[derive(Debug, Clone)]
pub(crate) struct OwnedFile {
    /// Name relative to the root.
    pub(crate) name: String,
    pub(crate) location: Path,
    pub(crate) size: u64,
}

/// Data file names: `part-00000.parquet`.
pub(crate) fn data_file_name(index: usize) -> String {
    format!("part-{index:05}.parquet")
}

/// Where the data file published as `name` waits until the commit: `_staging/<name>`.
pub(crate) fn staged_name(name: &str) -> String {
    format!("{STAGING_DIR}/{name}")
}

/// The name a data file written as `path` (relative to its run's folder) is published under:
/// `_staging/part-00000.parquet` is `part-00000.parquet` once the commit moves it into place.
pub(crate) fn published_name(path: &str) -> &str {
    path.strip_prefix(STAGING_DIR)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(path)
}

/// True when `name` (relative to a run's folder, staging suffix or not) is a data file of a
/// shard: `part-s<i>-<k>.parquet`, in the folder or staged in `_staging/`.
pub(crate) fn is_shard_data_file(name: &str) -> bool {
    let name = name.split('#').next().unwrap_or(name);
    let (folder, file) = name.rsplit_once('/').unwrap_or(("", name));
    (folder.is_empty() || folder == STAGING_DIR)
        && file.starts_with("part-s")
        && is_data_file_name(file)
}

pub(crate) fn is_data_file_name(name: &str) -> bool {
    data_file_index(name).is_some()
}

/// The index `n` of a data file name `part-n.parquet`, or of a shard's `part-s<i>-n.parquet`
/// (in a folder or not).
pub(crate) fn data_file_index(name: &str) -> Option<usize> {
    let name = name.rsplit('/').next().unwrap_or(name);
    let rest = name.strip_prefix("part-")?;
    let rest = match rest.strip_prefix('s') {
        Some(sharded) => {
            let (shard, rest) = sharded.split_once('-')?;
            if shard.len() < 3 || !shard.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            rest
        }
        None => rest,
    };
    rest.strip_suffix(".parquet")
        .filter(|n| n.len() >= 5 && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
}

/// The first data file index free after the files named `names`.
pub(crate) fn next_data_file_index<'a>(names: impl IntoIterator<Item = &'a str>) -> usize {
    names
        .into_iter()
        .filter_map(data_file_index)
        .max()
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_destinations() {
        assert_eq!(
            Destination::parse("./out/t").unwrap(),
            Destination::Local("./out/t".into())
        );
        assert_eq!(
            Destination::parse("file:///tmp/x").unwrap(),
            Destination::Local("/tmp/x".into())
        );
        assert_eq!(
            Destination::parse("s3://my-bucket/a/b/").unwrap(),
            Destination::S3 {
                bucket: "my-bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            Destination::parse("s3://my-bucket").unwrap(),
            Destination::S3 {
                bucket: "my-bucket".into(),
                prefix: "".into()
            }
        );
        for bad in [
            "",
            "s3://",
            "s3:///x",
            "s3://Bad_Bucket/x",
            "gs://b/x",
            "ftp://h/x",
            "s3:/bucket/p",
            "s3:bucket/p",
            "S3:/bucket",
            "file:/tmp/x",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn s3_errors_lose_their_xml() {
        let raw = "Client error with status 404 Not Found: <?xml version=\"1.0\" \
                   encoding=\"UTF-8\"?><Error><Code>NoSuchBucket</Code><Message>The specified \
                   bucket does not exist</Message><BucketName>b</BucketName></Error>";
        let (text, code) = s3_cause(raw);
        assert_eq!(
            text,
            "Client error with status 404 Not Found: NoSuchBucket: The specified bucket does \
             not exist"
        );
        assert_eq!(code.as_deref(), Some("NoSuchBucket"));
        assert_eq!(
            s3_cause("connection refused"),
            ("connection refused".into(), None)
        );
    }

    #[test]
    fn data_file_names() {
        assert_eq!(data_file_name(7), "part-00007.parquet");
        assert!(is_data_file_name("part-123456.parquet"));
        assert!(!is_data_file_name("part-00000-abc.snappy.parquet"));
        assert_eq!(data_file_index("part-s003-00012.parquet"), Some(12));
        assert_eq!(data_file_index("part-s3-00012.parquet"), None);
        let shard = Shard::new(3, 16).unwrap();
        let target = Target::from_store(Arc::new(object_store::memory::InMemory::new()), "", "mem")
            .for_shard(Some(shard));
        assert_eq!(target.data_file_name(12), "part-s003-00012.parquet");
        assert_eq!(target.checkpoint_name(), "_shards/3-of-16.json");
        assert!(target.writes_data_file("part-s003-00012.parquet#2"));
        assert!(!target.writes_data_file("part-s013-00012.parquet"));
        assert!(!target.writes_data_file("part-00012.parquet"));
        let staged = target.clone().staging(true);
        assert_eq!(staged.data_file_name(1), "_staging/part-s003-00001.parquet");
        assert!(staged.writes_data_file("_staging/part-s003-00001.parquet#1"));
        assert!(!staged.writes_data_file("part-s003-00001.parquet"));
        assert_eq!(data_file_index("_staging/part-s003-00001.parquet"), Some(1));
        assert_eq!(
            published_name("_staging/part-s003-00001.parquet"),
            "part-s003-00001.parquet"
        );
        let whole = target.for_shard(None).staging(true);
        assert_eq!(whole.data_file_name(2), "_staging/part-00002.parquet");
        assert!(whole.writes_data_file("part-s013-00012.parquet"));
        assert!(whole.writes_data_file("_staging/part-s013-00012.parquet"));
        assert!(whole.writes_data_file("_staging/part-00012.parquet#3"));
        assert!(!whole.writes_data_file("_shards/3-of-16.json"));
        assert!(!whole.writes_data_file("other/part-00012.parquet"));
    }
}
