use super::*;

fn head(text: &str) -> ResponseHead {
    parse_head(text.as_bytes())
        .expect("valid head")
        .expect("complete head")
}

fn head_error(text: &str) -> String {
    parse_head(text.as_bytes())
        .expect_err("refused")
        .to_string()
}

/// Feeds `wire` to a decoder in pieces split at `cuts`, as reads would deliver it.
fn decode_split(framing: Framing, wire: &[u8], cuts: &[usize]) -> io::Result<(Vec<u8>, bool)> {
    let mut decoder = Decoder::new(framing);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut start = 0;
    for end in cuts.iter().copied().chain([wire.len()]) {
        buf.extend_from_slice(&wire[start..end]);
        start = end;
        while let Some(piece) = decoder.decode(&mut buf)? {
            assert!(!piece.is_empty(), "empty piece");
            out.extend_from_slice(&piece);
        }
    }
    Ok((out, decoder.is_done() && buf.is_empty()))
}

#[test]
fn content_length_head_keeps_the_connection() {
    let text = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{}";
    let h = head(text);
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.framing, Framing::Length(12));
    assert!(h.keep_alive);
    assert_eq!(h.len, text.len() - 2);
    assert_eq!(h.retry_after, None);
}

#[test]
fn an_incomplete_head_waits_and_an_oversized_one_is_refused() {
    assert_eq!(
        parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").expect("partial"),
        None
    );
    let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
    while big.len() <= MAX_HEAD {
        big.extend_from_slice(format!("x-filler: {}\r\n", "a".repeat(2000)).as_bytes());
    }
    assert_eq!(
        parse_head(&big).expect_err("too large").to_string(),
        "response head too large"
    );
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(
        parse_head(&many).expect_err("too many").to_string(),
        "response head has too many fields"
    );
    assert_eq!(
        head_error("HTTX/1.1 200 OK\r\n\r\n"),
        "malformed response head"
    );
}

#[test]
fn chunked_wins_over_length_and_the_connection_is_not_reused() {
    let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(h.framing, Framing::Chunked);
    assert!(!h.keep_alive);
    let h = head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n");
    assert_eq!(h.framing, Framing::Chunked);
    assert!(h.keep_alive);
    // A coding other than chunked last: the body runs to the close.
    let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
    assert_eq!(h.framing, Framing::UntilClose);
    assert!(!h.keep_alive);
}

#[test]
fn lengths_must_be_digits_and_agree() {
    assert_eq!(
        head_error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
        "conflicting content-length"
    );
    for bad in ["-1", "+5", "5 5", "0x10", "", "99999999999999999999"] {
        assert_eq!(
            head_error(&format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n")),
            "malformed content-length",
            "{bad:?}"
        );
    }
    let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(h.framing, Framing::Length(5));
}

#[test]
fn connection_reuse_follows_the_version_and_connection_header() {
    assert!(!head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive);
    assert!(
        !head("HTTP/1.1 200 OK\r\nConnection: Upgrade, Close\r\nContent-Length: 1\r\n\r\n")
            .keep_alive
    );
    assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").keep_alive);
    assert!(
        head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n").keep_alive
    );
    // No length: the close ends the body, so the connection cannot be reused.
    let h = head("HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n");
    assert_eq!(h.framing, Framing::UntilClose);
    assert!(!h.keep_alive);
}

#[test]
fn bodiless_statuses_have_no_body_whatever_the_headers_say() {
    for status in [
        "204 No Content",
        "304 Not Modified",
        "100 Continue",
        "103 Early Hints",
    ] {
        for announced in ["Content-Length: 10", "Transfer-Encoding: chunked"] {
            let h = head(&format!("HTTP/1.1 {status}\r\n{announced}\r\n\r\n"));
            assert_eq!(h.framing, Framing::Empty, "{status}");
            // The upstream may send the body it announced: never reuse after such a head.
            assert!(!h.keep_alive, "{status} with {announced}");
        }
        let h = head(&format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n"));
        assert!(h.keep_alive, "{status} with no body announced");
    }
    assert_eq!(
        head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").framing,
        Framing::Empty
    );
}

#[test]
fn framing_that_is_read_one_way_but_meant_another_is_not_reused() {
    // HTTP/1.0 has no transfer codings (RFC 9112 §6.1): read as chunked, then close.
    let h = head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.framing, Framing::Chunked);
    assert!(!h.keep_alive);
    // chunked applied twice, in one field or two.
    for te in [
        "Transfer-Encoding: chunked, chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    ] {
        let h = head(&format!("HTTP/1.1 200 OK\r\n{te}\r\n\r\n"));
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.keep_alive, "{te}");
    }
    assert_eq!(
        head_error("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"),
        "unrequested protocol switch"
    );
}

#[test]
fn a_complete_head_past_the_bound_is_refused_too() {
    let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
    while big.len() <= 2 * MAX_HEAD {
        big.extend_from_slice(format!("x-filler: {}\r\n", "a".repeat(4000)).as_bytes());
    }
    big.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    assert_eq!(
        head_error(&String::from_utf8(big).expect("ascii")),
        "response head too large"
    );
}

#[test]
fn retry_hints_prefer_milliseconds() {
    let h = head(
        "HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\nretry-after-ms: 250\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(h.retry_after, Some(Duration::from_millis(250)));
    let h = head("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1.5\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.retry_after, Some(Duration::from_millis(1500)));
    for bad in [
        "soon",
        "-1",
        "inf",
        "NaN",
        "1e999",
        "Wed, 21 Oct 2015 07:28:00 GMT",
    ] {
        let h = head(&format!(
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: {bad}\r\nContent-Length: 0\r\n\r\n"
        ));
        assert_eq!(h.retry_after, None, "{bad:?}");
    }
}

#[test]
fn a_chunked_body_decodes_the_same_at_every_split() {
    let wire = b"7\r\ndata: a\r\n1A;name=value\r\n\ndata: {\"x\":\"0123456789\"}\n\r\n0\r\nx-trailer: 1\r\n\r\n";
    let expected = b"data: a\ndata: {\"x\":\"0123456789\"}\n";
    for cut in 0..wire.len() {
        for second in cut..wire.len() {
            let (out, done) =
                decode_split(Framing::Chunked, wire, &[cut, second]).expect("decodes");
            assert_eq!(out, expected, "cuts at {cut}, {second}");
            assert!(done, "cuts at {cut}, {second}");
        }
    }
}

#[test]
fn chunked_framing_errors_are_refused() {
    for (wire, error) in [
        (&b"zz\r\nab\r\n0\r\n\r\n"[..], "malformed chunk size"),
        (b"2 x\r\nab\r\n0\r\n\r\n", "malformed chunk size"),
        (b"11111111111111111\r\n", "malformed chunk size"),
        (b"2\r\nabXY0\r\n\r\n", "chunk data not followed by CRLF"),
        (b"2\nab\r\n", "bare LF in chunked framing"),
    ] {
        let e = decode_split(Framing::Chunked, wire, &[]).expect_err("refused");
        assert_eq!(e.to_string(), error, "{:?}", String::from_utf8_lossy(wire));
    }
    let long_line = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_LINE));
    let e = decode_split(Framing::Chunked, long_line.as_bytes(), &[]).expect_err("refused");
    assert_eq!(e.to_string(), "chunk size line too long");
    let no_end = "1;".to_owned() + &"e".repeat(MAX_CHUNK_LINE + 10);
    let e = decode_split(Framing::Chunked, no_end.as_bytes(), &[]).expect_err("refused");
    assert_eq!(e.to_string(), "chunk size line too long");
    let mut trailers = b"0\r\n".to_vec();
    while trailers.len() < MAX_TRAILERS + 100 {
        trailers.extend_from_slice(b"x-trailer: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let e = decode_split(Framing::Chunked, &trailers, &[]).expect_err("refused");
    assert_eq!(e.to_string(), "trailer section too large");
}

#[test]
fn a_length_body_ends_at_its_length_and_leaves_the_rest() {
    let mut decoder = Decoder::new(Framing::Length(5));
    let mut buf = BytesMut::from(&b"helloHTTP/1.1"[..]);
    assert_eq!(
        decoder.decode(&mut buf).expect("ok").as_deref(),
        Some(&b"hello"[..])
    );
    assert!(decoder.is_done());
    assert_eq!(decoder.decode(&mut buf).expect("ok"), None);
    assert_eq!(&buf[..], b"HTTP/1.1");
}

#[test]
fn the_close_ends_only_a_body_that_runs_to_it() {
    let mut until_close = Decoder::new(Framing::UntilClose);
    let mut buf = BytesMut::from(&b"partial"[..]);
    assert_eq!(
        until_close.decode(&mut buf).expect("ok").as_deref(),
        Some(&b"partial"[..])
    );
    until_close.eof().expect("the close is the end");
    assert!(until_close.is_done());

    for framing in [Framing::Length(10), Framing::Chunked] {
        let mut decoder = Decoder::new(framing);
        let mut buf = BytesMut::from(&b"5\r\nab"[..]);
        while decoder.decode(&mut buf).expect("ok").is_some() {}
        let e = decoder.eof().expect_err("cut short");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{framing:?}");
    }
}
