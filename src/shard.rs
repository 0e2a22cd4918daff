//! Shards: one run split over independent processes, started by a scheduler the user already
//! runs (a Spark task, a Databricks job task, a Kubernetes Indexed Job, an AWS Batch or Slurm
//! array job), then published once by `ddbsnap commit`.
//!
//! Shard `i` of `n` reads the scan segments (or the export data files) whose number is `i`
//! modulo `n`, at `1/n` of the read budget. It writes its data files under names no other shard
//! uses (`part-s<i>-<k>.parquet`) and keeps its own checkpoint, `_shards/<i>-of-<n>.json`, in
//! the run's folder; once every item of its part is in closed files that checkpoint is the
//! shard's record: its files, totals, schema state and what the commit needs. Running a shard
//! again continues (or, when it had finished, reports) its own part, so a retried task or a
//! restarted pod never duplicates items. Nothing is visible to readers before the commit: no
//! manifest, no Delta version.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Folder of a run holding the shards' checkpoints and records.
pub const SHARDS_DIR: &str = "_shards";

/// Environment variables that give an array job's task index, in the order they are tried.
/// Slurm's task ids start at `SLURM_ARRAY_TASK_MIN`.
const INDEX_VARS: [&str; 4] = [
    "DDBSNAP_SHARD_INDEX",
    "JOB_COMPLETION_INDEX",
    "AWS_BATCH_JOB_ARRAY_INDEX",
    "SLURM_ARRAY_TASK_ID",
];

/// Environment variables that give the number of tasks, in the order they are tried.
const COUNT_VARS: [&str; 2] = ["DDBSNAP_SHARDS", "SLURM_ARRAY_TASK_COUNT"];

/// One part of a run split `count` ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This part, from 0.
    pub index: u32,
    /// How many parts.
    pub count: u32,
}

impl Shard {
    /// A shard, checked: `count` ≥ 1 and `index` < `count`.
    pub fn new(index: u32, count: u32) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(Error::invalid(format!(
                "--shard {index}/{count}: the index counts from 0 and must be below the number \
                 of shards (e.g. 3/16 is the fourth of 16)"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Parse `--shard`: `I/N`, or `auto` / `auto/N`: the index from `DDBSNAP_SHARD_INDEX`,
    /// `JOB_COMPLETION_INDEX` (Kubernetes Indexed Job), `AWS_BATCH_JOB_ARRAY_INDEX` or
    /// `SLURM_ARRAY_TASK_ID`, whichever is set first; the count from `N`, else `DDBSNAP_SHARDS`
    /// or `SLURM_ARRAY_TASK_COUNT`.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_with(text, |name| std::env::var(name).ok())
    }

    fn parse_with(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let (index, count) = text.split_once('/').unwrap_or((text, ""));
        let number = |what: &str, s: &str| {
            s.trim().parse::<u32>().map_err(|_| {
                Error::invalid(format!(
                    "--shard {text}: {what} '{s}' is not a whole number; give I/N (e.g. 3/16) \
                     or auto"
                ))
            })
        };
        let count = match count {
            "" if index == "auto" => None,
            "" => {
                return Err(Error::invalid(format!(
                    "--shard {text}: give the index and the number of shards, I/N (e.g. 3/16), \
                     or auto"
                )));
            }
            n => Some(number("the number of shards", n)?),
        };
        if index == "auto" {
            return Self::from_env(count, env);
        }
        let count = count.ok_or_else(|| Error::Internal("a shard count was parsed".into()))?;
        Self::new(number("the index", index)?, count)
    }

    /// The shard an array job's task is (see [`Shard::parse`]), `count` given or not.
    fn from_env(count: Option<u32>, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let number = |name: &str| -> Result<Option<u32>> {
            match env(name) {
                None => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| {
                    Error::invalid(format!(
                        "--shard auto: {name}={v} is not a whole number; set it to the task's \
                         index, or give --shard I/N"
                    ))
                }),
            }
        };
        let mut index = None;
        for name in INDEX_VARS {
            if let Some(i) = number(name)? {
                let first = match name {
                    "SLURM_ARRAY_TASK_ID" => number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0),
                    _ => 0,
                };
                index = Some(i.checked_sub(first).ok_or_else(|| {
                    Error::invalid(format!(
                        "--shard auto: SLURM_ARRAY_TASK_ID={i} is below SLURM_ARRAY_TASK_MIN"
                    ))
                })?);
                break;
            }
        }
        let index = index.ok_or_else(|| {
            Error::invalid(format!(
                "--shard auto: none of {} is set, so the task's index is unknown; give \
                 --shard I/N",
                INDEX_VARS.join(", ")
            ))
        })?;
        let count = match count {
            Some(n) => n,
            None => COUNT_VARS
                .iter()
                .find_map(|name| number(name).transpose())
                .transpose()?
                .ok_or_else(|| {
                    Error::invalid(
                        "--shard auto: the number of shards is unknown; give it as \
                         --shard auto/N or in DDBSNAP_SHARDS",
                    )
                })?,
        };
        Self::new(index, count)
    }

    /// True when the segment (or export data file) numbered `part` is this shard's.
    pub fn owns(&self, part: usize) -> bool {
        part % self.count as usize == self.index as usize
    }

    /// Name of this shard's checkpoint (and, once finished, its record) in the run's folder.
    pub fn record_name(&self) -> String {
        format!("{SHARDS_DIR}/{}-of-{}.json", self.index, self.count)
    }

    /// The shard whose record is named `name` (relative to the run's folder).
    pub fn from_record_name(name: &str) -> Option<Self> {
        let (index, count) = name
            .strip_prefix(SHARDS_DIR)?
            .strip_prefix('/')?
            .strip_suffix(".json")?
            .split_once("-of-")?;
        Self::new(index.parse().ok()?, count.parse().ok()?).ok()
    }

    /// Prefix of this shard's data file names.
    pub fn file_prefix(&self) -> String {
        format!("part-s{:03}-", self.index)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, vars: &[(&str, &str)]) -> Result<Shard> {
        Shard::parse_with(text, |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn explicit_shards() {
        assert_eq!(
            parse("3/16", &[]).unwrap(),
            Shard {
                index: 3,
                count: 16
            }
        );
        assert_eq!(parse("0/1", &[]).unwrap(), Shard { index: 0, count: 1 });
        for bad in ["16/16", "1/0", "3", "a/4", "3/x", "-1/4", ""] {
            let e = parse(bad, &[]).unwrap_err().to_string();
            assert!(e.contains("--shard"), "{bad}: {e}");
        }
    }

    #[test]
    fn index_and_count_from_the_scheduler() {
        let k8s = [("JOB_COMPLETION_INDEX", "5")];
        assert_eq!(parse("auto/8", &k8s).unwrap(), Shard { index: 5, count: 8 });
        let e = parse("auto", &k8s).unwrap_err().to_string();
        assert!(e.contains("auto/N"), "{e}");
        let batch = [("AWS_BATCH_JOB_ARRAY_INDEX", "2"), ("DDBSNAP_SHARDS", "4")];
        assert_eq!(parse("auto", &batch).unwrap(), Shard { index: 2, count: 4 });
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "11"),
            ("SLURM_ARRAY_TASK_MIN", "10"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        assert_eq!(parse("auto", &slurm).unwrap(), Shard { index: 1, count: 3 });
        // Ours first.
        let both = [("DDBSNAP_SHARD_INDEX", "1"), ("JOB_COMPLETION_INDEX", "7")];
        assert_eq!(
            parse("auto/2", &both).unwrap(),
            Shard { index: 1, count: 2 }
        );
        let e = parse("auto/4", &[]).unwrap_err().to_string();
        assert!(e.contains("JOB_COMPLETION_INDEX"), "{e}");
        let e = parse("auto/4", &[("JOB_COMPLETION_INDEX", "4")]).unwrap_err();
        assert!(e.to_string().contains("below the number"), "{e}");
        let e = parse("auto/4", &[("JOB_COMPLETION_INDEX", "x")]).unwrap_err();
        assert!(e.to_string().contains("JOB_COMPLETION_INDEX=x"), "{e}");
    }

    #[test]
    fn parts_are_dealt_round_robin() {
        let shards: Vec<Shard> = (0..4).map(|i| Shard::new(i, 4).unwrap()).collect();
        for part in 0..100 {
            assert_eq!(shards.iter().filter(|s| s.owns(part)).count(), 1);
        }
        assert!(shards[3].owns(7));
    }

    #[test]
    fn record_names_round_trip() {
        let shard = Shard::new(3, 16).unwrap();
        assert_eq!(shard.record_name(), "_shards/3-of-16.json");
        assert_eq!(Shard::from_record_name(&shard.record_name()), Some(shard));
        assert_eq!(Shard::from_record_name("_shards/16-of-16.json"), None);
        assert_eq!(Shard::from_record_name("_shards/notes.txt"), None);
    }
}
