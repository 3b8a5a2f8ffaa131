//! JSON log lines for CloudWatch Logs Insights: one line per event, with the Integration
//! Log fields (`run_id`, `integration`, `code`, `crm_id`, `prm_id`) at the top level.
//!
//! The HTTP and AWS SDK crates write request and response bodies (records, tokens) at
//! `debug` and `trace`: their events below `info` are never written, whatever `RUST_LOG`
//! says, so no record value or secret reaches CloudWatch through them.

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Crates whose `debug` and `trace` events carry what goes over the wire.
const WIRE_TARGETS: &[&str] = &[
    "aws_smithy",
    "aws_sdk",
    "aws_config",
    "aws_runtime",
    "hyper",
    "h2",
    "reqwest",
    "rustls",
    "lambda_runtime",
];

/// Whether an event is written: every event at `info` and above, and below it only
/// those of crates that do not log what goes over the wire.
pub fn written(meta: &Metadata<'_>) -> bool {
    *meta.level() <= Level::INFO || !WIRE_TARGETS.iter().any(|t| meta.target().starts_with(t))
}

/// The functions' subscriber: JSON lines to `writer`, at the levels `filter` allows, never
/// the wire events ([`written`]).
pub fn subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
        .with(tracing_subscriber::filter::filter_fn(written))
}

/// Installs the JSON subscriber (level from `RUST_LOG`, default info).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = subscriber(filter, std::io::stdout).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_events_below_info_are_never_written() {
        let meta = |level: Level, target: &'static str| -> bool {
            struct Cs;
            impl tracing::callsite::Callsite for Cs {
                fn set_interest(&self, _: tracing::subscriber::Interest) {}
                fn metadata(&self) -> &Metadata<'_> {
                    unreachable!()
                }
            }
            static CS: Cs = Cs;
            let m = Metadata::new(
                "event",
                target,
                level,
                None,
                None,
                None,
                tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&CS)),
                tracing::metadata::Kind::EVENT,
            );
            written(&m)
        };
        assert!(!meta(
            Level::TRACE,
            "aws_smithy_runtime::client::orchestrator"
        ));
        assert!(!meta(Level::DEBUG, "hyper_util::client"));
        assert!(meta(
            Level::INFO,
            "aws_smithy_runtime::client::orchestrator"
        ));
        assert!(meta(Level::WARN, "reqwest::connect"));
        assert!(meta(Level::DEBUG, "prmsync_prm::client"));
    }
}
