//! Progress events and the reporters that show them.
//!
//! The pipeline emits [`ProgressEvent`]s; a [`Progress`] reporter turns them into an indicatif
//! bar on a terminal ([`BarProgress`]), JSON lines for machines ([`JsonProgress`]) or nothing
//! ([`NoProgress`]). Reporters are called from scan tasks and the conversion thread, so they
//! must be cheap and thread-safe.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// Something that happened during a snapshot.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProgressEvent {
    /// An unfinished snapshot is being continued from its checkpoint (sent before `Started`).
    Resumed {
        /// Where the items come from: `scan`, `export` or `apply`.
        mode: crate::mode::RunMode,
        /// Segments (data files of an export) already finished.
        segments_done: usize,
        /// Total segments.
        segments: u32,
        /// Data files kept.
        files: usize,
        /// Items in those files.
        items: u64,
        /// Bytes of those files.
        bytes: u64,
    },
    /// A native export's status, while waiting for it.
    Exporting {
        /// The export's ARN.
        arn: String,
        /// IN_PROGRESS, COMPLETED or FAILED.
        status: String,
        /// Seconds since it started.
        seconds: u64,
    },
    /// A pull (`--since last`) reads the whole table instead: there is nothing to continue
    /// yet, or the last full read is older than `--refresh-every`.
    FullRefresh {
        /// Why, in one line.
        reason: String,
    },
    /// Something the user should know that does not fail the run.
    Warning {
        /// What happened and what it means, in one line.
        message: String,
    },
    /// Reading is about to start.
    Started {
        /// Where the items come from: `scan`, `export` or `apply`.
        mode: crate::mode::RunMode,
        /// Table name.
        table: String,
        /// Total segments.
        segments: u32,
        /// DynamoDB's approximate item count, when it reports one.
        estimated_items: Option<u64>,
        /// The read budget.
        budget: crate::throttle::ReadBudget,
        /// Segments scanned at once.
        concurrency: u32,
        /// The shard of a split run this run is, which reads its part of the segments.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<crate::shard::Shard>,
    },
    /// A page of items arrived: a Scan page, or a batch of an export's data file (`segment`
    /// is the file's number) or of `apply`.
    Page {
        /// Segment number.
        segment: u32,
        /// Items returned.
        items: u64,
        /// Items read (before any filter).
        scanned: u64,
        /// Read capacity consumed by the page.
        consumed_rcu: f64,
    },
    /// A Scan request was throttled (it is retried after a backoff).
    Throttled {
        /// Segment number.
        segment: u32,
    },
    /// A data file was closed.
    FileWritten {
        /// File name under the snapshot root.
        path: String,
        /// Rows in the file.
        rows: u64,
        /// Bytes in the file.
        bytes: u64,
    },
    /// `_checkpoint.json` was saved: a resume would continue from here.
    Checkpointed {
        /// Closed data files it lists.
        files: usize,
        /// Items in them.
        items: u64,
    },
    /// Files written before the schema settled are being re-encoded to the final schema.
    Rewriting {
        /// Number of files.
        files: usize,
    },
    /// Every data file is complete; the manifest is being written.
    Committing {
        /// Data files the manifest lists.
        files: usize,
    },
    /// The manifest was written: the snapshot is complete.
    Committed {
        /// Snapshot root.
        url: String,
    },
    /// A shard of a split run finished its part and saved its record; `ddbsnap commit`
    /// publishes the run once every shard has.
    ShardFinished {
        /// The run's folder.
        url: String,
        /// Which shard.
        shard: crate::shard::Shard,
    },
}

/// Receives progress events.
pub trait Progress: Send + Sync {
    /// Handle one event. Must not block for long.
    fn event(&self, event: &ProgressEvent);
}

/// Ignores every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: &ProgressEvent) {}
}

/// One JSON object per event on stderr, with `elapsed` seconds since the reporter was made.
#[derive(Debug)]
pub struct JsonProgress {
    started: std::time::Instant,
}

impl Default for JsonProgress {
    fn default() -> Self {
        JsonProgress {
            started: std::time::Instant::now(),
        }
    }
}

impl Progress for JsonProgress {
    fn event(&self, event: &ProgressEvent) {
        #[derive(Serialize)]
        struct Line<'a> {
            elapsed: f64,
            #[serde(flatten)]
            event: &'a ProgressEvent,
        }
        let line = Line {
            elapsed: self.started.elapsed().as_secs_f64(),
            event,
        };
        if let Ok(line) = serde_json::to_string(&line) {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    items: u64,
    /// Items already written by earlier runs of a resumed snapshot.
    resumed_items: u64,
    pages: u64,
    rcu: f64,
    files: u64,
    bytes: u64,
    throttled: u64,
    budget: f64,
    /// (time, RCU) of the pages of the last [`RATE_WINDOW`].
    recent: std::collections::VecDeque<(std::time::Instant, f64)>,
    /// When reading started.
    started: Option<std::time::Instant>,
}

/// The read rate shown is the RCU of the pages of this last stretch of time, per second.
const RATE_WINDOW: Duration = Duration::from_secs(5);

impl Counters {
    /// RCU/s over the last [`RATE_WINDOW`], or since reading started when that is shorter (at
    /// least one second: the first page is paid for a second of budget at once).
    fn rate(&mut self, now: std::time::Instant) -> f64 {
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.recent.pop_front();
        }
        let window = self
            .started
            .map_or(RATE_WINDOW, |s| now.duration_since(s).min(RATE_WINDOW))
            .max(Duration::from_secs(1));
        self.recent.iter().fold(0.0, |sum, (_, r)| sum + r) / window.as_secs_f64()
    }
}

/// An indicatif bar on stderr: items (against DynamoDB's estimate when there is one), pages,
/// RCU consumed, files written, rate and elapsed time.
#[derive(Debug)]
pub struct BarProgress {
    bar: ProgressBar,
    counters: Mutex<Counters>,
}

impl Default for BarProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl BarProgress {
    /// A bar drawing to stderr.
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {human_pos} items {msg}")
                .expect("valid template"),
        );
        BarProgress {
            bar,
            counters: Mutex::new(Counters::default()),
        }
    }

    fn refresh(&self, c: &mut Counters) {
        let throttled = if c.throttled > 0 {
            format!(" · {} throttled", c.throttled)
        } else {
            String::new()
        };
        let items_per_sec =
            (c.items - c.resumed_items) as f64 / self.bar.elapsed().as_secs_f64().max(1e-3);
        // Exports and `apply` read nothing from the table.
        let reads = if c.budget > 0.0 {
            format!(
                " · {:.0}/{:.0} RCU/s · {:.0} RCU",
                c.rate(std::time::Instant::now()),
                c.budget,
                c.rcu
            )
        } else {
            String::new()
        };
        self.bar.set_message(format!(
            "({items_per_sec:.0}/s){reads} · {} pages · {} files, {:.1} MiB{throttled}",
            c.pages,
            c.files,
            c.bytes as f64 / (1 << 20) as f64
        ));
    }
}

impl Progress for BarProgress {
    fn event(&self, event: &ProgressEvent) {
        let mut c = self.counters.lock().expect("not poisoned");
        match event {
            ProgressEvent::Resumed {
                files,
                items,
                bytes,
                ..
            } => {
                c.items += items;
                c.resumed_items += items;
                c.files += *files as u64;
                c.bytes += bytes;
                self.bar.set_position(c.items);
            }
            ProgressEvent::Checkpointed { .. }
            | ProgressEvent::Committing { .. }
            | ProgressEvent::FullRefresh { .. }
            | ProgressEvent::Warning { .. } => {}
            ProgressEvent::Exporting {
                status, seconds, ..
            } => {
                self.bar.enable_steady_tick(Duration::from_millis(200));
                self.bar
                    .set_message(format!("DynamoDB export {status} for {seconds} s"));
                return;
            }
            ProgressEvent::Started {
                estimated_items,
                budget,
                ..
            } => {
                c.budget = budget.rcu_per_second;
                c.started = Some(std::time::Instant::now());
                // Drawing starts with the scan, after the plan line is printed.
                self.bar.enable_steady_tick(Duration::from_millis(200));
                let Some(n) = estimated_items.filter(|&n| n > 0) else {
                    self.refresh(&mut c);
                    return;
                };
                self.bar.set_length(n);
                self.bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/~{human_len} items (eta {eta}) {msg}",
                    )
                    .expect("valid template"),
                );
            }
            ProgressEvent::Page {
                items,
                consumed_rcu,
                ..
            } => {
                c.items += items;
                c.pages += 1;
                c.rcu += consumed_rcu;
                c.recent
                    .push_back((std::time::Instant::now(), *consumed_rcu));
                self.bar.set_position(c.items);
            }
            ProgressEvent::Throttled { .. } => c.throttled += 1,
            ProgressEvent::FileWritten { bytes, .. } => {
                c.files += 1;
                c.bytes += bytes;
            }
            ProgressEvent::Rewriting { files } => {
                self.bar.println(format!(
                    "re-encoding {files} early file(s) to the final schema"
                ));
            }
            ProgressEvent::Committed { .. } | ProgressEvent::ShardFinished { .. } => {
                self.bar.finish_and_clear();
                return;
            }
        }
        self.refresh(&mut c);
    }
}

impl Drop for BarProgress {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_rate_is_never_negative_and_counts_only_the_time_read_so_far() {
        let start = Instant::now();
        let mut c = Counters {
            started: Some(start),
            ..Counters::default()
        };
        assert_eq!(
            format!("{:.0}", c.rate(start)),
            "0",
            "not -0 before any page"
        );
        // 100 RCU every quarter second for 2 s: 400 RCU/s, not 2 s of pages over 5 s.
        for i in 0..8 {
            c.recent
                .push_back((start + Duration::from_millis(250 * i), 100.0));
        }
        let rate = c.rate(start + Duration::from_secs(2));
        assert!((rate - 400.0).abs() < 1.0, "{rate}");
        // After 10 s of the same, the last 5 s count.
        for i in 8..40 {
            c.recent
                .push_back((start + Duration::from_millis(250 * i), 100.0));
        }
        let rate = c.rate(start + Duration::from_secs(10));
        assert!((rate - 400.0).abs() <= 20.0, "{rate}");
    }
}
