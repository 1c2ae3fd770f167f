//! Where log lines go: a buffer that a thread of its own writes out every few milliseconds.
//!
//! The access log is one line per request. Written straight to standard output, each line was a
//! `write` system call on the request's worker; batched here, a busy gateway writes its log in a
//! few calls a second, off the request path, and an idle one costs a timer wake-up. Nothing is
//! dropped: when the buffer is full (standard output is slow or blocked) the logging thread
//! writes it out itself and waits, as a direct write would have. Lines keep their order, and
//! [`LogGuard`] flushes what is left when the program ends.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How often the writer thread looks for lines.
const INTERVAL: Duration = Duration::from_millis(20);
/// Above this many buffered bytes, a logging thread writes the buffer out itself.
const HIGH_WATER: usize = 1 << 20;

struct Shared {
    /// Lines not yet written.
    pending: Mutex<Vec<u8>>,
    /// Where they go. Taken before `pending` by whoever writes, so lines keep their order.
    out: Mutex<Box<dyn Write + Send>>,
    stopped: AtomicBool,
    stop: Condvar,
    stop_lock: Mutex<()>,
}

impl Shared {
    /// Writes out everything buffered so far.
    fn drain(&self) {
        let mut out = lock(&self.out);
        let batch = std::mem::take(&mut *lock(&self.pending));
        if !batch.is_empty() {
            // Nowhere to report a failure to write the log; the lines are lost either way.
            let _ = out.write_all(&batch);
            let _ = out.flush();
        }
    }
}

fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writing side, for `tracing_subscriber::fmt().with_writer(…)`.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Flushes the remaining lines and stops the writer thread when dropped.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A buffered writer to `out`, with its writer thread started.
pub fn buffered(out: Box<dyn Write + Send>) -> io::Result<(LogWriter, LogGuard)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Vec::with_capacity(64 * 1024)),
        out: Mutex::new(out),
        stopped: AtomicBool::new(false),
        stop: Condvar::new(),
        stop_lock: Mutex::new(()),
    });
    let worker = Arc::clone(&shared);
    let thread = std::thread::Builder::new().name("spinegate-log".into()).spawn(move || {
        while !worker.stopped.load(Ordering::Acquire) {
            let idle = lock(&worker.stop_lock);
            drop(worker.stop.wait_timeout(idle, INTERVAL).unwrap_or_else(PoisonError::into_inner));
            worker.drain();
        }
    })?;
    Ok((LogWriter { shared: Arc::clone(&shared) }, LogGuard { shared, thread: Some(thread) }))
}

/// A buffered writer to standard output.
pub fn stdout() -> io::Result<(LogWriter, LogGuard)> {
    buffered(Box::new(io::stdout()))
}

impl Write for &LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let full = {
            let mut pending = lock(&self.shared.pending);
            pending.extend_from_slice(buf);
            pending.len() >= HIGH_WATER
        };
        if full {
            self.shared.drain();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = &'a LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl LogGuard {
    /// Writes out everything logged so far.
    pub fn flush(&self) {
        self.shared.drain();
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        {
            let _held = lock(&self.shared.stop_lock);
            self.shared.stopped.store(true, Ordering::Release);
            self.shared.stop.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_within_the_interval_and_on_drop() {
        let sink = Sink::default();
        let (writer, guard) = buffered(Box::new(sink.clone())).unwrap();
        (&writer).write_all(b"one\n").unwrap();
        (&writer).write_all(b"two\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while lock(&sink.0).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&*lock(&sink.0), b"one\ntwo\n", "written by the thread, in order");
        (&writer).write_all(b"three\n").unwrap();
        drop(guard);
        assert_eq!(&*lock(&sink.0), b"one\ntwo\nthree\n", "the rest is written when the guard goes");
    }

    #[test]
    fn a_full_buffer_is_written_by_the_logging_thread_itself_and_nothing_is_lost() {
        let sink = Sink::default();
        let (writer, guard) = buffered(Box::new(sink.clone())).unwrap();
        let line = vec![b'x'; 1023];
        let lines = 3 * HIGH_WATER / 1024;
        for _ in 0..lines {
            (&writer).write_all(&line).unwrap();
            (&writer).write_all(b"\n").unwrap();
        }
        drop(guard);
        let written = lock(&sink.0);
        assert_eq!(written.len(), lines * 1024);
        assert!(written.chunks(1024).all(|l| l[..1023] == line[..] && l[1023] == b'\n'), "no line torn or lost");
    }
}
