"""The Responses API through real Python clients: the official openai package
(`responses.create`, `responses.stream`, retrieve, input items, delete, a tool round trip
continued with `previous_response_id`, error mapping) and the OpenAI Agents SDK (an agent with
a function tool, `Runner.run` and `Runner.run_streamed`).

Run by tests/gateway/dropin.rs with SWITCHYARD_BASE_URL and SWITCHYARD_API_KEY set; the
upstream is the mock, which answers "Hello from a", or calls get_weather when offered tools.
"""

import asyncio
import os
import sys

import openai
from openai import AsyncOpenAI, OpenAI

BASE, KEY = os.environ["SWITCHYARD_BASE_URL"], os.environ["SWITCHYARD_API_KEY"]
client = OpenAI(base_url=BASE, api_key=KEY, max_retries=0)
MODEL = "gpt-4o-mini"
WEATHER = [{"type": "function", "name": "get_weather", "description": "Weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


# --- the openai package
response = client.responses.create(model=MODEL, input="hi", instructions="Be brief.")
check(response.output_text == "Hello from a", f"output_text: {response}")
check(response.status == "completed" and response.id.startswith("resp_"), f"status/id: {response}")
check(response.usage.input_tokens == 19 and response.usage.output_tokens == 10, f"usage: {response.usage}")

again = client.responses.retrieve(response.id)
check(again.id == response.id and again.output_text == "Hello from a", f"retrieve: {again}")
items = client.responses.input_items.list(response.id)
check(len(items.data) == 1 and items.data[0].content[0].text == "hi", f"input items: {items}")
client.responses.delete(response.id)
try:
    client.responses.retrieve(response.id)
    check(False, "a deleted response is gone")
except openai.NotFoundError:
    pass

with client.responses.stream(model=MODEL, input="hi") as stream:
    kinds = [event.type for event in stream]
    final = stream.get_final_response()
check(kinds[0] == "response.created" and kinds[-1] == "response.completed", f"stream events: {kinds}")
check("response.output_text.delta" in kinds, f"deltas: {kinds}")
check(final.output_text == "Hello from a", f"stream final: {final}")

events = list(client.responses.create(model=MODEL, input="hi", stream=True))
check([e.sequence_number for e in events] == list(range(len(events))), "sequence numbers count from 0")
check(events[-1].response.usage.output_tokens > 0, f"usage on completed: {events[-1]}")

first = client.responses.create(model=MODEL, input="Weather in Paris?", tools=WEATHER)
call = next(item for item in first.output if item.type == "function_call")
check(call.name == "get_weather" and '"Paris"' in call.arguments, f"tool call: {call}")
second = client.responses.create(
    model=MODEL, previous_response_id=first.id, tools=WEATHER,
    input=[{"type": "function_call_output", "call_id": call.call_id, "output": "22C"}],
)
check(second.output_text == "Hello from a", f"after the tool: {second}")

with client.responses.stream(model=MODEL, input="Weather in Paris?", tools=WEATHER) as stream:
    arguments = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
    final = stream.get_final_response()
check(arguments == '{"city":"Paris"}', f"streamed arguments: {arguments!r}")
check(final.output[0].type == "function_call", f"streamed call: {final}")

try:
    client.responses.create(model=MODEL, input="x", tools=[{"type": "web_search"}])
    check(False, "built-in tools are refused")
except openai.BadRequestError as e:
    check(e.param == "tools[0].type", f"param: {e.param}")
try:
    client.responses.create(model=MODEL, input="x", previous_response_id="resp_missing")
    check(False, "an unknown previous response is refused")
except openai.BadRequestError as e:
    check(e.code == "previous_response_not_found", f"code: {e.code}")

# --- the OpenAI Agents SDK (Responses by default)
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled  # noqa: E402

set_tracing_disabled(True)
calls = []


@function_tool
def get_weather(city: str) -> str:
    """Weather in a city."""
    calls.append(city)
    return f"22C in {city}"


agent = Agent(
    name="weather",
    instructions="Answer with the weather.",
    tools=[get_weather],
    model=OpenAIResponsesModel(model=MODEL, openai_client=AsyncOpenAI(base_url=BASE, api_key=KEY, max_retries=0)),
)


async def agents():
    result = await Runner.run(agent, "Weather in Paris?")
    check(result.final_output == "Hello from a", f"Runner.run: {result.final_output!r}")
    check(calls == ["Paris"], f"the tool ran once: {calls}")
    streamed = Runner.run_streamed(agent, "Weather in Paris?")
    kinds = [event.type async for event in streamed.stream_events()]
    check(streamed.final_output == "Hello from a", f"run_streamed: {streamed.final_output!r}")
    check(calls == ["Paris", "Paris"], f"the tool ran again: {calls}")
    check("raw_response_event" in kinds, f"stream events: {set(kinds)}")


asyncio.run(agents())
print("all responses checks passed")
