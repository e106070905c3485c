"""The official openai Python SDK's audio, images and moderations calls against Switchyard's
offline default (its in-process mock serves demo-transcription, demo-speech, demo-moderation and
demo-image), unmodified except the base URL. Run by tests/gateway/dropin.rs with
SWITCHYARD_BASE_URL and SWITCHYARD_API_KEY set."""

import base64
import io
import math
import os
import struct
import sys
import tempfile
import warnings
import wave

from openai import OpenAI

client = OpenAI(base_url=os.environ["SWITCHYARD_BASE_URL"], api_key=os.environ["SWITCHYARD_API_KEY"], max_retries=0)


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


# No model named: the first moderation model serves, as the SDK allows.
flagged = client.moderations.create(input=["I will attack the castle", "a quiet afternoon"])
check(len(flagged.results) == 2, f"one result per input: {flagged}")
check(flagged.results[0].flagged and flagged.results[0].categories.violence, f"violence flagged: {flagged}")
check(not flagged.results[1].flagged, f"calm text passes: {flagged}")
named = client.moderations.create(model="demo-moderation", input="hello")
check(named.results[0].category_scores.violence < 0.5, f"scores: {named}")

images = client.images.generate(model="demo-image", prompt="a lighthouse at dusk", n=2)
check(len(images.data) == 2, f"two images: {images}")
png = base64.b64decode(images.data[0].b64_json)
check(png.startswith(b"\x89PNG"), "a PNG")
check(images.usage is not None and images.usage.input_tokens > 0, f"usage: {images.usage}")

try:
    client.images.generate(model="demo", prompt="x")
    check(False, "a chat model must not generate images")
except Exception as e:  # openai.BadRequestError
    check(getattr(e, "status_code", None) == 400, f"400 for a chat model: {e}")

# A real WAV file: two seconds of a 440 Hz tone, written by the standard library.
wav_path = os.path.join(tempfile.mkdtemp(), "greeting.wav")
with wave.open(wav_path, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(16000)
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 16000))) for i in range(32000)))

with open(wav_path, "rb") as f:
    text = client.audio.transcriptions.create(model="demo-transcription", file=f)
check("greeting.wav" in text.text and "2 seconds" in text.text, f"a transcription of the file sent: {text}")
with open(wav_path, "rb") as f:
    srt = client.audio.transcriptions.create(model="demo-transcription", file=f, response_format="srt")
check(isinstance(srt, str) and srt.startswith("1\n00:00:00,000 --> 00:00:02,000"), f"srt as text: {srt!r}")
with open(wav_path, "rb") as f:
    verbose = client.audio.transcriptions.create(
        model="demo-transcription", file=f, response_format="verbose_json", timestamp_granularities=["segment"]
    )
check(verbose.duration == 2.0 and verbose.segments, f"verbose_json: {verbose}")
with open(wav_path, "rb") as f:
    events = list(client.audio.transcriptions.create(model="demo-transcription", file=f, stream=True))
check(events[-1].type == "transcript.text.done" and "greeting.wav" in events[-1].text, f"events: {events}")
check("".join(e.delta for e in events[:-1]) == events[-1].text, "the deltas make the text")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    with open(wav_path, "rb") as f:
        english = client.audio.translations.create(model="demo-transcription", file=f, response_format="text")
check(isinstance(english, str) and "2 seconds" in english, f"a translation as text: {english!r}")
try:
    with open(wav_path, "rb") as f:
        client.audio.transcriptions.create(model="demo", file=f)
    check(False, "a chat model must not transcribe")
except Exception as e:  # openai.BadRequestError
    check(getattr(e, "status_code", None) == 400, f"400 for a chat model: {e}")

# Speech, read as it arrives.
audio = bytearray()
pieces = 0
with client.audio.speech.with_streaming_response.create(
    model="demo-speech", voice="alloy", input="Hello from the gateway.", response_format="wav"
) as response:
    check(response.headers["content-type"] == "audio/wav", f"the upstream's type: {response.headers}")
    for piece in response.iter_bytes():
        audio.extend(piece)
        pieces += 1
with wave.open(io.BytesIO(bytes(audio))) as w:
    check(w.getframerate() == 24000 and w.getnframes() > 0, "a WAV the standard library reads")
check(pieces > 1, f"streamed in pieces: {pieces}")
whole = client.audio.speech.create(model="demo-speech", voice="alloy", input="hi", response_format="pcm")
check(len(whole.content) > 0, "pcm audio")

# An image edit: the PNG file uploaded, the first image model when none is named.
edited = client.images.edit(image=("photo.png", png, "image/png"), prompt="add a hat", n=1)
check(len(edited.data) == 1 and edited.data[0].b64_json, f"an edited image: {edited}")

print("all media checks passed")
