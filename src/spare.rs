//! Spare buffers: memory of a finished page kept for the next page to fill.
//!
//! Every page of items needs the same few buffers of about a megabyte each: the Scan
//! response's body and the [`Rows`](crate::convert::Rows) arena it is parsed into. Freed, the
//! allocator hands most of that memory back to the system, and the next page faults it in
//! again, page by page: that cost a fifth of a snapshot's CPU. Kept here instead (a few of
//! each, none larger than a bound), the next page writes into memory already mapped, and what
//! is kept stays small and fixed whatever the size of the table.

use std::sync::Mutex;

/// A few spare values of one kind, shared by every thread of the process.
pub(crate) struct Spares<T> {
    kept: Mutex<Vec<T>>,
    /// How many are kept at most.
    most: usize,
}

impl<T> Spares<T> {
    /// Keep at most `most`.
    pub(crate) const fn new(most: usize) -> Self {
        Spares {
            kept: Mutex::new(Vec::new()),
            most,
        }
    }

    /// A spare one, if any is kept.
    pub(crate) fn take(&self) -> Option<T> {
        self.kept.lock().ok()?.pop()
    }

    /// Keep `spare` for a later [`Spares::take`], unless enough are kept already.
    pub(crate) fn keep(&self, spare: T) {
        if let Ok(mut kept) = self.kept.lock()
            && kept.len() < self.most
        {
            kept.push(spare);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_its_bound() {
        let spares = Spares::new(2);
        assert_eq!(spares.take(), None::<u8>);
        for i in 0..5 {
            spares.keep(i);
        }
        assert_eq!(spares.take(), Some(1));
        assert_eq!(spares.take(), Some(0));
        assert_eq!(spares.take(), None);
    }
}
