//! The `ddbsnap` binary: parse, run, print, map errors to exit codes. Nothing else.

use std::error::Error as _;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use ddbsnap::cli::{
    ApplyArgs, Cli, Command, ConvertExportArgs, DescribeArgs, OutputArgs, ProgressMode,
    SnapshotArgs,
};
use ddbsnap::progress::{BarProgress, JsonProgress, NoProgress, Progress, ProgressEvent};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            if verbose {
                let mut source = err.source();
                while let Some(cause) = source {
                    eprintln!("  caused by: {cause}");
                    source = cause.source();
                }
            }
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, ddbsnap::Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ddbsnap::Error::Internal(format!("starting the runtime: {e}")))?;
    match cli.command {
        Command::Snapshot(args) => runtime.block_on(snapshot(*args)),
        Command::Describe(args) => runtime.block_on(describe(args)),
        Command::ConvertExport(args) => runtime.block_on(convert_export(args)),
        Command::Apply(args) => runtime.block_on(apply(args)),
    }
}

async fn describe(args: DescribeArgs) -> Result<ExitCode, ddbsnap::Error> {
    let aws = ddbsnap::aws::AwsContext::load(&args.aws.options()).await?;
    let description = ddbsnap::describe::describe(
        &aws,
        &args.table,
        args.index.as_deref(),
        args.read_fraction,
        args.max_rcu,
        args.consistent_read,
    )
    .await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&description)
                .map_err(|e| ddbsnap::Error::Internal(e.to_string()))?
        );
    } else {
        println!("{}", description.render());
    }
    Ok(ExitCode::SUCCESS)
}

async fn snapshot(args: SnapshotArgs) -> Result<ExitCode, ddbsnap::Error> {
    let config = args.to_config()?;
    let (progress, cancel) = start(&args.output);
    let summary = ddbsnap::snapshot_until(&config, progress, cancel).await?;
    report(&summary, args.output.json)
}

async fn convert_export(args: ConvertExportArgs) -> Result<ExitCode, ddbsnap::Error> {
    let (source, config) = args.to_config()?;
    let (progress, cancel) = start(&args.output);
    let summary =
        ddbsnap::pipeline::convert_export(&source, &args.key, &config, progress, cancel).await?;
    report(&summary, args.output.json)
}

async fn apply(args: ApplyArgs) -> Result<ExitCode, ddbsnap::Error> {
    let (changes, base, config) = args.to_config()?;
    let (progress, cancel) = start(&args.output);
    let summary =
        ddbsnap::pipeline::apply(&changes, &base, &args.key, &config, progress, cancel).await?;
    report(&summary, args.output.json)
}

/// The progress reporter, and a cancellation token fired by Ctrl-C.
fn start(output: &OutputArgs) -> (Arc<dyn Progress>, ddbsnap::CancellationToken) {
    let progress: Arc<dyn Progress> = match output.progress {
        ProgressMode::Auto if std::io::stderr().is_terminal() => Arc::new(BarProgress::new()),
        ProgressMode::Bar => Arc::new(BarProgress::new()),
        ProgressMode::Json => Arc::new(JsonProgress::default()),
        ProgressMode::Auto | ProgressMode::None => Arc::new(NoProgress),
    };
    // First Ctrl-C: stop reading, close the open file, save the checkpoint, commit nothing,
    // exit 130. A second one exits at once.
    let cancel = ddbsnap::CancellationToken::new();
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
fn report(summary: &ddbsnap::Summary, json: bool) -> Result<ExitCode, ddbsnap::Error> {
    if let Some(w) = &summary.watermark {
        let left_out = w.stats.missing + w.stats.invalid;
        if left_out > 0 {
            eprintln!(
                "ddbsnap: left out {} items without '{}' and {} whose '{}' is not a readable {:?} timestamp (counted in the manifest's watermark)",
                w.stats.missing, w.attribute, w.stats.invalid, w.attribute, w.format
            );
        }
    }
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
    let committed = match &summary.delta {
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
        None => format!("committed{resumed}"),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string(summary).map_err(|e| ddbsnap::Error::Internal(e.to_string()))?
        );
    } else if summary.already_committed {
        println!(
            "snapshot of {} was already committed: {} items in {} files; nothing to resume\n{}",
            summary.table, summary.items, summary.files, summary.url,
        );
    } else {
        println!(
            "snapshot of {} {committed}: {} items{scanned} in {} files ({:.1} MiB), {:.1} RCU ({:.1} RCU/s), {} segments{throttled}, {:.1} s\n{}",
            summary.table,
            summary.items,
            summary.files,
            summary.bytes as f64 / (1 << 20) as f64,
            summary.consumed_rcu,
            summary.consumed_rcu / summary.seconds.max(1e-3),
            summary.segments,
            summary.seconds,
            summary.url,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the plan (segments and read budget, and what a resume starts from) on stderr before
/// the scan starts, then passes every event on.
struct Announce(Arc<dyn Progress>);

impl Progress for Announce {
    fn event(&self, event: &ProgressEvent) {
        match event {
            ProgressEvent::Resumed {
                mode,
                segments_done,
                segments,
                files,
                items,
                ..
            } => {
                let finished = match mode.as_str() {
                    "scan" => format!("{segments_done} of {segments} segments finished, "),
                    "export" => format!("{segments_done} of {segments} data files finished, "),
                    _ => String::new(),
                };
                eprintln!("ddbsnap: resuming: {finished}{files} files with {items} items kept");
            }
            ProgressEvent::Started {
                mode,
                table,
                segments,
                budget,
                concurrency,
                ..
            } => match mode.as_str() {
                "export" => eprintln!(
                    "ddbsnap: converting an export of {table}: {segments} data files ({concurrency} at once), no table reads"
                ),
                "apply" => eprintln!(
                    "ddbsnap: applying a change log to a snapshot of {table}, no table reads"
                ),
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
