//! A ledger row as one JSON line, written by hand. The crash journal writes one per request on
//! the request path, so this is the ledger's main cost there: serde_json's derived writer spent
//! ~6,100 instructions on a row (escaping every key, formatting through `fmt`); this writes the
//! same bytes (a test holds them equal to serde_json's, so the spill reader's `Deserialize`
//! reads both) with constant keys and strings copied in runs between the bytes JSON escapes.

use super::record::UsageRecord;

/// Appends `record` and a newline to `out`.
pub fn write_line(record: &UsageRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"request_id\":");
    string(out, &record.request_id);
    out.extend_from_slice(b",\"created_at_us\":");
    integer(out, record.created_at_us);
    out.extend_from_slice(b",\"key_name\":");
    optional(out, record.key_name.as_deref());
    out.extend_from_slice(b",\"session_id\":");
    optional(out, record.session_id.as_deref());
    out.extend_from_slice(b",\"model_name\":");
    string(out, &record.model_name);
    out.extend_from_slice(b",\"provider_id\":");
    optional(out, record.provider_id.as_deref());
    out.extend_from_slice(b",\"upstream_model\":");
    optional(out, record.upstream_model.as_deref());
    out.extend_from_slice(if record.stream {
        b",\"stream\":true,\"input_tokens\":"
    } else {
        b",\"stream\":false,\"input_tokens\":"
    });
    integer(out, record.input_tokens);
    out.extend_from_slice(b",\"output_tokens\":");
    integer(out, record.output_tokens);
    out.extend_from_slice(b",\"cached_input_tokens\":");
    integer(out, record.cached_input_tokens);
    out.extend_from_slice(b",\"cache_write_tokens\":");
    integer(out, record.cache_write_tokens);
    out.extend_from_slice(b",\"reasoning_tokens\":");
    integer(out, record.reasoning_tokens);
    out.extend_from_slice(b",\"usage_source\":\"");
    out.extend_from_slice(record.usage_source.as_str().as_bytes());
    out.extend_from_slice(b"\",\"cost\":");
    string(out, &record.cost);
    // Only on a cache hit's row, as serde writes it (`skip_serializing_if`).
    if record.cache_saved_cost != "0" {
        out.extend_from_slice(b",\"cache_saved_cost\":");
        string(out, &record.cache_saved_cost);
    }
    if let Some(units) = record.units {
        out.extend_from_slice(b",\"units\":");
        integer(out, units);
    }
    if let Some(unit) = record.unit {
        out.extend_from_slice(b",\"unit\":\"");
        out.extend_from_slice(unit.as_str().as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b",\"latency_ms\":");
    integer(out, record.latency_ms);
    out.extend_from_slice(b",\"ttft_ms\":");
    match record.ttft_ms {
        Some(ms) => integer(out, ms),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"attempts\":");
    integer(out, record.attempts);
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(record.status.as_str().as_bytes());
    out.extend_from_slice(b"\",\"http_status\":");
    integer(out, record.http_status);
    out.extend_from_slice(b",\"error_message\":");
    optional(out, record.error_message.as_deref());
    out.extend_from_slice(b",\"purpose\":\"");
    out.extend_from_slice(record.purpose.as_str().as_bytes());
    out.extend_from_slice(b"\"}\n");
}

fn integer(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn optional(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string as serde_json escapes it: `"` and `\`, the short forms of \b \f \n \r \t,
/// `\u00XX` (lowercase hex) for the other control characters; everything else as is.
fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Ids, names and costs never need escaping: one check (a fold without an early exit, so
    // it vectorises), one copy.
    let plain = !bytes.iter().fold(false, |any, &b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                crate::hex::DIGITS[usize::from(b >> 4)],
                crate::hex::DIGITS[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        out.extend_from_slice(escape);
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::record::{Purpose, Status, UsageSource};

    fn record() -> UsageRecord {
        UsageRecord {
            request_id: "req_0123456789abcdef".into(),
            created_at_us: 1_764_460_800_123_456,
            key_name: Some("team-a".into()),
            session_id: None,
            model_name: "gpt-4o-mini".into(),
            provider_id: Some("openai".into()),
            upstream_model: Some("gpt-4o-mini-2024-07-18".into()),
            stream: true,
            input_tokens: 1_234,
            output_tokens: -0,
            cached_input_tokens: 1_024,
            cache_write_tokens: 0,
            reasoning_tokens: 7,
            usage_source: UsageSource::Upstream,
            cost: "0.0001234500".into(),
            cache_saved_cost: "0".into(),
            units: None,
            unit: None,
            latency_ms: 812,
            ttft_ms: Some(95),
            attempts: 2,
            status: Status::Ok,
            http_status: 200,
            error_message: None,
            purpose: Purpose::Chat,
            estimate: None,
            journal: 7,
        }
    }

    fn same_as_serde(record: &UsageRecord) {
        let mut ours = Vec::new();
        write_line(record, &mut ours);
        let mut theirs = serde_json::to_vec(record).expect("serialises");
        theirs.push(b'\n');
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    #[test]
    fn rows_are_written_as_serde_json_writes_them() {
        same_as_serde(&record());
        let every_option = UsageRecord {
            key_name: None,
            provider_id: None,
            upstream_model: None,
            session_id: Some("s-1".into()),
            stream: false,
            ttft_ms: None,
            status: Status::Cancelled,
            usage_source: UsageSource::Estimated,
            purpose: Purpose::Responses,
            error_message: Some("client went away".into()),
            input_tokens: i64::MAX,
            output_tokens: i64::MIN,
            created_at_us: -1,
            latency_ms: i32::MIN,
            attempts: i16::MAX,
            http_status: 499,
            ..record()
        };
        same_as_serde(&every_option);
        let hit = UsageRecord {
            usage_source: UsageSource::Cache,
            cost: "0".into(),
            cache_saved_cost: "0.0000123000".into(),
            ..record()
        };
        same_as_serde(&hit);
        same_as_serde(&UsageRecord {
            purpose: Purpose::Rerank,
            units: Some(3),
            unit: Some(crate::usage::record::Unit::Searches),
            ..record()
        });
    }

    #[test]
    fn every_character_is_escaped_as_serde_json_escapes_it() {
        let all_ascii: String = (0u8..=0x7f).map(char::from).collect();
        let text = format!("{all_ascii} \"quoted\" \\ back\\slash é ü 中文 🚀 \u{2028}\u{feff}");
        for purpose in [
            Purpose::Chat,
            Purpose::Embedding,
            Purpose::Summary,
            Purpose::Completion,
        ] {
            same_as_serde(&UsageRecord {
                request_id: text.clone(),
                model_name: text.as_str().into(),
                error_message: Some(text.clone()),
                session_id: Some("\n\r\t\u{8}\u{c}\u{0}\u{1f}".into()),
                purpose,
                status: Status::Error,
                ..record()
            });
        }
    }
}
