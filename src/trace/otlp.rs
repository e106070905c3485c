//! Spans as an OTLP `ExportTraceServiceRequest` in protobuf (opentelemetry-proto,
//! `collector/trace/v1` and `trace/v1`), written by hand: a handful of messages, so a protobuf
//! toolchain would be all cost. Field numbers are the proto files'; the test suite decodes the
//! output with the official generated types.

use super::{Kind, Span, Value};

/// What every span of this process shares: its resource attributes.
pub struct Resource {
    pub service_name: String,
    pub service_version: &'static str,
}

/// `ExportTraceServiceRequest { resource_spans = 1 }` with one `ResourceSpans { resource = 1,
/// scope_spans = 2 }` and one `ScopeSpans { scope = 1, spans = 2 }`.
pub fn encode(resource: &Resource, spans: &[Span]) -> Vec<u8> {
    let mut resource_msg = Vec::new();
    key_value(
        &mut resource_msg,
        1,
        "service.name",
        &Value::Str(resource.service_name.clone()),
    );
    key_value(
        &mut resource_msg,
        1,
        "service.version",
        &Value::Static(resource.service_version),
    );
    let mut scope = Vec::new();
    string(&mut scope, 1, "switchyard");
    string(&mut scope, 2, resource.service_version);
    let mut scope_spans = Vec::new();
    message(&mut scope_spans, 1, &scope);
    let mut one = Vec::with_capacity(256);
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
    string(out, 5, &span.name);
    varint_field(out, 6, span.kind as u64);
    fixed64(out, 7, span.start_ns);
    fixed64(out, 8, span.end_ns);
    for (key, value) in &span.attributes {
        key_value(out, 9, key, value);
    }
    let mut status = Vec::new();
    match &span.error {
        Some(message) => {
            string(&mut status, 2, message);
            varint_field(&mut status, 3, 2);
        }
        None if span.kind == Kind::Server => varint_field(&mut status, 3, 1),
        None => {}
    }
    if !status.is_empty() {
        message(out, 15, &status);
    }
}

/// `KeyValue { key = 1, value = 2 }`, `AnyValue { string 1, bool 2, int 3 }`, written in place:
/// every length is known before its bytes, so no message is built apart and copied.
fn key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    let any_len = match value {
        Value::Str(s) => 1 + varint_len(s.len() as u64) + s.len(),
        Value::Static(s) => 1 + varint_len(s.len() as u64) + s.len(),
        Value::Bool(_) => 2,
        Value::Int(i) => 1 + varint_len(*i as u64),
    };
    let kv_len =
        1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(any_len as u64) + any_len;
    tag(out, field, 2);
    varint(out, kv_len as u64);
    string(out, 1, key);
    tag(out, 2, 2);
    varint(out, any_len as u64);
    match value {
        Value::Str(s) => string(out, 1, s),
        Value::Static(s) => string(out, 1, s),
        Value::Bool(b) => varint_field(out, 2, u64::from(*b)),
        Value::Int(i) => varint_field(out, 3, *i as u64),
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
mod tests {
    use super::*;

    #[test]
    fn varint_lengths_match_the_encoding() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(varint_len(v), out.len(), "{v}");
        }
    }

    #[test]
    fn varints_are_little_endian_base_128() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        varint(&mut out, (-1i64) as u64);
        assert_eq!(out.len(), 10, "a negative int64 takes ten bytes");
    }

    /// The official generated types read back every field, whatever the lengths (one-, two- and
    /// three-byte varints).
    #[test]
    fn the_official_types_decode_every_field() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
        use prost::Message;

        let long = "x".repeat(20_000);
        let span = |n: u8, kind: Kind, error: Option<String>| Span {
            trace_id: [n; 16],
            span_id: [n + 1; 8],
            parent: n.is_multiple_of(2).then_some([n + 2; 8]),
            name: format!("span {n}").into(),
            kind,
            start_ns: 1_000 + u64::from(n),
            end_ns: u64::MAX - u64::from(n),
            attributes: vec![
                ("s", Value::Str("a".repeat(usize::from(n) * 40))),
                ("static", Value::Static("fixed")),
                ("neg", Value::Int(-i64::from(n) - 1)),
                ("big", Value::Int(i64::MAX)),
                ("flag", Value::Bool(n % 2 == 1)),
            ],
            error,
        };
        let spans = vec![
            span(0, Kind::Server, None),
            span(1, Kind::Client, None),
            span(2, Kind::Client, Some("upstream said no".into())),
            span(3, Kind::Internal, Some(long.clone())),
            span(200, Kind::Server, None),
        ];
        let resource = Resource {
            service_name: "edge".into(),
            service_version: "9.9.9",
        };
        let bytes = encode(&resource, &spans);
        let request = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        let rs = &request.resource_spans[0];
        let attrs = &rs.resource.as_ref().unwrap().attributes;
        assert_eq!(attrs[0].key, "service.name");
        assert_eq!(
            attrs[0].value.as_ref().unwrap().value,
            Some(Any::StringValue("edge".into()))
        );
        let scope = &rs.scope_spans[0];
        assert_eq!(scope.scope.as_ref().unwrap().name, "switchyard");
        assert_eq!(scope.scope.as_ref().unwrap().version, "9.9.9");
        assert_eq!(scope.spans.len(), spans.len());
        for (got, want) in scope.spans.iter().zip(&spans) {
            assert_eq!(got.trace_id, want.trace_id);
            assert_eq!(got.span_id, want.span_id);
            assert_eq!(
                got.parent_span_id,
                want.parent.map(Vec::from).unwrap_or_default()
            );
            assert_eq!(got.name, want.name);
            assert_eq!(got.kind, want.kind as i32);
            assert_eq!(
                (got.start_time_unix_nano, got.end_time_unix_nano),
                (want.start_ns, want.end_ns)
            );
            let values: Vec<(&str, Any)> = (got.attributes.iter())
                .map(|kv| (kv.key.as_str(), kv.value.clone().unwrap().value.unwrap()))
                .collect();
            let expected: Vec<(&str, Any)> = (want.attributes.iter())
                .map(|(k, v)| {
                    let any = match v {
                        Value::Str(s) => Any::StringValue(s.clone()),
                        Value::Static(s) => Any::StringValue((*s).into()),
                        Value::Int(i) => Any::IntValue(*i),
                        Value::Bool(b) => Any::BoolValue(*b),
                    };
                    (*k, any)
                })
                .collect();
            assert_eq!(values, expected);
            let status = got.status.as_ref().map(|s| (s.code, s.message.as_str()));
            let expected = match (&want.error, want.kind) {
                (Some(m), _) => Some((2, m.as_str())),
                (None, Kind::Server) => Some((1, "")),
                (None, _) => None,
            };
            assert_eq!(status, expected);
        }
    }
}
