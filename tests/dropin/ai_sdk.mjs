// The Vercel AI SDK against Switchyard: `openai(model)` is a Responses model, so generateText
// and streamText go to POST /v1/responses — plain text, then a tool loop (the model calls
// get_weather, the SDK runs it and sends the output back, the model answers).
//
// Run by tests/gateway/dropin.rs with SWITCHYARD_BASE_URL and SWITCHYARD_API_KEY set; the
// upstream is the mock, which answers "Hello from a", or calls get_weather when offered tools.

import { createOpenAI } from "@ai-sdk/openai";
import { generateText, isStepCount, streamText, tool } from "ai";
import { z } from "zod";

const openai = createOpenAI({
  baseURL: process.env.SWITCHYARD_BASE_URL,
  apiKey: process.env.SWITCHYARD_API_KEY,
});
const model = openai("gpt-4o-mini");

function check(condition, message) {
  if (!condition) {
    console.error(`FAILED: ${message}`);
    process.exit(1);
  }
}

const calls = [];
const tools = {
  get_weather: tool({
    description: "Weather in a city.",
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => {
      calls.push(city);
      return `22C in ${city}`;
    },
  }),
};

const plain = await generateText({ model, prompt: "hi" });
check(plain.text === "Hello from a", `generateText: ${JSON.stringify(plain.text)}`);
check(plain.usage.inputTokens === 19 && plain.usage.outputTokens === 10, `usage: ${JSON.stringify(plain.usage)}`);
check(plain.finishReason === "stop", `finish: ${plain.finishReason}`);

const looped = await generateText({ model, prompt: "Weather in Paris?", tools, stopWhen: isStepCount(3) });
check(looped.text === "Hello from a", `tool loop text: ${JSON.stringify(looped.text)}`);
check(looped.steps.length === 2, `steps: ${looped.steps.length}`);
check(JSON.stringify(calls) === '["Paris"]', `the tool ran once: ${calls}`);

const streamed = streamText({ model, prompt: "Weather in Paris?", tools, stopWhen: isStepCount(3) });
let text = "";
for await (const delta of streamed.textStream) text += delta;
check(text === "Hello from a", `streamText: ${JSON.stringify(text)}`);
check(JSON.stringify(calls) === '["Paris","Paris"]', `the tool ran again: ${calls}`);
const usage = await streamed.totalUsage;
check(usage.outputTokens > 0, `streamed usage: ${JSON.stringify(usage)}`);
check((await streamed.steps).length === 2, "two streamed steps");

console.log("all ai-sdk checks passed");
