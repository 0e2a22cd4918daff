//! Change windows: what a change set covers and what a table holds, one vocabulary for every
//! feed (incremental exports, timestamp pulls, and later stream positions).
//!
//! A table (a Delta table, a snapshot that `apply` continues) records its [`Coverage`]: a full
//! read of the table as of a time, or the window of the change set applied last. A change set
//! carries its [`ChangeWindow`]. [`admit`] compares them before anything is written:
//! - a window that starts at or before the table's coverage and ends after it applies (the
//!   overlap is harmless: per key the latest change wins);
//! - the window applied last, again, is a no-op that says so;
//! - a window that ends at or before the coverage would put older images over newer rows, and
//!   is refused;
//! - a window that starts after the coverage leaves a gap whose changes would be lost: refused,
//!   unless `--on-gap` says to read the whole table again or to apply it anyway.
//!
//! Feeds differ in what they carry: an incremental export holds every insert, update and
//! delete; a pull holds the new images of items whose timestamp attribute moved, never a
//! delete. So a table kept by pulls has no coverage of deletes: an incremental export after a
//! pull is a gap. A pull after an export continues from the export's end. A pull reads current
//! images, so a pull window is never "older" than the table, only possibly after a gap.
//!
//! Pure: no I/O, no clock.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Where a table's changes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Feed {
    /// DynamoDB incremental exports: every insert, update and delete.
    Export,
    /// Timestamp pulls (`--filter-attr ATTRIBUTE`): new images only, no deletes.
    Pull {
        /// The timestamp attribute.
        attribute: String,
    },
}

impl Feed {
    fn describe(&self) -> String {
        match self {
            Feed::Export => "incremental export".to_owned(),
            Feed::Pull { attribute } => format!("pull on '{attribute}'"),
        }
    }
}

/// The time window a change set covers: changes made in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeWindow {
    /// The feed the changes come from.
    pub feed: Feed,
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Exclusive end.
    pub to: DateTime<Utc>,
    /// What names the change set, when something does (an export's ARN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl ChangeWindow {
    /// The window as `incremental export 2026-11-20T00:00:00Z → 2026-11-21T00:00:00Z`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} → {}",
            self.feed.describe(),
            show(self.from),
            show(self.to)
        )
    }

    /// True when `other` holds the same changes: the same export, or the same window of the
    /// same feed (another export of one window holds the same changes).
    fn same_as(&self, other: &ChangeWindow) -> bool {
        let same_id = self.id.is_some() && self.id == other.id;
        same_id || (self.feed == other.feed && self.from == other.from && self.to == other.to)
    }
}

/// What a table holds: every change up to [`Coverage::until`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Coverage {
    /// A read of the whole table as of `at`: a scan (its start) or a full export (its export
    /// time). Holds every change of every feed up to then.
    Full {
        /// The time the table was read as of.
        at: DateTime<Utc>,
        /// `scan`, or `export` (a full export).
        by: String,
    },
    /// The change set applied last, on top of what the table held before it.
    Changes {
        /// Its window.
        window: ChangeWindow,
    },
}

impl Coverage {
    /// Up to when the table holds every change.
    pub fn until(&self) -> DateTime<Utc> {
        match self {
            Coverage::Full { at, .. } => *at,
            Coverage::Changes { window } => window.to,
        }
    }

    /// The coverage as a message shows it.
    pub fn describe(&self) -> String {
        match self {
            Coverage::Full { at, by } if by == "scan" => {
                format!("a full scan started at {}", show(*at))
            }
            Coverage::Full { at, .. } => format!("a full export as of {}", show(*at)),
            Coverage::Changes { window } => window.describe(),
        }
    }

    /// Up to when the table holds what a change set of `feed` continues: `Err` says why
    /// nothing does (the table was kept by a feed that misses what this one carries).
    pub fn until_for(&self, feed: &Feed) -> Result<DateTime<Utc>, String> {
        match (self, feed) {
            (Coverage::Changes { window }, Feed::Export) if window.feed != Feed::Export => {
                Err(format!(
                    "the table was last updated by a {}, which sees no deletes, so no \
                     incremental export continues it; refresh the whole table once (a full \
                     export or a scan), then continue with incremental exports",
                    window.feed.describe()
                ))
            }
            (
                Coverage::Changes {
                    window:
                        ChangeWindow {
                            feed: Feed::Pull { attribute: held },
                            ..
                        },
                },
                Feed::Pull { attribute },
            ) if held != attribute => Err(format!(
                "the table was last updated by a pull on '{held}', not '{attribute}'; pull on \
                 '{held}', or refresh the whole table once"
            )),
            _ => Ok(self.until()),
        }
    }
}

/// What to do with a change set that starts after the table's coverage (`--on-gap`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OnGap {
    /// Refuse it (exit code 11), writing nothing.
    #[default]
    Fail,
    /// Read the whole table again instead (a full refresh), where the command can.
    Refresh,
    /// Apply it anyway: the changes in the gap are lost, and the summary says so.
    Force,
}

/// What [`admit`] decided for a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Apply it.
    Apply,
    /// Apply it although it leaves a gap (`--on-gap force`): the message says which.
    AcrossGap(String),
    /// It is the change set applied last: write nothing, say so.
    AlreadyApplied(String),
    /// It leaves a gap and `--on-gap refresh` asks for a full refresh instead.
    Refresh(String),
}

impl Admission {
    /// What the run's summary says about its window: the gap it applies the change set
    /// across, the gap it reads the whole table for, or that nothing was to be done.
    pub fn note(&self) -> Option<String> {
        match self {
            Admission::Apply => None,
            Admission::AcrossGap(gap) => {
                Some(format!("applied across a gap (--on-gap force): {gap}"))
            }
            Admission::Refresh(gap) => {
                Some(format!("read the whole table (--on-gap refresh): {gap}"))
            }
            Admission::AlreadyApplied(note) => Some(note.clone()),
        }
    }
}

/// Decide whether the change set `change` may be applied to the table at `url` holding
/// `held` (see the module documentation). `Err` is [`crate::Error::OutOfOrder`].
pub fn admit(
    url: &str,
    held: &Coverage,
    change: &ChangeWindow,
    on_gap: OnGap,
) -> crate::Result<Admission> {
    let refuse = |message: String| crate::Error::OutOfOrder {
        url: url.to_owned(),
        message,
    };
    if let Coverage::Changes { window } = held
        && window.same_as(change)
        && change.feed == Feed::Export
    {
        return Ok(Admission::AlreadyApplied(format!(
            "{url} already holds the changes of this {} (the last change set it applied); \
             nothing was written",
            change.describe()
        )));
    }
    let gap = match held.until_for(&change.feed) {
        Err(why) => Some(why),
        Ok(until) if change.from > until => Some(format!(
            "it holds every change up to {} ({}), but this {} starts later: the changes in \
             between would be lost",
            show(until),
            held.describe(),
            change.describe()
        )),
        Ok(until) if change.to <= until && change.feed == Feed::Export => {
            return Err(refuse(format!(
                "it holds every change up to {} ({}); this {} ends at or before that, so \
                 its images are older than the table's rows; apply only change sets that end \
                 after {}",
                show(until),
                held.describe(),
                change.describe(),
                show(until)
            )));
        }
        Ok(_) => None,
    };
    let Some(gap) = gap else {
        return Ok(Admission::Apply);
    };
    match on_gap {
        OnGap::Fail => Err(refuse(format!(
            "{gap}; apply the missing change sets first, or pass --on-gap refresh (read the \
             whole table again) or --on-gap force (apply it anyway)"
        ))),
        OnGap::Refresh => Ok(Admission::Refresh(gap)),
        OnGap::Force => Ok(Admission::AcrossGap(gap)),
    }
}

/// A time as messages show it: RFC 3339 in UTC, to the second unless it has a fraction.
pub(crate) fn show(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(day: u32) -> DateTime<Utc> {
        format!("2026-11-{day:02}T00:00:00Z").parse().unwrap()
    }

    fn export(from: u32, to: u32) -> ChangeWindow {
        ChangeWindow {
            feed: Feed::Export,
            from: t(from),
            to: t(to),
            id: Some(format!("arn:export/{from}-{to}")),
        }
    }

    fn pull(attribute: &str, from: u32, to: u32) -> ChangeWindow {
        ChangeWindow {
            feed: Feed::Pull {
                attribute: attribute.into(),
            },
            from: t(from),
            to: t(to),
            id: None,
        }
    }

    fn held(window: ChangeWindow) -> Coverage {
        Coverage::Changes { window }
    }

    fn code(r: crate::Result<Admission>) -> u8 {
        r.unwrap_err().exit_code()
    }

    #[test]
    fn a_window_applies_when_it_continues_the_table() {
        let full = Coverage::Full {
            at: t(20),
            by: "export".into(),
        };
        for change in [export(20, 21), export(19, 21), pull("u", 19, 25)] {
            assert_eq!(
                admit("t", &full, &change, OnGap::Fail).unwrap(),
                Admission::Apply
            );
        }
        let after = held(export(20, 21));
        assert_eq!(
            admit("t", &after, &export(21, 22), OnGap::Fail).unwrap(),
            Admission::Apply
        );
        // Overlapping the last window is safe.
        assert_eq!(
            admit("t", &after, &export(20, 22), OnGap::Fail).unwrap(),
            Admission::Apply
        );
    }

    #[test]
    fn the_same_export_again_is_already_applied() {
        let after = held(export(20, 21));
        match admit("t", &after, &export(20, 21), OnGap::Force).unwrap() {
            Admission::AlreadyApplied(message) => assert!(message.contains("already holds")),
            other => panic!("{other:?}"),
        }
        // The same window, exported again or asked for without an ARN, holds the same changes.
        let again = ChangeWindow {
            id: Some("arn:export/another".into()),
            ..export(20, 21)
        };
        assert!(matches!(
            admit("t", &after, &again, OnGap::Fail),
            Ok(Admission::AlreadyApplied(_))
        ));
        let bare = |w: ChangeWindow| ChangeWindow { id: None, ..w };
        assert!(matches!(
            admit(
                "t",
                &held(bare(export(20, 21))),
                &bare(export(20, 21)),
                OnGap::Fail
            ),
            Ok(Admission::AlreadyApplied(_))
        ));
    }

    #[test]
    fn older_and_gapped_windows_are_refused_with_both_windows_named() {
        let after = held(export(20, 21));
        let older = admit("lake/t", &after, &export(19, 20), OnGap::Force).unwrap_err();
        assert_eq!(older.exit_code(), 11);
        let text = older.to_string();
        assert!(text.contains("2026-11-21T00:00:00Z") && text.contains("2026-11-19T00:00:00Z"));
        let gap = admit("lake/t", &after, &export(25, 26), OnGap::Fail).unwrap_err();
        let text = gap.to_string();
        assert!(text.starts_with("lake/t: it holds every change up to 2026-11-21T00:00:00Z"));
        assert!(
            text.contains("lost") && text.contains("--on-gap force"),
            "{text}"
        );
        assert!(
            text.contains("2026-11-25T00:00:00Z → 2026-11-26T00:00:00Z"),
            "{text}"
        );
        assert!(matches!(
            admit("t", &after, &export(25, 26), OnGap::Force),
            Ok(Admission::AcrossGap(_))
        ));
        assert!(matches!(
            admit("t", &after, &export(25, 26), OnGap::Refresh),
            Ok(Admission::Refresh(_))
        ));
    }

    #[test]
    fn feeds_that_miss_changes_are_gaps() {
        // Pulls see no deletes: an export cannot continue them.
        let pulled = held(pull("u", 19, 21));
        assert_eq!(code(admit("t", &pulled, &export(20, 22), OnGap::Fail)), 11);
        // Another attribute's pull neither.
        assert_eq!(
            code(admit("t", &pulled, &pull("v", 20, 22), OnGap::Fail)),
            11
        );
        // A pull continues an export, and reads current images: an early --until is no harm.
        let exported = held(export(20, 21));
        assert_eq!(
            admit("t", &exported, &pull("u", 20, 22), OnGap::Fail).unwrap(),
            Admission::Apply
        );
        assert_eq!(
            admit("t", &pulled, &pull("u", 1, 2), OnGap::Fail).unwrap(),
            Admission::Apply
        );
        assert_eq!(
            code(admit("t", &pulled, &pull("u", 22, 23), OnGap::Fail)),
            11
        );
    }

    #[test]
    fn coverage_is_stored_as_tagged_json() {
        let c = held(export(20, 21));
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains(r#""kind":"changes""#), "{text}");
        assert_eq!(serde_json::from_str::<Coverage>(&text).unwrap(), c);
    }
}
