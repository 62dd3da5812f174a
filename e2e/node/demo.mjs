// A small demo client for `make demo`: drives a few sessions through rpcproxy
// with the official Node SDK, one turn each, and prints each session's id and
// reply. The model is the local stub (BYOK), so it runs offline.
//
//   node demo.mjs [proxy-addr [stub-url [sessions]]]
//
// or with PROXY_ADDR / STUB_URL / DEMO_SESSIONS in the environment
// (E2E_TARGET / E2E_STUB_URL work too). Exits non-zero on any failure.
import { CopilotClient, RuntimeConnection, approveAll } from "@github/copilot-sdk";

const [argAddr, argStub, argCount] = process.argv.slice(2);
const addr = argAddr || process.env.PROXY_ADDR || process.env.E2E_TARGET || "127.0.0.1:4321";
const stubUrl = argStub || process.env.STUB_URL || process.env.E2E_STUB_URL;
const count = Number(argCount || process.env.DEMO_SESSIONS || 6);
if (!stubUrl) {
  console.error("demo.mjs: need the model stub URL (argument 2, or STUB_URL)");
  process.exit(2);
}
if (!Number.isInteger(count) || count < 1 || count > 100) {
  console.error(`demo.mjs: session count ${argCount || process.env.DEMO_SESSIONS} is not between 1 and 100`);
  process.exit(2);
}

const deadline = setTimeout(() => {
  console.error("demo.mjs: gave up after 3 minutes");
  process.exit(3);
}, 180_000);
deadline.unref();

const provider = { type: "openai", baseUrl: stubUrl, apiKey: "demo-placeholder" };
const run = Date.now().toString(36);
const client = new CopilotClient({ connection: RuntimeConnection.forUri(addr) });
let failures = 0;
try {
  await client.start();
  console.log(`connected to ${addr}; ${count} sessions, one turn each:`);
  const results = await Promise.allSettled(
    Array.from({ length: count }, async (_, i) => {
      const sessionId = `demo-${run}-${i + 1}`;
      const session = await client.createSession({ sessionId, model: "stub-model", provider, onPermissionRequest: approveAll });
      const prompt = `hello from demo session ${i + 1}`;
      const reply = await session.sendAndWait({ prompt }, 90_000);
      const text = reply?.data?.content;
      if (text !== `reply #1: ${prompt}`) throw new Error(`unexpected reply ${JSON.stringify(text)}`);
      return { sessionId, text };
    }),
  );
  results.forEach((r, i) => {
    if (r.status === "fulfilled") {
      console.log(`  ${r.value.sessionId}  ${r.value.text}`);
    } else {
      failures++;
      console.log(`  demo-${run}-${i + 1}  FAILED: ${r.reason?.message ?? r.reason}`);
    }
  });
} catch (err) {
  failures++;
  console.error(`demo.mjs: ${err?.message ?? err}`);
} finally {
  const errors = await client.stop().catch((err) => [err]);
  if (errors.length) {
    failures++;
    console.error(`demo.mjs: stop: ${errors.map(String).join("; ")}`);
  }
}
if (failures) {
  console.error(`demo.mjs: ${failures} failure(s)`);
  process.exit(1);
}
console.log(`all ${count} sessions answered`);
