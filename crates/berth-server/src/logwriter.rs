//! `berth serve`'s log output: lines are gathered in memory and written to stderr by a
//! background thread in batches, instead of one `write(2)` per line on the thread that logged.
//! The gateway logs every proxied request (its access log at info), and a write per request
//! cost it about as much CPU as the rest of the proxying.
//!
//! - A batch is written at most [`BATCH_DELAY`] after its first line, or at once when
//!   [`BATCH_MAX`] bytes wait. An idle server's thread sleeps until a line comes.
//! - Warnings and errors are written at once, after the lines before them (order is kept): what
//!   goes wrong is on stderr before the process can die of it.
//! - When stderr cannot keep up and [`PENDING_MAX`] bytes wait, the logging thread writes
//!   itself (and waits, as without batching) rather than letting memory grow.
//! - [`flush`] writes what waits; `berth serve` calls it when it ends and when it panics. A
//!   `kill -9` loses at most the last [`BATCH_DELAY`] of info and debug lines.

use std::io::Write;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait for the next batch.
const BATCH_DELAY: Duration = Duration::from_millis(50);
/// A batch this large is written without waiting.
const BATCH_MAX: usize = 64 * 1024;
/// When this much waits (stderr is slow: a stalled pipe or journald), the thread that logs
/// writes it itself, and so waits for stderr as it did before batching: memory stays bounded.
const PENDING_MAX: usize = 4 * BATCH_MAX;

struct Shared {
    /// Lines not yet written.
    pending: Mutex<Vec<u8>>,
    /// Wakes the writer thread when the first line of a batch arrives.
    arrived: Condvar,
    /// Held while writing to stderr, so batches and urgent lines come out in order.
    output: Mutex<()>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        std::thread::Builder::new()
            .name("berth-log".into())
            .spawn(writer_thread)
            .expect("starting the log writer thread");
        Shared {
            pending: Mutex::new(Vec::with_capacity(BATCH_MAX)),
            arrived: Condvar::new(),
            output: Mutex::new(()),
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn writer_thread() {
    let s = shared();
    loop {
        {
            let mut pending = lock(&s.pending);
            while pending.is_empty() {
                pending = s
                    .arrived
                    .wait(pending)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
        // Let the batch fill (unless it is already large).
        if lock(&s.pending).len() < BATCH_MAX {
            std::thread::sleep(BATCH_DELAY);
        }
        flush();
    }
}

/// Writes every waiting line to stderr now.
pub fn flush() {
    let Some(s) = SHARED.get() else { return };
    let _out = lock(&s.output);
    let batch = std::mem::take(&mut *lock(&s.pending));
    write_out(&batch);
}

fn write_out(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(bytes);
    let _ = err.flush();
}

/// The [`MakeWriter`] for the fmt layer: one [`Line`] per event.
#[derive(Clone, Copy, Default)]
pub struct Batched;

/// One event's text; the fmt layer writes an event whole, then drops its writer.
pub struct Line {
    urgent: bool,
    text: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let s = shared();
        if self.urgent || lock(&s.pending).len() >= PENDING_MAX {
            let _out = lock(&s.output);
            let mut batch = std::mem::take(&mut *lock(&s.pending));
            batch.extend_from_slice(&self.text);
            write_out(&batch);
            return;
        }
        let mut pending = lock(&s.pending);
        let first = pending.is_empty();
        pending.extend_from_slice(&self.text);
        let full = pending.len() >= BATCH_MAX;
        drop(pending);
        if first || full {
            s.arrived.notify_one();
        }
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Line;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            urgent: true,
            text: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Line {
            urgent: *meta.level() <= Level::WARN,
            text: Vec::with_capacity(256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_urgent_line_takes_the_waiting_lines_along() {
        // (The writer thread may flush at any time too: only what must hold is checked.)
        let mut line = Line {
            urgent: false,
            text: Vec::new(),
        };
        line.write_all(b"one\n").unwrap();
        drop(line);
        let mut line = Batched.make_writer();
        assert!(line.urgent, "a line of unknown level is written at once");
        line.write_all(b"two\n").unwrap();
        drop(line);
        assert!(lock(&shared().pending).is_empty());
    }
}
