//! The log: `env_logger` (filter from `RUST_LOG`) with a format of our own,
//! human-readable text by default or one JSON object per line
//! (`LOG_FORMAT=json`) for log shippers.
//!
//! Every line written while a request is being served carries that
//! request's id and operationId, read from [`super::context`], whichever
//! module wrote it; lines about no request carry neither. The access log
//! line adds the status and latency as structured fields (`log`'s key-values).
//!
//! Nothing here adds data of its own to a line: tokens, secrets and the
//! `Authorization` header stay out of the log because no caller logs them.

use std::io::Write;

use chrono::{SecondsFormat, Utc};
use log::{kv, Record};
use serde_json::{Map, Value};

use super::context::{self, RequestContext};

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `[timestamp LEVEL target] message key=value… operation_id=… request_id=…`
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`,
    /// `request_id`, `operation_id`, then the line's own fields (`status`,
    /// `latency_ms`, … on the access log line).
    Json,
}

/// Installs the logger for the whole process; `RUST_LOG` filters (default `info`).
pub fn init(format: LogFormat) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(move |buf, record| {
            let line = render(format, record, context::current().as_deref());
            writeln!(buf, "{line}")
        })
        .init();
}

/// One log line, without its newline.
pub fn render(format: LogFormat, record: &Record, request: Option<&RequestContext>) -> String {
    let timestamp = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let fields = fields(record);
    match format {
        LogFormat::Text => {
            let mut line = format!(
                "[{timestamp} {:<5} {}] {}",
                record.level(),
                record.target(),
                escape_controls(&record.args().to_string())
            );
            for (key, value) in &fields {
                line.push(' ');
                line.push_str(&escape_controls(key));
                line.push('=');
                line.push_str(&escape_controls(&text_value(value)));
            }
            if let Some(request) = request {
                if let Some(operation_id) = request.operation_id() {
                    line.push_str(" operation_id=");
                    line.push_str(operation_id);
                }
                line.push_str(" request_id=");
                line.push_str(request.id().as_str());
            }
            line
        }
        LogFormat::Json => {
            let mut object = Map::new();
            object.insert("timestamp".into(), timestamp.into());
            object.insert("level".into(), record.level().as_str().into());
            object.insert("target".into(), record.target().into());
            object.insert("message".into(), record.args().to_string().into());
            if let Some(request) = request {
                object.insert("request_id".into(), request.id().as_str().into());
                object.insert("operation_id".into(), request.operation_id().into());
            }
            for (key, value) in fields {
                object.entry(key).or_insert(value);
            }
            Value::Object(object).to_string()
        }
    }
}

/// `text` with its control characters escaped (`\n`, `\r`, `\t`,
/// `\u{1b}`…): one record is one line of the text format, whatever a
/// request managed to put into a message, so no line can be forged.
fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(char::is_control) {
        return text.into();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_control() => escaped.push_str(&c.escape_unicode().to_string()),
            c => escaped.push(c),
        }
    }
    escaped.into()
}

/// The key-values of a record, in order, as JSON values.
fn fields(record: &Record) -> Vec<(String, Value)> {
    struct Collect(Vec<(String, Value)>);
    impl<'kvs> kv::VisitSource<'kvs> for Collect {
        fn visit_pair(
            &mut self,
            key: kv::Key<'kvs>,
            value: kv::Value<'kvs>,
        ) -> Result<(), kv::Error> {
            let value = serde_json::to_value(&value).unwrap_or_else(|_| value.to_string().into());
            self.0.push((key.as_str().to_owned(), value));
            Ok(())
        }
    }
    let mut collect = Collect(Vec::new());
    let _ = record.key_values().visit(&mut collect);
    collect.0
}

/// A field in the text format: plain when it has no spaces or quotes, else
/// quoted; a missing value is `-`.
fn text_value(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text)
            if !text.is_empty() && !text.contains(|c: char| c.is_whitespace() || c == '"') =>
        {
            text.clone()
        }
        Value::String(text) => Value::String(text.clone()).to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::RequestId;

    fn record_with<T>(f: impl FnOnce(&Record) -> T) -> T {
        let status = 200u16;
        let latency_ms = 1.5f64;
        let bytes: Option<u64> = None;
        let kvs: [(&str, kv::Value); 3] = [
            ("status", kv::Value::from(status)),
            ("latency_ms", kv::Value::from(latency_ms)),
            ("bytes", kv::ToValue::to_value(&bytes)),
        ];
        f(&Record::builder()
            .args(format_args!("127.0.0.1 \"GET /devices HTTP/1.1\""))
            .level(log::Level::Info)
            .target("flashback_devices::access")
            .key_values(&kvs)
            .build())
    }

    #[test]
    fn text_lines_end_with_the_fields_and_the_request() {
        let request = RequestContext::new(RequestId::new_random(), Some("listDevices"));
        let line = record_with(|r| render(LogFormat::Text, r, Some(&request)));
        let expected = format!(
            " INFO  flashback_devices::access] 127.0.0.1 \"GET /devices HTTP/1.1\" status=200 \
             latency_ms=1.5 bytes=- operation_id=listDevices request_id={}",
            request.id()
        );
        assert!(line.starts_with('['), "{line}");
        assert!(line.ends_with(&expected), "{line}");
        let outside = record_with(|r| render(LogFormat::Text, r, None));
        assert!(!outside.contains("request_id"), "{outside}");
    }

    #[test]
    fn text_lines_escape_control_characters() {
        let forged =
            "bad alg\n[2026-01-01T00:00:00.000Z INFO  flashback_devices::access] x\r\u{1b}[2J";
        let line = render(
            LogFormat::Text,
            &Record::builder()
                .args(format_args!("refused: {forged}"))
                .level(log::Level::Info)
                .target("t")
                .build(),
            None,
        );
        assert!(!line.contains(['\n', '\r', '\u{1b}']), "{line:?}");
        assert!(line.ends_with("refused: bad alg\\n[2026-01-01T00:00:00.000Z INFO  flashback_devices::access] x\\r\\u{1b}[2J"), "{line}");
    }

    #[test]
    fn json_lines_are_one_object_with_typed_fields() {
        let request = RequestContext::new(RequestId::new_random(), None);
        let line = record_with(|r| render(LogFormat::Json, r, Some(&request)));
        let object: Value = serde_json::from_str(&line).unwrap();
        let keys: Vec<&str> = object
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "timestamp",
                "level",
                "target",
                "message",
                "request_id",
                "operation_id",
                "status",
                "latency_ms",
                "bytes"
            ]
        );
        assert_eq!(object["status"], 200);
        assert_eq!(object["latency_ms"], 1.5);
        assert_eq!(object["bytes"], Value::Null);
        assert_eq!(object["operation_id"], Value::Null);
        assert_eq!(object["request_id"], request.id().as_str());
        assert_eq!(object["message"], "127.0.0.1 \"GET /devices HTTP/1.1\"");
        assert!(!line.contains('\n'));
    }
}
