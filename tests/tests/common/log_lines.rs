//! The JSON log lines a test's code prints, captured as the Lambda functions write them.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A buffer the log lines are written to.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Lines {
    /// Installs the Lambda functions' subscriber at its most verbose (`RUST_LOG=trace`)
    /// for this thread.
    pub fn capture() -> (Lines, tracing::subscriber::DefaultGuard) {
        let lines = Lines::default();
        let subscriber = prmsync_lambda::logging::subscriber(
            tracing_subscriber::EnvFilter::new("trace"),
            lines.clone(),
        );
        let guard = tracing::subscriber::set_default(subscriber);
        (lines, guard)
    }

    /// Everything written, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Every line written, parsed.
    pub fn json(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}
