//! JSON log lines with typed fields: one object per event with
//! `timestamp` (RFC 3339, unless off), `level`, `target`, `message` and the
//! event's fields flattened beside them. Numbers and booleans stay numbers
//! and booleans; a field logged with `?` whose Debug text is a JSON array
//! (a `Vec` of strings or numbers) becomes a JSON array; every other value
//! is a string.
//!
//! Owns the wording of a JSON line only (the filter and writer are
//! `logging`'s).

use serde_json::{Map, Value};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON event format.
pub struct Json {
    /// Write a `timestamp` field.
    pub timestamps: bool,
}

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut map = Map::new();
        if self.timestamps {
            let mut t = String::new();
            tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut t))?;
            map.insert("timestamp".into(), Value::String(t));
        }
        let meta = event.metadata();
        map.insert("level".into(), Value::String(meta.level().as_str().into()));
        map.insert("target".into(), Value::String(meta.target().into()));
        event.record(&mut Fields(&mut map));
        writeln!(writer, "{}", Value::Object(map))
    }
}

/// Records an event's fields into the JSON object, typed.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        let v = if text.starts_with('[') && field.name() != "message" {
            match serde_json::from_str::<Value>(&text) {
                Ok(a @ Value::Array(_)) => a,
                _ => Value::String(text),
            }
        } else {
            Value::String(text)
        };
        self.0.insert(field.name().into(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn fields_are_typed() {
        let buf = Buf::default();
        let w = buf.clone();
        let sub =
            tracing_subscriber::fmt().with_writer(move || w.clone()).event_format(Json { timestamps: false }).finish();
        tracing::subscriber::with_default(sub, || {
            let list = vec!["a".to_string(), "b".to_string()];
            tracing::info!(n = 5u64, neg = -3i64, ok = true, s = %"x y", list = ?list, dbg = ?Some(1), "hello {}", 1);
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["n"], 5);
        assert_eq!(v["neg"], -3);
        assert_eq!(v["ok"], true);
        assert_eq!(v["s"], "x y");
        assert_eq!(v["list"], serde_json::json!(["a", "b"]));
        assert_eq!(v["dbg"], "Some(1)");
        assert_eq!(v["message"], "hello 1");
        assert_eq!(v["level"], "INFO");
        assert!(v.get("timestamp").is_none());
    }
}
