//! The command line as a library: parse the arguments, run the command, and print its result
//! (or hand it back as JSON). The `ddbsnap` binary is [`main`]; the Python package's console
//! script and its functions call [`main`] and [`run_json`].

use std::error::Error as _;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::sync::Arc;

use clap::Parser;

use crate::cli::{
    ApplyArgs, Cli, Command, CommitArgs, ConvertExportArgs, DescribeArgs, OptimizeArgs,
    ProgressMode, SnapshotArgs, SyncArgs, VacuumArgs,
};
use crate::mode::RunMode;
use crate::progress::{BarProgress, JsonProgress, NoProgress, Progress, ProgressEvent};
use crate::{CancellationToken, Error};

/// Run the command line `args` (the program name first) as the `ddbsnap` binary: the result on
/// stdout, errors as one line on stderr (with their causes under `-v`), Ctrl-C stopping the run
/// cleanly. Returns the exit code.
pub fn main<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code().clamp(0, 255) as u8;
        }
    };
    let verbose = cli.verbose;
    let printed = runtime().and_then(|rt| {
        rt.block_on(async {
            let outcome = execute(cli.command, None).await?;
            outcome.print()
        })
    });
    match printed {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {err}");
            if verbose {
                let mut source = err.source();
                while let Some(cause) = source {
                    eprintln!("  caused by: {cause}");
                    source = cause.source();
                }
            }
            err.exit_code()
        }
    }
}

/// Every command's arguments as the Python API takes them, as JSON (see
/// `python/ddbsnap/__init__.pyi`, generated from it by `scripts/gen-stubs`).
pub fn python_signatures() -> String {
    crate::cli::python_signatures().to_string()
}

/// Run the command line `args` (the program name first) and return its result as the JSON
/// `--json` prints (a run's summary, a table's description), stopping cleanly when `cancel`
/// fires. Progress goes to stderr as `--progress` says (by default a bar only when stderr is a
/// terminal). A command line that does not parse is [`Error::InvalidArgument`].
pub fn run_json<I, T>(args: I, cancel: CancellationToken) -> Result<serde_json::Value, Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(|e| {
        let text = e.to_string();
        let line = text
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        Error::invalid(line.to_owned())
    })?;
    runtime()?.block_on(async { execute(cli.command, Some(cancel)).await?.json() })
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("starting the runtime: {e}")))
}

/// What a command gives back, and whether the user asked for it as JSON.
enum Outcome {
    Summary(Box<crate::Summary>, bool),
    Description(Box<crate::describe::Description>, bool),
    Compaction(Box<crate::format::delta::Compaction>, bool),
    Vacuum(Box<crate::format::delta::Vacuum>, bool),
    Sync(Box<crate::pipeline::SyncSummary>, bool),
}

impl Outcome {
    fn json(&self) -> Result<serde_json::Value, Error> {
        match self {
            Outcome::Summary(s, _) => serde_json::to_value(s),
            Outcome::Description(d, _) => serde_json::to_value(d),
            Outcome::Compaction(c, _) => serde_json::to_value(c),
            Outcome::Vacuum(v, _) => serde_json::to_value(v),
            Outcome::Sync(s, _) => serde_json::to_value(s),
        }
        .map_err(|e| Error::Internal(format!("serializing the result: {e}")))
    }

    fn print(&self) -> Result<(), Error> {
        match self {
            Outcome::Summary(s, json) => report(s, *json),
            Outcome::Description(d, false) => {
                println!("{}", d.render());
                Ok(())
            }
            Outcome::Description(_, true)
            | Outcome::Compaction(_, true)
            | Outcome::Vacuum(_, true)
            | Outcome::Sync(_, true) => {
                println!("{}", self.json()?);
                Ok(())
            }
            Outcome::Compaction(c, false) => {
                println!("{}", compaction_line(c));
                Ok(())
            }
            Outcome::Sync(s, false) => {
                if let Some(load) = &s.bootstrap {
                    report(load, false)?;
                }
                for commit in &s.commits {
                    warn(commit);
                }
                println!("{}", sync_line(s));
                Ok(())
            }
            Outcome::Vacuum(v, false) => {
                for file in &v.files {
                    println!("{file}");
                }
                println!("{}", vacuum_line(v));
                Ok(())
            }
        }
    }
}

/// Run `command`; `cancel` stops it (`None`: the first Ctrl-C does).
async fn execute(command: Command, cancel: Option<CancellationToken>) -> Result<Outcome, Error> {
    match command {
        Command::Snapshot(args) => snapshot(*args, cancel).await,
        Command::Describe(args) => describe(args).await,
        Command::ConvertExport(args) => convert_export(args, cancel).await,
        Command::Apply(args) => apply(args, cancel).await,
        Command::Commit(args) => commit(args).await,
        Command::Optimize(args) => optimize(args).await,
        Command::Vacuum(args) => vacuum(args).await,
        Command::Sync(args) => sync(*args, cancel).await,
    }
}

async fn optimize(args: OptimizeArgs) -> Result<Outcome, Error> {
    let request = args.table.to_request()?;
    let (progress, _) = start(args.progress, None);
    let target = args.file_size.max(1).saturating_mul(1 << 20);
    let done = crate::pipeline::optimize(&request, target, args.cluster, progress).await?;
    Ok(Outcome::Compaction(Box::new(done), args.table.json))
}

async fn vacuum(args: VacuumArgs) -> Result<Outcome, Error> {
    let request = args.table.to_request()?;
    let done = crate::pipeline::vacuum(&request, args.retain, args.dry_run, args.force).await?;
    Ok(Outcome::Vacuum(Box::new(done), args.table.json))
}

/// What `optimize` did, in one line.
fn compaction_line(c: &crate::format::delta::Compaction) -> String {
    match c.version {
        None => format!(
            "{}: nothing to compact ({} files, fewer than two of them small)",
            c.table, c.files_before
        ),
        Some(version) => format!(
            "{}: version {version} compacted {} small files into {} ({} rows, {} → {} bytes); \
             {} files now, {} before ({:.1}s)",
            c.table,
            c.files_removed,
            c.files_added,
            c.rows,
            c.bytes_removed,
            c.bytes_added,
            c.files_after,
            c.files_before,
            c.seconds
        ),
    }
}

/// What `vacuum` did, in one line.
fn vacuum_line(v: &crate::format::delta::Vacuum) -> String {
    let verb = if v.dry_run { "would remove" } else { "removed" };
    format!(
        "{}: {verb} {} files ({} bytes) that no version since {} (the window of {}h) needs",
        v.table,
        v.files.len(),
        v.bytes,
        v.oldest_version_kept,
        v.retain_hours
    )
}

async fn commit(args: CommitArgs) -> Result<Outcome, Error> {
    let request = args.to_request()?;
    let (progress, _) = start(args.progress, None);
    let summary = crate::pipeline::commit_shards(&request, progress).await?;
    Ok(Outcome::Summary(Box::new(summary), args.json))
}

async fn describe(args: DescribeArgs) -> Result<Outcome, Error> {
    let aws = crate::aws::AwsContext::load(&args.aws.options(args.endpoint_url.as_deref())).await?;
    let description = crate::describe::describe(
        &aws,
        &args.table,
        args.index.as_deref(),
        args.read_fraction,
        args.max_rcu,
        args.consistent_read,
    )
    .await?;
    Ok(Outcome::Description(Box::new(description), args.json))
}

async fn snapshot(args: SnapshotArgs, cancel: Option<CancellationToken>) -> Result<Outcome, Error> {
    let config = args.to_config()?;
    let (progress, cancel) = start(args.output.progress, cancel);
    let summary = crate::Snapshot::new(config)
        .progress(progress)
        .cancel(cancel)
        .await?;
    Ok(Outcome::Summary(Box::new(summary), args.output.json))
}

async fn sync(args: SyncArgs, cancel: Option<CancellationToken>) -> Result<Outcome, Error> {
    let (config, options) = args.to_config()?;
    let (progress, cancel, stop) = match cancel {
        // The caller's token (the Python API's Ctrl-C) interrupts; nothing else stops it.
        Some(cancel) => {
            let (progress, cancel) = start(args.output.progress, Some(cancel));
            (progress, cancel, CancellationToken::new())
        }
        None => {
            let (progress, cancel) = start(args.output.progress, Some(CancellationToken::new()));
            (progress, cancel, stop_on_signals())
        }
    };
    let summary = crate::pipeline::sync(&config, options, progress, (cancel, stop)).await?;
    Ok(Outcome::Sync(Box::new(summary), args.output.json))
}

/// The next SIGTERM (Unix) or Ctrl-C.
async fn signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// A token the first SIGTERM or Ctrl-C fires: a sync commits what it read and ends, exit 0. A
/// second one exits at once (130).
fn stop_on_signals() -> CancellationToken {
    let stop = CancellationToken::new();
    let fire = stop.clone();
    tokio::spawn(async move {
        for _ in 0..2 {
            signalled().await;
            if fire.is_cancelled() {
                std::process::exit(130);
            }
            eprintln!("stopping: committing what was read (send the signal again to quit at once)");
            fire.cancel();
        }
    });
    stop
}

/// The line a sync ends with: what it merged from the stream, and how fresh the table is.
fn sync_line(s: &crate::pipeline::SyncSummary) -> String {
    let merged: Vec<String> = s
        .commits
        .iter()
        .filter_map(|c| {
            let d = c.delta.as_ref()?;
            let m = d.merge.as_ref()?;
            Some(format!(
                "version {}: {} inserted, {} updated, {} deleted",
                d.version, m.rows_inserted, m.rows_updated, m.rows_deleted
            ))
        })
        .collect();
    let lag = s
        .lag_seconds
        .map(|l| format!("; newest record {l:.1} s before its commit"))
        .unwrap_or_default();
    let behind = match s.behind_seconds {
        Some(b) if b >= 3600.0 => format!(" (the table was {:.1} hours behind)", b / 3600.0),
        _ => String::new(),
    };
    let changes = match (&s.changes, s.changes_version) {
        (Some(url), Some(version)) => format!("\nchanges: {url} (version {version})"),
        (Some(url), None) => format!("\nchanges: {url} (nothing appended)"),
        _ => String::new(),
    };
    format!(
        "synced {} from its stream: {} records{behind} ({} GetRecords calls, no table reads) merged as {}{lag}\n{}{changes}",
        s.table,
        s.records,
        s.get_records_calls,
        if merged.is_empty() {
            "nothing".to_owned()
        } else {
            merged.join("; ")
        },
        s.url
    )
}

async fn convert_export(
    args: ConvertExportArgs,
    cancel: Option<CancellationToken>,
) -> Result<Outcome, Error> {
    let (source, config) = args.to_config()?;
    let (progress, cancel) = start(args.output.progress, cancel);
    let summary =
        crate::pipeline::convert_export(&source, &args.key, &config, progress, cancel).await?;
    Ok(Outcome::Summary(Box::new(summary), args.output.json))
}

async fn apply(args: ApplyArgs, cancel: Option<CancellationToken>) -> Result<Outcome, Error> {
    let (changes, base, config) = args.to_config()?;
    let (progress, cancel) = start(args.output.progress, cancel);
    let summary =
        crate::pipeline::apply(&changes, &base, &args.key, &config, progress, cancel).await?;
    Ok(Outcome::Summary(Box::new(summary), args.output.json))
}

/// The progress reporter, and the cancellation token: `cancel`, or one fired by Ctrl-C.
fn start(
    mode: ProgressMode,
    cancel: Option<CancellationToken>,
) -> (Arc<dyn Progress>, CancellationToken) {
    let progress: Arc<dyn Progress> = match mode {
        ProgressMode::Auto if std::io::stderr().is_terminal() => Arc::new(BarProgress::new()),
        ProgressMode::Bar => Arc::new(BarProgress::new()),
        ProgressMode::Json => Arc::new(JsonProgress::default()),
        ProgressMode::Auto | ProgressMode::None => Arc::new(NoProgress),
    };
    if let Some(cancel) = cancel {
        return (Arc::new(Announce(progress)), cancel);
    }
    // First Ctrl-C: stop reading, close the open file, save the checkpoint, commit nothing,
    // exit 130. A second one exits at once.
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "interrupted: closing the open file and saving a checkpoint (press Ctrl-C again \
                 to quit at once)"
            );
            on_signal.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    (Arc::new(Announce(progress)), cancel)
}

/// Print the summary: one line (and the URL), or JSON.
fn report(summary: &crate::Summary, json: bool) -> Result<(), Error> {
    warn(summary);
    // A filtered scan reads (and pays for) more items than it writes: say so.
    let scanned = if summary.items_scanned != summary.items {
        format!(" (of {} scanned)", summary.items_scanned)
    } else {
        String::new()
    };
    let resumed = if summary.runs > 1 {
        format!(" (resumed; totals over {} runs)", summary.runs)
    } else {
        String::new()
    };
    let throttled = if summary.throttled_requests > 0 {
        format!(
            ", {} throttled requests retried",
            summary.throttled_requests
        )
    } else {
        String::new()
    };
    let committed = how_committed(summary, &resumed);
    if json {
        println!(
            "{}",
            serde_json::to_string(summary).map_err(|e| Error::Internal(e.to_string()))?
        );
    } else if summary.already_applied {
        println!(
            "{}",
            summary.window_note.as_deref().unwrap_or("already applied")
        );
    } else if summary.already_committed {
        println!(
            "snapshot of {} was already committed: {} items in {} files; nothing to resume\n{}",
            summary.table, summary.items, summary.files, summary.url,
        );
    } else {
        println!(
            "snapshot of {} {committed}: {} items{scanned} in {} files ({:.1} MiB), {}{throttled}, {:.1} s\n{}",
            summary.table,
            summary.items,
            summary.files,
            summary.bytes as f64 / (1 << 20) as f64,
            reads(summary),
            summary.seconds,
            summary.url,
        );
    }
    Ok(())
}

/// The warnings of a summary (items left out, a window note, `--columns` that matched
/// nothing), on stderr.
fn warn(summary: &crate::Summary) {
    if let Some(w) = &summary.watermark {
        let left_out = w.stats.missing + w.stats.invalid;
        if left_out > 0 {
            eprintln!(
                "ddbsnap: left out {} items without '{}' and {} whose '{}' is not a readable {} timestamp (counted in the manifest's watermark)",
                w.stats.missing, w.attribute, w.stats.invalid, w.attribute, w.format
            );
        }
    }
    if let Some(note) = summary
        .window_note
        .as_ref()
        .filter(|_| !summary.already_applied)
    {
        eprintln!("ddbsnap: warning: {note}");
    }
    if summary.items_expired > 0 {
        eprintln!(
            "ddbsnap: left out {} items whose TTL had passed (--skip-expired)",
            summary.items_expired
        );
    }
    if !summary.columns_not_found.is_empty() {
        eprintln!(
            "ddbsnap: warning: no item had {} given to --columns (names are case-sensitive; \
             check the spelling)",
            summary
                .columns_not_found
                .iter()
                .map(|c| format!("'{c}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// How the run was published: committed (as which Delta version, merged how), or a shard's
/// part finished. `resumed` says the run was resumed.
fn how_committed(summary: &crate::Summary, resumed: &str) -> String {
    match &summary.delta {
        Some(d) if d.already_committed => format!(
            "was already committed as version {} of the Delta table; nothing more to do",
            d.version
        ),
        Some(d) if d.version == 0 => {
            format!("committed as version 0 of a new Delta table{resumed}")
        }
        Some(d) => match &d.merge {
            Some(m) => format!(
                "merged as version {} of the Delta table: {} inserted, {} updated, {} deleted; \
                 {} files rewritten ({:.1} MiB, {} unchanged rows copied), {} files added{resumed}",
                d.version,
                m.rows_inserted,
                m.rows_updated,
                m.rows_deleted,
                d.files_removed,
                m.bytes_rewritten as f64 / (1 << 20) as f64,
                m.rows_copied,
                d.files_added,
            ),
            None => format!(
                "committed as version {} of the Delta table, replacing {} files{resumed}",
                d.version, d.files_removed
            ),
        },
        None => match summary.shard {
            Some(shard) => format!(
                "shard {shard} finished (not committed: `ddbsnap commit {} --shards {}` \
                 publishes the run once every shard has){resumed}",
                summary.url, shard.count
            ),
            None => format!("committed{resumed}"),
        },
    }
}

/// What the run read from the table: its capacity and segments, or nothing (a conversion).
/// The rate is this run's; a resumed run's total spans runs whose time it does not know.
fn reads(summary: &crate::Summary) -> String {
    if summary.read_budget.source == crate::throttle::CapacitySource::NotRead {
        return "no table reads".to_owned();
    }
    let rate = if summary.runs > 1 {
        format!("over {} runs", summary.runs)
    } else {
        format!(
            "{:.1} RCU/s",
            summary.consumed_rcu / summary.seconds.max(1e-3)
        )
    };
    format!(
        "{:.1} RCU ({rate}), {} segments",
        summary.consumed_rcu, summary.segments
    )
}

/// Prints the plan (segments and read budget, and what a resume starts from) on stderr before
/// the scan starts, then passes every event on.
struct Announce(Arc<dyn Progress>);

impl Progress for Announce {
    fn event(&self, event: &ProgressEvent) {
        match event {
            ProgressEvent::FullRefresh { reason } => eprintln!("ddbsnap: {reason}"),
            ProgressEvent::Warning { message } => eprintln!("ddbsnap: warning: {message}"),
            ProgressEvent::Resumed {
                mode,
                segments_done,
                segments,
                files,
                items,
                ..
            } => {
                let finished = match mode {
                    RunMode::Apply => String::new(),
                    _ => format!("{segments_done} of {segments} {} finished, ", mode.parts()),
                };
                eprintln!("ddbsnap: resuming: {finished}{files} files with {items} items kept");
            }
            ProgressEvent::Started {
                mode,
                table,
                segments,
                budget,
                concurrency,
                shard: Some(shard),
                ..
            } => {
                let own = (0..*segments as usize).filter(|&s| shard.owns(s)).count();
                match mode {
                    RunMode::Export => eprintln!(
                        "ddbsnap: shard {shard}: converting {own} of the {segments} data files of an export of {table} ({concurrency} at once), no table reads"
                    ),
                    _ => eprintln!(
                        "ddbsnap: shard {shard}: scanning {own} of the {segments} segments of {table} ({concurrency} at once), reading at most {}",
                        budget.describe()
                    ),
                }
            }
            ProgressEvent::Started {
                mode,
                table,
                segments,
                budget,
                concurrency,
                ..
            } => match mode {
                RunMode::Export => eprintln!(
                    "ddbsnap: converting an export of {table}: {segments} data files ({concurrency} at once), no table reads"
                ),
                RunMode::Apply => eprintln!(
                    "ddbsnap: applying a change log to a snapshot of {table}, no table reads"
                ),
                RunMode::Stream => {
                    eprintln!("ddbsnap: reading the stream of {table} into a MERGE, no table reads")
                }
                _ => eprintln!(
                    "ddbsnap: scanning {table} in {segments} segments ({concurrency} at once), reading at most {}",
                    budget.describe()
                ),
            },
            _ => {}
        }
        self.0.event(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::throttle::ReadBudget;

    fn summary(consumed_rcu: f64, runs: u32, read_budget: ReadBudget) -> crate::Summary {
        crate::Summary {
            consumed_rcu,
            runs,
            read_budget,
            segments: 4,
            seconds: 2.0,
            ..Default::default()
        }
    }

    #[test]
    fn the_summary_says_what_the_run_read() {
        let none = crate::throttle::ReadBudget::none();
        // A conversion reads no table: no RCU, no segments.
        assert_eq!(reads(&summary(0.0, 1, none.clone())), "no table reads");
        let scan = crate::throttle::ReadBudget {
            source: crate::throttle::CapacitySource::MaxRcu,
            rcu_per_second: 290.0,
            ..none
        };
        assert_eq!(
            reads(&summary(500.0, 1, scan.clone())),
            "500.0 RCU (250.0 RCU/s), 4 segments"
        );
        // A resumed run's total spans runs whose time it does not know: no rate.
        assert_eq!(
            reads(&summary(1014.0, 2, scan)),
            "1014.0 RCU (over 2 runs), 4 segments"
        );
    }
}
