//! Spans as an OTLP `ExportTraceServiceRequest` in protobuf (opentelemetry-proto,
//! `collector/trace/v1` and `trace/v1`), written by hand: a handful of messages, so a protobuf
//! toolchain would be all cost. Field numbers are the proto files'; the test suite decodes the
//! output with the official generated types.

use std::sync::LazyLock;

use super::{Attr, Kind, Span, Value};

/// Each attribute's key as `KeyValue.key` is written (tag, length, name): one copy a key.
static KEYS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    Attr::ALL
        .iter()
        .map(|attr| key_field(attr.name()))
        .collect()
});

/// `KeyValue.key` as written.
fn key_field(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + name.len());
    string(&mut key, 1, name);
    key
}

/// What every span of this process shares: its resource attributes.
pub struct Resource {
    pub service_name: String,
    pub service_version: &'static str,
}

/// About what one span takes encoded (a server span with its attributes).
const SPAN_BYTES: usize = 640;

/// `ExportTraceServiceRequest { resource_spans = 1 }` with one `ResourceSpans { resource = 1,
/// scope_spans = 2 }` and one `ScopeSpans { scope = 1, spans = 2 }`.
pub fn encode(resource: &Resource, spans: &[Span]) -> Vec<u8> {
    let mut resource_msg = Vec::new();
    key_value(
        &mut resource_msg,
        1,
        &key_field("service.name"),
        &Value::Str(resource.service_name.clone()),
    );
    key_value(
        &mut resource_msg,
        1,
        &key_field("service.version"),
        &Value::Static(resource.service_version),
    );
    let mut scope = Vec::new();
    string(&mut scope, 1, "switchyard");
    string(&mut scope, 2, resource.service_version);
    // Sized for the batch once: grown by doubling, it was copied about twice over.
    let mut scope_spans = Vec::with_capacity(64 + spans.len() * SPAN_BYTES);
    message(&mut scope_spans, 1, &scope);
    let mut one = Vec::with_capacity(SPAN_BYTES);
    for span in spans {
        one.clear();
        encode_span(&mut one, span);
        message(&mut scope_spans, 2, &one);
    }
    // The two outer messages' lengths are known now: their headers go straight into the
    // request, and the spans' bytes are copied once more, not twice.
    let resource_spans_len = field_len(resource_msg.len()) + field_len(scope_spans.len());
    let mut request = Vec::with_capacity(field_len(resource_spans_len));
    tag(&mut request, 1, 2);
    varint(&mut request, resource_spans_len as u64);
    message(&mut request, 1, &resource_msg);
    message(&mut request, 2, &scope_spans);
    request
}

/// The bytes a length-delimited field with a one-byte tag takes for a body of `len` bytes.
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// `Span`: trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6, start 7 and end 8
/// (fixed64), attributes 9, status 15 (`message` 2, `code` 3: 1 ok, 2 error).
fn encode_span(out: &mut Vec<u8>, span: &Span) {
    bytes(out, 1, &span.trace_id);
    bytes(out, 2, &span.span_id);
    if let Some(parent) = &span.parent {
        bytes(out, 4, parent);
    }
    tag(out, 5, 2);
    varint(out, span.name.len() as u64);
    span.name.write_to(out);
    varint_field(out, 6, span.kind as u64);
    fixed64(out, 7, span.start_ns);
    fixed64(out, 8, span.end_ns);
    let keys = &*KEYS;
    for (key, value) in &span.attributes {
        key_value(out, 9, &keys[*key as usize], value);
    }
    // `Status`, written in place: its length is known.
    match &span.error {
        Some(message) => {
            tag(out, 15, 2);
            varint(out, (field_len(message.len()) + 2) as u64);
            string(out, 2, message);
            varint_field(out, 3, 2);
        }
        None if span.kind == Kind::Server => {
            tag(out, 15, 2);
            varint(out, 2);
            varint_field(out, 3, 1);
        }
        None => {}
    }
}

/// `KeyValue { key = 1, value = 2 }`, `AnyValue { string 1, bool 2, int 3 }`, written in place:
/// every length is known before its bytes, so no message is built apart and copied. `key` is
/// the key field already written ([`KEYS`]).
fn key_value(out: &mut Vec<u8>, field: u32, key: &[u8], value: &Value) {
    let text = match value {
        Value::Str(s) => Some(s.as_str()),
        Value::Static(s) => Some(*s),
        Value::Shared(s) => Some(&**s),
        Value::Bool(_) | Value::Int(_) => None,
    };
    let any_len = match (text, value) {
        (Some(s), _) => field_len(s.len()),
        (None, Value::Int(i)) => 1 + varint_len(*i as u64),
        (None, _) => 2,
    };
    let kv_len = key.len() + 1 + varint_len(any_len as u64) + any_len;
    out.reserve(2 + varint_len(kv_len as u64) + kv_len);
    tag(out, field, 2);
    varint(out, kv_len as u64);
    out.extend_from_slice(key);
    tag(out, 2, 2);
    varint(out, any_len as u64);
    match (text, value) {
        (Some(s), _) => string(out, 1, s),
        (None, Value::Int(i)) => varint_field(out, 3, *i as u64),
        (None, Value::Bool(b)) => varint_field(out, 2, u64::from(*b)),
        (None, _) => {}
    }
}

fn varint_len(v: u64) -> usize {
    (64 - v.max(1).leading_zeros() as usize).div_ceil(7)
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, 0);
    varint(out, v);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    tag(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes(out, field, s.as_bytes());
}

fn message(out: &mut Vec<u8>, field: u32, m: &[u8]) {
    bytes(out, field, m);
}

#[cfg(test)]
#[path = "otlp_tests.rs"]
mod tests;
