"""The official openai Python SDK against Switchyard: chat, stream with usage, tool calls,
embeddings with the SDK's default (base64) encoding, models, and error mapping.

Run by tests/gateway/dropin.rs with SWITCHYARD_BASE_URL and SWITCHYARD_API_KEY set.
"""

import os
import sys

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["SWITCHYARD_BASE_URL"], api_key=os.environ["SWITCHYARD_API_KEY"], max_retries=0)


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
check(reply.choices[0].message.content == "Hello from a", f"chat content: {reply}")
check(reply.usage.total_tokens == 29, f"chat usage: {reply.usage}")
check(reply._request_id is not None, "x-request-id reaches the SDK")

text, usage = "", None
for chunk in client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
):
    if chunk.usage:
        usage = chunk.usage.total_tokens
    for choice in chunk.choices:
        text += choice.delta.content or ""
check(text == "Hello from a", f"stream text: {text!r}")
check(usage == 60, f"stream usage: {usage}")

tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}], tools=tools)
call = reply.choices[0].message.tool_calls[0]
check(call.function.name == "get_weather" and call.function.arguments == '{"city":"Paris"}', f"tool call: {call}")

arguments = ""
for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}], tools=tools, stream=True):
    for choice in chunk.choices:
        for delta in choice.delta.tool_calls or []:
            arguments += delta.function.arguments or ""
check(arguments == '{"city":"Paris"}', f"streamed tool arguments: {arguments!r}")

# No encoding_format: the SDK asks for base64 and decodes it to floats itself.
embeddings = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
check(len(embeddings.data) == 2, f"embeddings: {embeddings}")
vector = embeddings.data[0].embedding
check(len(vector) == 3 and abs(vector[2] - 1.0) < 1e-6, f"decoded embedding: {vector}")

models = [m.id for m in client.models.list()]
check("gpt-4o-mini" in models, f"models: {models}")

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    check(False, "unknown model should raise")
except openai.NotFoundError as e:
    check(e.code == "model_not_found", f"404 code: {e.code}")

try:
    OpenAI(base_url=os.environ["SWITCHYARD_BASE_URL"], api_key="wrong", max_retries=0).models.list()
    check(False, "wrong key should raise")
except openai.AuthenticationError:
    pass

print("all openai-python checks passed")
