//! Admitting a change set before a run writes anything (see [`crate::window`]): the run goes
//! on, ends here with a summary (the change set is already applied), or fails with
//! [`Error::OutOfOrder`] (it is older than the table, or leaves a gap).

use crate::config::SnapshotConfig;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::sink::Target;
use crate::window::{Admission, ChangeWindow, OnGap};

/// What a run does with its change set.
pub(super) enum Admitted {
    /// Go on; `Some` is the gap `--on-gap force` applies it across.
    Go(Option<String>),
    /// Read the whole table instead (`--on-gap refresh`): the gap says why.
    Refresh(String),
    /// Stop here, having written nothing: the change set is already applied (the note says
    /// so).
    Done(String),
}

/// Admit `change` into the Delta table at `table`. A resumed run was admitted when it started.
pub(super) async fn into_delta(
    table: &Target,
    change: &ChangeWindow,
    config: &SnapshotConfig,
) -> Result<Admitted> {
    if config.run.resume {
        return Ok(Admitted::Go(None));
    }
    let delta = crate::format::TableFormat::Delta.publisher();
    let admission = delta.admit(table, change, config.run.on_gap).await?;
    Ok(act(admission))
}

/// Admit `change` onto the snapshot at `base` that `manifest` describes (`apply`).
pub(super) fn onto_snapshot(
    base: &Target,
    manifest: &Manifest,
    change: &ChangeWindow,
    on_gap: OnGap,
) -> Result<Admitted> {
    let Some(held) = manifest.coverage() else {
        // A snapshot that records nothing of time (made by `apply` of an earlier ddbsnap).
        let gap = "it does not record up to when it holds every change (it was made by an \
                   earlier ddbsnap)";
        return match on_gap {
            OnGap::Force => Ok(Admitted::Go(Some(format!(
                "applied unchecked (--on-gap force): {gap}"
            )))),
            _ => Err(Error::OutOfOrder {
                url: base.url.clone(),
                message: format!(
                    "{gap}, so no change set can be checked against it; pass --on-gap force \
                     if {} continues it",
                    change.describe()
                ),
            }),
        };
    };
    let admission = crate::window::admit(&base.url, &held, change, on_gap)?;
    Ok(act(admission))
}

/// What `admission` means for the run.
fn act(admission: Admission) -> Admitted {
    let note = admission.note();
    match admission {
        Admission::Apply | Admission::AcrossGap(_) => Admitted::Go(note),
        Admission::Refresh(gap) => Admitted::Refresh(gap),
        Admission::AlreadyApplied(note) => Admitted::Done(note),
    }
}

/// `--on-gap refresh` where the command reads change sets only: refused, naming the gap.
pub(super) fn cannot_refresh(url: &str, gap: &str, what: &str) -> Error {
    Error::OutOfOrder {
        url: url.to_owned(),
        message: format!(
            "{gap}; --on-gap refresh cannot read the whole table from {what}: load a full \
             export (or a scan) into it first, or pass --on-gap force"
        ),
    }
}
