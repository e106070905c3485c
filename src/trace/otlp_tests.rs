//! The OTLP encoding, read back with the official generated types.

use super::*;
use crate::trace::Attr;

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
            (Attr::SessionId, Value::Str("a".repeat(usize::from(n) * 40))),
            (Attr::Cache, Value::Static("fixed")),
            (Attr::Provider, Value::Shared("shared".into())),
            (Attr::Attempt, Value::Int(-i64::from(n) - 1)),
            (Attr::UsageRows, Value::Int(i64::MAX)),
            (Attr::StreamCancelled, Value::Bool(n % 2 == 1)),
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
        assert_eq!(got.name, want.name.to_string());
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
                    Value::Shared(s) => Any::StringValue((**s).into()),
                    Value::Int(i) => Any::IntValue(*i),
                    Value::Bool(b) => Any::BoolValue(*b),
                };
                (k.name(), any)
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
