//! A WAV file's duration from its header (RIFF `fmt ` and `data` chunks): what a transcription
//! is priced by when its answer reports no seconds (`text`, `srt`, `vtt` answers).

/// Seconds of audio, rounded up as OpenAI's `usage.seconds` is; `None` for anything but a
/// plain WAV header in `file`'s first bytes.
pub fn seconds(file: &[u8]) -> Option<u64> {
    if file.len() < 12 || &file[..4] != b"RIFF" || &file[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut byte_rate = None;
    // The header's chunks come before the samples; a few at most.
    while at + 8 <= file.len() {
        let id = &file[at..at + 4];
        let size = u32::from_le_bytes(file[at + 4..at + 8].try_into().ok()?);
        let data = at + 8;
        match id {
            b"fmt " if data + 12 <= file.len() => {
                byte_rate = Some(u32::from_le_bytes(
                    file[data + 8..data + 12].try_into().ok()?,
                ));
            }
            // A streamed WAV's unknown length (0 or all ones) says nothing.
            b"data" if size != 0 && size != u32::MAX => {
                let rate = u64::from(byte_rate.filter(|r| *r > 0)?);
                return Some(u64::from(size).div_ceil(rate));
            }
            b"data" => return None,
            _ => {}
        }
        // Chunks are padded to an even length.
        at = data.checked_add(size as usize + (size as usize & 1))?;
    }
    None
}

/// The 44-byte header of a 16-bit mono PCM WAV of `data` bytes at `rate` Hz (the mock's tone;
/// tests' uploads).
pub fn header(rate: u32, data: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&1u16.to_le_bytes()); // mono
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * 2).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAV header for `samples` 16-bit samples at `rate` Hz.
    fn header(rate: u32, samples: u32) -> Vec<u8> {
        super::header(rate, samples * 2)
    }

    #[test]
    fn seconds_are_read_from_the_header_and_rounded_up() {
        assert_eq!(seconds(&header(16_000, 16_000 * 3)), Some(3));
        assert_eq!(seconds(&header(16_000, 16_000 * 3 + 1)), Some(4));
        let mut listed = header(8_000, 8_000);
        // A LIST chunk between fmt and data.
        let data = listed.split_off(36);
        listed.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00");
        listed.extend_from_slice(&data);
        assert_eq!(seconds(&listed), Some(1));
        assert_eq!(seconds(b"ID3\x04 an mp3"), None);
        assert_eq!(seconds(&header(16_000, 0)), None);
        assert_eq!(seconds(&header(16_000, 100)[..30]), None);
    }
}
