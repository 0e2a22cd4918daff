//! `ddbsnap._native`: the Python package's native module. It runs ddbsnap's command line
//! in-process ([`ddbsnap::app`]): the console script and `python -m ddbsnap` through [`main`],
//! the Python functions through [`run_json`]. The Python side (`ddbsnap/__init__.py`) turns
//! keyword arguments into options and [`Failure`] into one exception class per exit code.

use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Duration;

use pyo3::prelude::*;

pyo3::create_exception!(
    _native,
    Failure,
    pyo3::exceptions::PyException,
    "A failed run: args are (exit code, one-line message)."
);

/// How often a running command lets Python look at its signals (Ctrl-C).
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// Run the command line `argv` (the program name first) as the `ddbsnap` binary does: its
/// output on stdout and stderr; returns the exit code.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| ddbsnap::app::main(argv))
}

/// Run the command line `argv` (the program name first) and return its result as JSON text.
/// Raises `Failure(exit_code, message)`; on Ctrl-C (KeyboardInterrupt, or any exception a
/// signal handler raises) the run stops cleanly (a snapshot saves its checkpoint) within about
/// a second, and the exception is raised once it has.
#[pyfunction]
fn run_json(py: Python<'_>, argv: Vec<String>) -> PyResult<String> {
    let cancel = ddbsnap::CancellationToken::new();
    let (done, finished) = sync_channel(1);
    let run_cancel = cancel.clone();
    let worker = std::thread::spawn(move || {
        let result = ddbsnap::app::run_json(argv, run_cancel);
        let _ = done.send(());
        result
    });
    // The receiver is not shared with other threads: waiting on it needs no GIL.
    let finished = std::sync::Mutex::new(finished);
    let mut interrupted = None;
    loop {
        let waited = py.detach(|| match finished.lock() {
            Ok(rx) => rx.recv_timeout(SIGNAL_POLL),
            Err(_) => Err(RecvTimeoutError::Disconnected),
        });
        match waited {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if interrupted.is_none()
            && let Err(signal) = py.check_signals()
        {
            cancel.cancel();
            interrupted = Some(signal);
        }
    }
    let result = py
        .detach(|| worker.join())
        .map_err(|_| Failure::new_err((1u8, "ddbsnap failed unexpectedly (a panic)")))?;
    if let Some(signal) = interrupted {
        return Err(signal);
    }
    match result {
        Ok(value) => Ok(value.to_string()),
        Err(e) => Err(Failure::new_err((e.exit_code(), e.to_string()))),
    }
}

/// The committed snapshot in the local folder `dir` as one stream of record batches (its files
/// in order, all with the snapshot's schema), for `read()` and `read_export()`. With `owned`,
/// the folder is removed once the stream is done with (consumed and released, or dropped).
#[pyfunction]
#[pyo3(signature = (dir, owned=false))]
fn open_snapshot(dir: &str, owned: bool) -> PyResult<Batches> {
    let fail = |what: String| Failure::new_err((6u8, what));
    let root = std::path::Path::new(dir);
    let manifest = std::fs::read(root.join("_manifest.json"))
        .map_err(|e| fail(format!("{dir} has no readable _manifest.json: {e}")))?;
    let manifest: ddbsnap::manifest::Manifest = serde_json::from_slice(&manifest).map_err(|e| {
        fail(format!(
            "{dir}/_manifest.json is not a ddbsnap manifest: {e}"
        ))
    })?;
    let files = manifest
        .files
        .iter()
        .map(|f| root.join(&f.path))
        .collect::<Vec<_>>();
    Ok(Batches {
        reader: std::sync::Mutex::new(Some(Box::new(SnapshotReader {
            schema: std::sync::Arc::new(manifest.schema.arrow.clone()),
            files: files.into_iter(),
            current: None,
            owned: owned.then(|| root.to_owned()),
        }))),
    })
}

/// Record batches that Arrow consumers (pyarrow, polars, DuckDB, pandas through pyarrow) take
/// through the Arrow PyCapsule interface, once.
#[pyclass(module = "ddbsnap")]
struct Batches {
    reader: std::sync::Mutex<Option<Box<dyn arrow_array::RecordBatchReader + Send>>>,
}

#[pymethods]
impl Batches {
    /// The Arrow C stream of the batches (the Arrow PyCapsule interface). A requested schema
    /// is not applied: consumers cast.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, pyo3::types::PyCapsule>> {
        let _ = requested_schema;
        let taken = self.reader.lock().ok().and_then(|mut r| r.take());
        let reader = taken.ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(
                "these batches were already consumed; call read() again",
            )
        })?;
        let stream = arrow_array::ffi_stream::FFI_ArrowArrayStream::new(reader);
        pyo3::types::PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }
}

/// The data files of a snapshot, read one after the other (one row group in memory at a time).
struct SnapshotReader {
    schema: arrow_schema::SchemaRef,
    files: std::vec::IntoIter<std::path::PathBuf>,
    current: Option<parquet::arrow::arrow_reader::ParquetRecordBatchReader>,
    /// A temporary folder to remove when done.
    owned: Option<std::path::PathBuf>,
}

impl Drop for SnapshotReader {
    fn drop(&mut self) {
        self.current = None;
        if let Some(dir) = &self.owned {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Iterator for SnapshotReader {
    type Item = Result<arrow_array::RecordBatch, arrow_schema::ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(reader) = &mut self.current {
                match reader.next() {
                    Some(Ok(batch)) => {
                        // The snapshot's schema (with its field metadata) on every batch.
                        return Some(arrow_array::RecordBatch::try_new(
                            std::sync::Arc::clone(&self.schema),
                            batch.columns().to_vec(),
                        ));
                    }
                    Some(Err(e)) => return Some(Err(e)),
                    None => self.current = None,
                }
            }
            let path = self.files.next()?;
            let opened = std::fs::File::open(&path)
                .map_err(|e| arrow_schema::ArrowError::IoError(format!("{}", path.display()), e))
                .and_then(|file| {
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .and_then(|b| b.with_batch_size(8192).build())
                        .map_err(|e| arrow_schema::ArrowError::ExternalError(Box::new(e)))
                });
            match opened {
                Ok(reader) => self.current = Some(reader),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl arrow_array::RecordBatchReader for SnapshotReader {
    fn schema(&self) -> arrow_schema::SchemaRef {
        std::sync::Arc::clone(&self.schema)
    }
}

/// Every command's arguments as the Python API takes them, as JSON (the stubs are generated
/// from it, and a test keeps them equal).
#[pyfunction]
fn python_signatures() -> String {
    ddbsnap::app::python_signatures()
}

/// The version of ddbsnap inside.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(run_json, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(python_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(open_snapshot, m)?)?;
    m.add_class::<Batches>()?;
    m.add("Failure", m.py().get_type::<Failure>())?;
    Ok(())
}
