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
    m.add("Failure", m.py().get_type::<Failure>())?;
    Ok(())
}
