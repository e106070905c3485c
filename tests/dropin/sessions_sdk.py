"""A 40-turn conversation through the official openai Python SDK on one Switchyard session:
each turn sends only its new message (`extra_body={"session_id": ...}`), alternating plain and
streamed turns, and reads the session back through the gateway's sessions API.

Run by tests/gateway/sessions.rs with SWITCHYARD_BASE_URL, SWITCHYARD_API_KEY and
SWITCHYARD_SESSION_ID set.
"""

import json
import os
import sys
import urllib.request

from openai import OpenAI

base_url = os.environ["SWITCHYARD_BASE_URL"]
api_key = os.environ["SWITCHYARD_API_KEY"]
session = os.environ["SWITCHYARD_SESSION_ID"]
client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0)


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


for turn in range(40):
    question = f"Turn {turn}: tell me about topic number {turn}, with its history, uses and open problems."
    if turn % 2 == 0:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": question}],
            extra_body={"session_id": session},
        )
        check(raw.headers.get("x-session-id") == session, f"turn {turn}: x-session-id {raw.headers}")
        reply = raw.parse()
        check(reply.choices[0].message.content == "Hello from a", f"turn {turn}: {reply}")
    else:
        text = ""
        for chunk in client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": question}],
            stream=True,
            extra_body={"session_id": session},
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
        check(text == "Hello from a", f"turn {turn}: streamed {text!r}")

request = urllib.request.Request(f"{base_url}/sessions/{session}", headers={"Authorization": f"Bearer {api_key}"})
info = json.load(urllib.request.urlopen(request))
check(info["compressions"] >= 1, f"the session was compressed: {info}")
check(info["summary"] is not None, f"a summary is kept: {info}")
print(json.dumps(info))
print("all session checks passed")
