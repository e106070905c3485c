"""The official openai Python SDK's moderations and images calls against Switchyard's offline
default (its in-process mock serves demo-moderation and demo-image), unmodified except the base
URL. Run by tests/gateway/dropin.rs with SWITCHYARD_BASE_URL and SWITCHYARD_API_KEY set.
(Audio transcription and speech come with the rest of #21.)"""

import base64
import os
import sys

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

print("all media checks passed")
