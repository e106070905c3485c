"""Anthropic's Messages API through the official anthropic Python package, unmodified but for
its base URL: create, stream (the SDK's strict event accumulator), a tool loop, count_tokens,
errors in Anthropic's envelope, and the model list.

Run by tests/gateway/dropin.rs with SWITCHYARD_BASE_URL (…/v1) and SWITCHYARD_API_KEY set; the
upstream is the OpenAI-kind mock, which answers "Hello from a", or calls get_weather when offered
tools.
"""

import os
import sys

import anthropic

BASE = os.environ["SWITCHYARD_BASE_URL"].removesuffix("/v1")
KEY = os.environ["SWITCHYARD_API_KEY"]
# anthropic-python 2.x sends the key as `Authorization: Bearer` (PROTOCOLS.md §12.9a); an
# explicit auth_token does the same on any version.
client = anthropic.Anthropic(base_url=BASE, api_key=KEY, max_retries=0)
MODEL = "gpt-4o-mini"
WEATHER = [{"name": "get_weather", "description": "Weather in a city.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


message = client.messages.create(model=MODEL, max_tokens=64,
                                 messages=[{"role": "user", "content": "Say hello."}])
check(message.type == "message" and message.role == "assistant", f"a message: {message}")
check(message.model == MODEL, f"the model asked for: {message.model}")
check(message.content[0].type == "text" and message.content[0].text == "Hello from a", f"text: {message.content}")
check(message.stop_reason == "end_turn", f"stop_reason: {message.stop_reason}")
check(message.usage.input_tokens == 19 and message.usage.output_tokens == 10, f"usage: {message.usage}")

# The beta surface Claude Code uses: POST /v1/messages?beta=true.
beta = client.beta.messages.create(model=MODEL, max_tokens=64, betas=["interleaved-thinking-2025-05-14"],
                                   messages=[{"role": "user", "content": "Say hello."}])
check(beta.content[0].text == "Hello from a", f"beta: {beta}")

with client.messages.stream(model=MODEL, max_tokens=64,
                            system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
                            messages=[{"role": "user", "content": "Say hello."}]) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
check(text == "Hello from a", f"streamed text: {text!r}")
check(final.stop_reason == "end_turn" and final.usage.output_tokens == 16, f"final: {final}")

# A tool loop: the model calls get_weather, the client answers with a tool_result.
turns = [{"role": "user", "content": "Weather in Paris?"}]
first = client.messages.create(model=MODEL, max_tokens=64, tools=WEATHER, messages=turns)
check(first.stop_reason == "tool_use", f"tool_use: {first}")
call = next(b for b in first.content if b.type == "tool_use")
check(call.name == "get_weather" and call.input == {"city": "Paris"}, f"call: {call}")
turns += [{"role": "assistant", "content": first.content},
          {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 21°C"}]}]
answer = client.messages.create(model=MODEL, max_tokens=64, tools=WEATHER, messages=turns)
check(answer.stop_reason == "end_turn" and answer.content[0].text == "Hello from a", f"after the tool: {answer}")
# The same call streamed: the SDK assembles the tool's input from its input_json_delta events.
with client.messages.stream(model=MODEL, max_tokens=64, tools=WEATHER, messages=turns[:1]) as stream:
    streamed = stream.get_final_message()
tool = next(b for b in streamed.content if b.type == "tool_use")
check(tool.input == {"city": "Paris"} and streamed.stop_reason == "tool_use", f"streamed tool: {streamed}")

counted = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Hello, world"}])
check(counted.input_tokens > 0, f"count_tokens: {counted}")

try:
    client.messages.create(model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    check(False, "an unknown model is an error")
except anthropic.NotFoundError as e:
    check(e.body["error"]["type"] == "not_found_error", f"envelope: {e.body}")
    check(e.request_id is not None, "request-id header")

try:
    anthropic.Anthropic(base_url=BASE, api_key="sk-wrong", max_retries=0).messages.create(
        model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}])
    check(False, "a wrong key is an error")
except anthropic.AuthenticationError as e:
    check(e.body["error"]["type"] == "authentication_error", f"envelope: {e.body}")

models = client.models.list()
check(any(m.id == MODEL for m in models.data), f"models: {models}")
print("all anthropic checks passed")
