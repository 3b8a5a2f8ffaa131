//! JSON log lines for CloudWatch Logs Insights: one line per event, with the Integration
//! Log fields (`run_id`, `integration`, `code`, `crm_id`, `prm_id`) at the top level.

/// Installs the JSON subscriber (level from `RUST_LOG`, default info).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_env_filter(filter)
        .try_init();
}
