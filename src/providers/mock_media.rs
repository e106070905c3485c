//! The mock's audio and image-edit answers (pure, like the mock), so the embedded default demonstrates them offline:
//! a transcription that names the WAV it was sent and its length (in every `response_format`,
//! and as `transcript.text.*` events with `stream=true`), a short generated tone for speech
//! (WAV, or raw PCM for `pcm`; as `speech.audio.*` events with `stream_format: "sse"`), and the
//! generations' tiny PNG for edits.

use base64::Engine as _;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use std::time::Duration;

use crate::routing::transport::{LocalAnswer, UpstreamRequest};
use crate::sse::data_frame;
use crate::upload::multipart::{self, Scanner};

/// The tone's sample rate and pitch (PCM 16-bit mono, as OpenAI's `pcm` format).
const RATE: u32 = 24_000;
const PITCH: f64 = 440.0;
/// Audio bytes per chunk sent.
const CHUNK: usize = 8 * 1024;

/// When the answer starts and how its chunks are spaced (the mock's `latency` and
/// `chunk_interval`).
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub latency: Duration,
    pub interval: Duration,
}

/// Why the mock refuses a request (a 400 with this message).
type Refused = &'static str;

/// About four characters a token, at least one for non-empty text: deterministic and cheap.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// A form's fields (values) and its file part's name and bytes.
struct Form {
    fields: Vec<(String, String)>,
    file: Option<(Option<String>, Bytes)>,
}

impl Form {
    fn read(req: &UpstreamRequest, files: &[&str]) -> Option<Self> {
        let content_type = req
            .headers
            .iter()
            .find(|(name, _)| name == CONTENT_TYPE)
            .and_then(|(_, v)| v.to_str().ok())?;
        let mut scanner = Scanner::new(&multipart::boundary(content_type).ok()?);
        scanner.feed(&req.body).ok()?;
        scanner.finish().ok()?;
        let mut form = Form {
            fields: Vec::new(),
            file: None,
        };
        for part in scanner.parts() {
            let span = multipart::span(part)?;
            if files.contains(&part.name.as_str()) {
                let bytes = req.body.slice(span.start as usize..span.end as usize);
                form.file.get_or_insert((part.filename.clone(), bytes));
            } else if let Some(value) = &part.value {
                let value = String::from_utf8_lossy(value).into_owned();
                form.fields.push((part.name.clone(), value));
            }
        }
        Some(form)
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A transcription (or translation) of the uploaded file, in the format asked for.
pub fn transcription(
    req: &UpstreamRequest,
    translate: bool,
    pacing: Pacing,
) -> Result<LocalAnswer, Refused> {
    let form = Form::read(req, &["file"]).ok_or("mock upstream: not a multipart form")?;
    let (name, file) = form.file.as_ref().ok_or("mock upstream: no file")?;
    let model = form.field("model").unwrap_or("whisper-1");
    let seconds = crate::upload::wav::seconds(file);
    let name = name.as_deref().unwrap_or("audio");
    let text = match seconds {
        Some(s) => format!("Mock transcription by {model} of {name}: {s} seconds of audio."),
        None => format!(
            "Mock transcription by {model} of {name}: {} bytes of audio.",
            file.len()
        ),
    };
    let secs = seconds.unwrap_or(1);
    let format = form.field("response_format").unwrap_or("json");
    if form.field("stream") == Some("true") && !translate {
        return Ok(transcript_events(&text, pacing));
    }
    let duration = json!({"type": "duration", "seconds": secs});
    let (content_type, body) = match format {
        "text" => ("text/plain; charset=utf-8", format!("{text}\n")),
        "srt" => (
            "text/plain; charset=utf-8",
            format!("1\n00:00:00,000 --> {}\n{text}\n\n", clock(secs, ',')),
        ),
        "vtt" => (
            "text/plain; charset=utf-8",
            format!(
                "WEBVTT\n\n00:00:00.000 --> {}\n{text}\n\n",
                clock(secs, '.')
            ),
        ),
        "verbose_json" => {
            let task = if translate { "translate" } else { "transcribe" };
            let mut out = json!({"task": task, "language": "english", "duration": secs as f64,
                "text": text, "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": secs as f64,
                "text": text, "tokens": [], "temperature": 0.0, "avg_logprob": -0.1,
                "compression_ratio": 1.0, "no_speech_prob": 0.0}]});
            if !translate {
                out["usage"] = duration;
            }
            ("application/json", out.to_string())
        }
        _ => {
            let mut out = json!({"text": text});
            if !translate {
                out["usage"] = duration;
            }
            ("application/json", out.to_string())
        }
    };
    Ok(LocalAnswer {
        status: StatusCode::OK,
        content_type: Some(HeaderValue::from_static(content_type)),
        chunks: vec![Bytes::from(body)],
        latency: pacing.latency,
        interval: Duration::ZERO,
    })
}

/// `HH:MM:SS<sep>000` for a whole number of seconds.
fn clock(secs: u64, sep: char) -> String {
    format!(
        "{:02}:{:02}:{:02}{sep}000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `stream=true`: a delta per word, then the done event with token usage (PROTOCOLS.md §13.1).
fn transcript_events(text: &str, pacing: Pacing) -> LocalAnswer {
    let mut chunks: Vec<Bytes> = text
        .split_inclusive(' ')
        .map(|word| {
            let event = json!({"type": "transcript.text.delta", "delta": word});
            data_frame(event.to_string().as_bytes())
        })
        .collect();
    let output = estimate_tokens(text);
    let done = json!({"type": "transcript.text.done", "text": text, "usage": {"type": "tokens",
        "input_tokens": 14, "input_token_details": {"text_tokens": 0, "audio_tokens": 14},
        "output_tokens": output, "total_tokens": 14 + output}});
    chunks.push(data_frame(done.to_string().as_bytes()));
    LocalAnswer {
        status: StatusCode::OK,
        content_type: Some(HeaderValue::from_static("text/event-stream")),
        chunks,
        latency: pacing.latency,
        interval: pacing.interval,
    }
}

/// Speech: a tone as long as the input takes to say (50 ms a character, 0.5 to 5 s), in chunks
/// paced like a stream.
pub fn speech(body: &Value, pacing: Pacing) -> Result<LocalAnswer, Refused> {
    let input = body["input"]
        .as_str()
        .ok_or("mock upstream: input required")?;
    let chars = input.chars().count() as f64;
    let seconds = (chars * 0.05).clamp(0.5, 5.0);
    let pcm = tone(seconds);
    let format = body["response_format"].as_str().unwrap_or("mp3");
    if body["stream_format"] == "sse" {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut chunks: Vec<Bytes> = pcm
            .chunks(CHUNK)
            .map(|piece| {
                let event = json!({"type": "speech.audio.delta", "audio": b64.encode(piece)});
                data_frame(event.to_string().as_bytes())
            })
            .collect();
        let input_tokens = estimate_tokens(input);
        let output = pcm.len() as u64 / 100;
        let done = json!({"type": "speech.audio.done", "usage": {"input_tokens": input_tokens,
            "output_tokens": output, "total_tokens": input_tokens + output}});
        chunks.push(data_frame(done.to_string().as_bytes()));
        return Ok(LocalAnswer {
            status: StatusCode::OK,
            content_type: Some(HeaderValue::from_static("text/event-stream")),
            chunks,
            latency: pacing.latency,
            interval: pacing.interval,
        });
    }
    // The mock makes no compressed audio: a WAV for every format but raw `pcm`.
    let (content_type, audio) = match format {
        "pcm" => ("audio/pcm", pcm),
        _ => (
            "audio/wav",
            [crate::upload::wav::header(RATE, pcm.len() as u32), pcm].concat(),
        ),
    };
    Ok(LocalAnswer {
        status: StatusCode::OK,
        content_type: Some(HeaderValue::from_static(content_type)),
        chunks: audio.chunks(CHUNK).map(Bytes::copy_from_slice).collect(),
        latency: pacing.latency,
        interval: pacing.interval,
    })
}

/// `seconds` of a sine tone, 16-bit little-endian mono at `RATE`.
fn tone(seconds: f64) -> Vec<u8> {
    let samples = (seconds * f64::from(RATE)) as usize;
    let mut out = Vec::with_capacity(samples * 2);
    for i in 0..samples {
        let t = i as f64 / f64::from(RATE);
        let sample = ((t * PITCH * std::f64::consts::TAU).sin() * 8_000.0) as i16;
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// An image edit as the generation request the mock answers it with: the form's prompt and `n`.
pub fn edit_request(req: &UpstreamRequest) -> Result<Value, Refused> {
    let form =
        Form::read(req, &["image", "image[]"]).ok_or("mock upstream: not a multipart form")?;
    form.file.as_ref().ok_or("mock upstream: no image")?;
    let mut body = json!({"prompt": form.field("prompt")});
    if let Some(n) = form.field("n").and_then(|n| n.parse::<u64>().ok()) {
        body["n"] = json!(n);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tone_is_a_wav_whose_header_tells_its_length() {
        let pcm = tone(1.0);
        let wav = [crate::upload::wav::header(RATE, pcm.len() as u32), pcm].concat();
        assert_eq!(crate::upload::wav::seconds(&wav), Some(1));
        assert_eq!(clock(3_725, ','), "01:02:05,000");
    }
}
