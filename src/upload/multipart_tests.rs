use super::*;

const B: &[u8] = b"XyZ123";

/// A body as openai-python sends it: fields first, then the file.
fn body(file: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in [("model", "whisper-1"), ("response_format", "json")] {
        out.extend_from_slice(
            format!(
                "--XyZ123\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(
        b"--XyZ123\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n",
    );
    out.extend_from_slice(file);
    out.extend_from_slice(b"\r\n--XyZ123--\r\n");
    out
}

fn scan(pieces: &[&[u8]]) -> Result<Scanner, Malformed> {
    let mut scanner = Scanner::new(B);
    for piece in pieces {
        scanner.feed(piece)?;
    }
    scanner.finish()?;
    Ok(scanner)
}

fn err(pieces: &[&[u8]]) -> Malformed {
    match scan(pieces) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    }
}

fn value(s: &Scanner, name: &str) -> Option<String> {
    let part = s.parts().iter().find(|p| p.name == name)?;
    Some(String::from_utf8(part.value.clone()?).unwrap())
}

#[test]
fn parts_and_values_are_found_however_the_body_is_cut() {
    // The file holds things that look like a delimiter but are not one.
    let file = b"RIFF\r\n--XyZ12\r\n-XyZ123\r\n--XyZ1\x00\xff data";
    let whole = body(file);
    let reference = scan(&[&whole]).unwrap();
    assert_eq!(value(&reference, "model").as_deref(), Some("whisper-1"));
    assert_eq!(
        value(&reference, "response_format").as_deref(),
        Some("json")
    );
    let parts = reference.parts();
    assert_eq!(parts.len(), 3);
    let f = &parts[2];
    assert_eq!(
        (f.name.as_str(), f.filename.as_deref()),
        ("file", Some("a.wav"))
    );
    assert_eq!(&whole[f.start as usize..f.end.unwrap() as usize], file);
    assert_eq!(reference.first_delimiter(), Some(0));
    // Every split in two, and byte by byte: the same parts at the same places.
    for cut in 0..=whole.len() {
        let s = scan(&[&whole[..cut], &whole[cut..]]).unwrap();
        assert_eq!(s.parts(), parts, "cut at {cut}");
    }
    let bytes: Vec<&[u8]> = whole.chunks(1).collect();
    assert_eq!(scan(&bytes).unwrap().parts(), parts);
}

#[test]
fn a_preamble_and_a_file_before_the_fields_are_read() {
    let mut whole = b"ignored preamble\r\n".to_vec();
    whole.extend_from_slice(
        b"--XyZ123\r\nContent-Disposition: form-data; filename=\"x \\\"y\\\".wav\"; name=file\r\n\r\nAUDIO\r\n--XyZ123  \r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--XyZ123--",
    );
    let s = scan(&[&whole]).unwrap();
    assert_eq!(s.first_delimiter(), Some(18));
    assert_eq!(s.parts()[0].filename.as_deref(), Some("x \"y\".wav"));
    assert_eq!(s.parts()[0].name, "file");
    assert_eq!(value(&s, "model").as_deref(), Some("m"));
}

#[test]
fn broken_framing_is_refused() {
    let whole = body(b"abc");
    // No closing delimiter.
    let cut = &whole[..whole.len() - 6];
    assert!(err(&[cut]).0.contains("closing boundary"));
    // No boundary at all.
    assert!(err(&[b"just text"]).0.contains("no part"));
    for bad in [
        &b"--XyZ123\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ123--"[..],
        b"--XyZ123\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--XyZ123--",
        b"--XyZ123\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ123--",
        b"--XyZ123\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--XyZ123--",
        b"--XyZ123\r\n\r\nx\r\n--XyZ123--",
        b"--XyZ123junk\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--XyZ123--",
    ] {
        assert!(scan(&[bad]).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    // A head that never ends.
    let mut long = b"--XyZ123\r\nContent-Disposition: form-data; name=a; x=".to_vec();
    long.extend(std::iter::repeat_n(b'y', MAX_HEAD * 2));
    assert!(err(&[&long]).0.contains("too long"));
}

#[test]
fn long_fields_are_passed_but_not_kept() {
    let mut whole = b"--XyZ123\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n".to_vec();
    whole.extend(std::iter::repeat_n(b'p', MAX_FIELD + 1));
    whole.extend_from_slice(b"\r\n--XyZ123\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--XyZ123--\r\n");
    let s = scan(&[&whole]).unwrap();
    assert_eq!(s.parts()[0].value, None);
    assert_eq!(
        span(&s.parts()[0]).unwrap().end - span(&s.parts()[0]).unwrap().start,
        MAX_FIELD as u64 + 1
    );
    assert_eq!(value(&s, "model").as_deref(), Some("m"));
}

#[test]
fn the_boundary_comes_from_the_content_type() {
    assert_eq!(
        boundary("multipart/form-data; boundary=abc").unwrap(),
        b"abc"
    );
    assert_eq!(
        boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b:c\"").unwrap(),
        b"a b:c"
    );
    assert!(boundary("application/json").is_err());
    assert!(boundary("multipart/form-data").is_err());
    assert!(boundary("multipart/form-data; boundary=").is_err());
    assert!(boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))).is_err());
}
