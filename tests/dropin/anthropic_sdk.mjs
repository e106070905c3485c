// Anthropic's Messages API through the official TypeScript SDK (@anthropic-ai/sdk, the one
// Claude Code is built on), unmodified but for its base URL: a streamed answer read with the
// SDK's strict accumulator, and a streamed tool call assembled from its input_json_delta events.
// Run by tests/gateway/dropin.rs with SWITCHYARD_BASE_URL (…/v1) and SWITCHYARD_API_KEY set.
import Anthropic from "@anthropic-ai/sdk";

const client = new Anthropic({
  baseURL: process.env.SWITCHYARD_BASE_URL.replace(/\/v1$/, ""),
  apiKey: process.env.SWITCHYARD_API_KEY,
  maxRetries: 0,
});
const model = "gpt-4o-mini";
function check(ok, what) {
  if (!ok) {
    console.error("FAILED: " + what);
    process.exit(1);
  }
}

const stream = client.messages.stream({ model, max_tokens: 64, messages: [{ role: "user", content: "Say hello." }] });
let text = "";
stream.on("text", (t) => (text += t));
const final = await stream.finalMessage();
check(text === "Hello from a", `streamed text: ${JSON.stringify(text)}`);
check(final.stop_reason === "end_turn" && final.usage.output_tokens === 16, `final: ${JSON.stringify(final)}`);

const tools = [{ name: "get_weather", description: "Weather in a city.",
  input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } }];
const called = await client.messages
  .stream({ model, max_tokens: 64, tools, messages: [{ role: "user", content: "Weather in Paris?" }] })
  .finalMessage();
const call = called.content.find((b) => b.type === "tool_use");
check(call && call.name === "get_weather" && call.input.city === "Paris", `tool call: ${JSON.stringify(called)}`);
check(called.stop_reason === "tool_use", `stop_reason: ${called.stop_reason}`);

try {
  await client.messages.create({ model: "no-such-model", max_tokens: 8, messages: [{ role: "user", content: "x" }] });
  check(false, "an unknown model is an error");
} catch (e) {
  check(e instanceof Anthropic.NotFoundError && e.error?.error?.type === "not_found_error", `error: ${e}`);
}
console.log("all anthropic-ts checks passed");
