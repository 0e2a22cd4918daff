//! The run mode: where a run's items come from. Recorded in checkpoints, manifests and Delta
//! commits by its lowercase name (`scan`, `export`, `apply`, `stream`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a run's items come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RunMode {
    /// A segmented parallel Scan of the table.
    Scan,
    /// The data files of a DynamoDB export (`convert-export`, `snapshot --mode export`).
    Export,
    /// A change log merged into a snapshot (`apply`).
    Apply,
    /// The change records of the table's DynamoDB stream (`sync`).
    Stream,
}

impl RunMode {
    /// The name checkpoints, manifests and Delta commits record.
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Scan => "scan",
            RunMode::Export => "export",
            RunMode::Apply => "apply",
            RunMode::Stream => "stream",
        }
    }

    /// What the parts of a run of this mode are called, in the plural (progress lines).
    pub fn parts(self) -> &'static str {
        match self {
            RunMode::Scan => "segments",
            RunMode::Export => "data files",
            RunMode::Apply => "sources",
            RunMode::Stream => "streams",
        }
    }
}

impl fmt::Display for RunMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for RunMode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_keep_their_recorded_names() {
        for mode in [
            RunMode::Scan,
            RunMode::Export,
            RunMode::Apply,
            RunMode::Stream,
        ] {
            let text = serde_json::to_string(&mode).unwrap();
            assert_eq!(text, format!("\"{mode}\""));
            assert_eq!(serde_json::from_str::<RunMode>(&text).unwrap(), mode);
        }
        assert!(serde_json::from_str::<RunMode>("\"streams\"").is_err());
    }
}
