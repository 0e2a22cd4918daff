//! Which implementation of the publishing seam each table format is.

use super::TableFormat;
use super::delta::DeltaTable;
use super::publish::Publisher;
use super::snapshot::SnapshotFolder;

impl TableFormat {
    /// This format's implementation of the publishing seam.
    pub(crate) fn publisher(self) -> &'static dyn Publisher {
        match self {
            TableFormat::Snapshot => &SnapshotFolder,
            TableFormat::Delta => &DeltaTable,
        }
    }

    /// Every run writes into a `run=` folder of the table root (a Delta table's runs), rather
    /// than being the folder itself (a snapshot).
    pub(crate) fn runs_in_folders(self) -> bool {
        self == TableFormat::Delta
    }

    /// A run's data files wait in `_staging/` until the commit, because readers read the
    /// folder as it is (a snapshot; a Delta table's readers see only committed files).
    pub(crate) fn stages_files(self) -> bool {
        self == TableFormat::Snapshot
    }
}
