use super::*;

/// A real OpenAI tool-call stream with include_usage (PROTOCOLS.md §1.4, PYCAP capture, abridged).
const RECORDED: &[u8] = b"data: {\"id\":\"chatcmpl-ABfw\",\"object\":\"chat.completion.chunk\",\"created\":1727346182,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_4Xzl\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}],\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-ABfw\",\"object\":\"chat.completion.chunk\",\"created\":1727346182,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n\
: keep-alive\n\n\
data: {\"id\":\"chatcmpl-ABfw\",\"object\":\"chat.completion.chunk\",\"created\":1727346182,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}]}\n\n\
data: {\"id\":\"chatcmpl-ABfw\",\"object\":\"chat.completion.chunk\",\"created\":1727346182,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":44,\"completion_tokens\":16,\"total_tokens\":60}}\n\n\
data: [DONE]\n\n";

fn decode_all(chunks: &[&[u8]]) -> Vec<Bytes> {
    let mut d = SseDecoder::new(1 << 20);
    let mut frames = Vec::new();
    for chunk in chunks {
        d.push(chunk);
        while let Some(f) = d.next_frame().unwrap() {
            frames.push(f);
        }
    }
    assert_eq!(d.finish(), None, "no bytes may be left over");
    frames
}

#[test]
fn every_two_way_split_yields_the_same_frames() {
    let whole = decode_all(&[RECORDED]);
    assert_eq!(whole.len(), 6);
    assert_eq!(
        concat(&whole),
        RECORDED,
        "frames must be the exact upstream bytes"
    );
    for split in 0..=RECORDED.len() {
        let (a, b) = RECORDED.split_at(split);
        assert_eq!(decode_all(&[a, b]), whole, "split at {split}");
    }
}

#[test]
fn byte_by_byte_yields_the_same_frames() {
    let chunks: Vec<&[u8]> = RECORDED.chunks(1).collect();
    assert_eq!(decode_all(&chunks), decode_all(&[RECORDED]));
}

#[test]
fn crlf_and_cr_line_endings_split_anywhere() {
    let crlf = b"data: a\r\n\r\ndata: b\r\ndata: c\r\n\r\n";
    let cr = b"data: a\r\rdata: b\rdata: c\r\r";
    for input in [&crlf[..], &cr[..]] {
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            let mut d = SseDecoder::new(1 << 20);
            let mut data = Vec::new();
            for chunk in [a, b] {
                d.push(chunk);
                while let Some(f) = d.next_frame().unwrap() {
                    data.push(SseEvent::parse(&f).data.unwrap().into_owned());
                }
            }
            if let Some(rest) = d.finish() {
                data.push(SseEvent::parse(&rest).data.unwrap().into_owned());
            }
            assert_eq!(
                data,
                [b"a".to_vec(), b"b\nc".to_vec()],
                "input {input:?} split at {split}"
            );
        }
    }
}

#[test]
fn parses_fields_comments_and_dashscope_framing() {
    let frame = b"id:1\nevent:error\n:HTTP_STATUS/400\ndata:{\"code\":\"InvalidParameter\"}\n\n";
    let e = SseEvent::parse(frame);
    assert_eq!(e.id, Some(&b"1"[..]));
    assert_eq!(e.event, Some(&b"error"[..]));
    assert_eq!(e.comments, vec![&b"HTTP_STATUS/400"[..]]);
    assert_eq!(
        e.data.as_deref(),
        Some(&b"{\"code\":\"InvalidParameter\"}"[..])
    );
    let only_space_stripped = SseEvent::parse(b"data:  two spaces\n\n");
    assert_eq!(
        only_space_stripped.data.as_deref(),
        Some(&b" two spaces"[..])
    );
}

#[test]
fn leading_blank_lines_are_not_frames() {
    assert_eq!(decode_all(&[b"\n\n\r\n", b"data: x\n\n"]).len(), 1);
}

#[test]
fn an_endless_line_is_refused_not_buffered_forever() {
    let mut d = SseDecoder::new(64);
    d.push(&[b'x'; 65]);
    assert_eq!(d.next_frame(), Err(FrameTooLarge(65)));
}

#[test]
fn unterminated_last_frame_is_returned_by_finish() {
    let mut d = SseDecoder::new(1024);
    d.push(b"data: {\"partial\":");
    assert_eq!(d.next_frame().unwrap(), None);
    assert_eq!(d.finish().as_deref(), Some(&b"data: {\"partial\":"[..]));
}

/// The named-event fast path reads what the general parser reads, and leaves every other
/// shape to it.
#[test]
fn named_frames_read_as_the_parser_reads_them() {
    for frame in [
        &b"event: ping\ndata: {\"type\": \"ping\"}\n\n"[..],
        b"event:message_stop\ndata:{\"type\":\"message_stop\"}\n\n",
        b"event: x\ndata:  two spaces\n\n",
    ] {
        let (name, data) = SseEvent::named(frame).expect("the common shape");
        let parsed = SseEvent::parse(frame);
        assert_eq!(Some(name), parsed.event);
        assert_eq!(Some(data), parsed.data.as_deref());
    }
    for other in [
        &b"data: {}\n\n"[..],
        b"event: a\r\ndata: {}\r\n\r\n",
        b"event: a\ndata: {}\ndata: {}\n\n",
        b"event: a\nid: 1\ndata: {}\n\n",
        b"event: a\ndata: {}\n",
        b": comment\n\n",
    ] {
        assert_eq!(
            SseEvent::named(other),
            None,
            "{:?}",
            String::from_utf8_lossy(other)
        );
    }
}

#[test]
fn data_only_frames_read_as_the_parser_reads_them() {
    for frame in [
        &b"data: {\"a\":1}\n\n"[..],
        b"data:[DONE]\n\n",
        b"data:  x\n\n",
    ] {
        assert_eq!(
            SseEvent::data_only(frame),
            SseEvent::parse(frame).data.as_deref()
        );
    }
    for other in [
        &b"event: a\ndata: {}\n\n"[..],
        b"data: {}\r\n\r\n",
        b"data: {}\ndata: {}\n\n",
        b"data: {}\n",
        b": keep-alive\n\n",
    ] {
        assert_eq!(
            SseEvent::data_only(other),
            None,
            "{:?}",
            String::from_utf8_lossy(other)
        );
    }
}

#[test]
fn data_lines_are_found_as_the_parser_finds_them() {
    for frames in [
        &b"data: {}\n\n"[..],
        b"event: message_start\ndata: {}\n\nevent: ping\ndata: {}\n\n",
        b": keep-alive\n\n",
        b"event: x\n\n",
        b"data\n\n",
        b"event: x\rdata: y\r\r",
        b": note\ndatum: 1\n\n",
        b"",
    ] {
        assert_eq!(
            SseEvent::has_data(frames),
            SseEvent::parse(frames).data.is_some(),
            "{:?}",
            String::from_utf8_lossy(frames)
        );
    }
}
