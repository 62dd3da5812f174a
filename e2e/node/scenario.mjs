// End-to-end scenarios for rpcproxy with the official Node SDK. Run by the Go
// test TestNodeSDKScenarios (e2e/nodesdk_test.go), which starts the model stub,
// the CLI servers and the proxy and passes them in the environment:
//
//   E2E_TARGET         host:port the SDK connects to (rpcproxy, or a CLI server in direct mode)
//   E2E_STUB_URL       the model stub's base URL (BYOK provider baseUrl)
//   E2E_BACKENDS       comma-separated CLI server addresses, in order
//   E2E_BACKEND_HOMES  comma-separated COPILOT_HOME of each, same order
//   E2E_PROXY_LOG      rpcproxy's log file (absent in direct mode)
//   E2E_DIRECT         "1" when there is no proxy
//
// Prints one "ok"/"not ok" line per scenario and a closing "N passed, M failed";
// exits non-zero when any check fails.
import fs from "node:fs";
import path from "node:path";
import { CopilotClient, RuntimeConnection, defineTool, approveAll } from "@github/copilot-sdk";

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) {
    console.error(`scenario.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
};
const target = env("E2E_TARGET");
const stubUrl = env("E2E_STUB_URL");
const backends = env("E2E_BACKENDS").split(",").filter(Boolean);
const homes = env("E2E_BACKEND_HOMES").split(",").filter(Boolean);
const proxyLog = process.env.E2E_PROXY_LOG || "";
const direct = process.env.E2E_DIRECT === "1";
if (backends.length !== homes.length || backends.length === 0) {
  console.error("scenario.mjs: E2E_BACKENDS and E2E_BACKEND_HOMES must list the same servers");
  process.exit(2);
}

const TURN_MS = 90_000;
const STEP_MS = 180_000;
// The whole run is bounded: a hung proxy must not hang the test.
const watchdog = setTimeout(() => {
  console.error("scenario.mjs: overall deadline passed");
  process.exit(3);
}, 8 * 60_000);
watchdog.unref();

const provider = { type: "openai", baseUrl: stubUrl, apiKey: "e2e-placeholder" };
const clients = [];

class CheckError extends Error {}
function check(cond, msg) {
  if (!cond) throw new CheckError(msg);
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function newClient(addr = target) {
  const client = new CopilotClient({ connection: RuntimeConnection.forUri(addr) });
  await withTimeout(client.start(), 30_000, `client start against ${addr}`);
  clients.push(client);
  return client;
}

async function stopClient(client) {
  const i = clients.indexOf(client);
  if (i >= 0) clients.splice(i, 1);
  const errors = await withTimeout(client.stop(), 20_000, "client stop").catch(async (err) => {
    await client.forceStop();
    return [err];
  });
  check(errors.length === 0, `client stop: ${errors.map(String).join("; ")}`);
}

function sessionConfig(sessionId, tools = []) {
  return { sessionId, model: "stub-model", provider, tools, onPermissionRequest: approveAll };
}

async function createSession(client, id, tools) {
  const s = await withTimeout(client.createSession(sessionConfig(id, tools)), 30_000, `session.create ${id}`);
  check(s.sessionId === id, `session.create ${id}: got id ${s.sessionId}`);
  return s;
}

async function turn(session, prompt) {
  const ev = await session.sendAndWait({ prompt }, TURN_MS);
  check(ev, `session ${session.sessionId}: turn "${prompt}" ended without an assistant message`);
  return ev.data.content;
}

async function expectTurn(session, prompt, want) {
  const got = await turn(session, prompt);
  check(got === want, `session ${session.sessionId}: reply to "${prompt}" = ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

// The backends whose COPILOT_HOME holds session id.
function homesOf(id) {
  return backends.filter((_, i) => fs.existsSync(path.join(homes[i], "session-state", id)));
}

// Checks that session id lives on exactly one backend (and that the proxy
// logged placing it there) and returns that backend's address.
function placement(id) {
  const found = homesOf(id);
  check(found.length === 1, `session ${id} is in the session-state of ${found.length} backends: ${found.join(", ")}`);
  if (proxyLog) {
    const placed = new Set();
    for (const line of fs.readFileSync(proxyLog, "utf8").split("\n")) {
      if (!line.includes("session placed")) continue;
      const s = /\bsession="?([^\s"]+)/.exec(line);
      const b = /\bbackend="?([^\s"]+)/.exec(line);
      if (s && b && s[1] === id) placed.add(b[1]);
    }
    check(placed.size > 0, `rpcproxy logged no "session placed" line for ${id} (it is on ${found[0]})`);
    check(placed.size === 1 && placed.has(found[0]), `rpcproxy logged ${id} placed on ${[...placed]}, but its state is on ${found[0]}`);
  }
  return found[0];
}

async function listById(client) {
  const list = await withTimeout(client.listSessions(), 30_000, "session.list");
  const byId = new Map();
  for (const m of list) {
    check(!byId.has(m.sessionId), `session.list has ${m.sessionId} twice`);
    byId.set(m.sessionId, m);
  }
  return byId;
}

const scenarios = [];
const scenario = (name, fn) => scenarios.push({ name, fn });

scenario("sessions across backends", async () => {
  const client = await newClient();
  const n = 8;
  const ids = Array.from({ length: n }, (_, i) => `node-spread-${i}`);
  await Promise.all(
    ids.map(async (id) => {
      const s = await createSession(client, id);
      await expectTurn(s, `hello from ${id}`, `reply #1: hello from ${id}`);
    }),
  );
  const per = new Map();
  for (const id of ids) {
    const b = placement(id);
    per.set(b, [...(per.get(b) ?? []), id]);
  }
  console.log(`# placement: ${JSON.stringify(Object.fromEntries(per))}`);
  check(direct || per.size >= 2, `all ${n} sessions landed on one backend`);
  await stopClient(client);
});

scenario("tool call round trip", async () => {
  const client = await newClient();
  const calls = new Map();
  const lookup = defineTool("node_lookup", {
    description: "Looks a key up (e2e test tool).",
    parameters: { type: "object", properties: { key: { type: "string" } }, required: ["key"] },
    handler: async (args, invocation) => {
      calls.set(invocation.sessionId, [...(calls.get(invocation.sessionId) ?? []), args.key]);
      return `VALUE-${String(args.key).toUpperCase()}-${invocation.sessionId}`;
    },
  });
  const ids = [0, 1, 2].map((i) => `node-tool-${i}`);
  await Promise.all(
    ids.map(async (id, i) => {
      const s = await createSession(client, id, [lookup]);
      await expectTurn(s, `call tool node_lookup with key ${i}`, `reply #1: tool node_lookup returned: VALUE-KEY ${i}-${id}`);
    }),
  );
  ids.forEach((id, i) => {
    const seen = calls.get(id) ?? [];
    check(seen.length === 1 && seen[0] === `key ${i}`, `tool handler calls for ${id}: ${JSON.stringify(seen)}`);
    placement(id);
  });
  await stopClient(client);
});

scenario("list and last session id merge every backend", async () => {
  const client = await newClient();
  const ids = [0, 1, 2, 3].map((i) => `node-list-${i}`);
  const sessions = await Promise.all(ids.map((id) => createSession(client, id)));
  await Promise.all(sessions.map((s) => expectTurn(s, `list me ${s.sessionId}`, `reply #1: list me ${s.sessionId}`)));

  const directLists = new Map();
  const owner = new Map();
  for (const addr of backends) {
    const bc = await newClient(addr);
    for (const [id, m] of await listById(bc)) {
      check(!owner.has(id), `session ${id} listed by both ${owner.get(id)} and ${addr}`);
      owner.set(id, addr);
      directLists.set(id, m);
    }
    await stopClient(bc);
  }
  const proxied = await listById(client);
  for (const [id, m] of directLists) {
    const pm = proxied.get(id);
    check(pm, `session.list through ${target} lacks ${id} (listed by ${owner.get(id)})`);
    check(
      new Date(pm.modifiedTime).getTime() === new Date(m.modifiedTime).getTime(),
      `session.list entry for ${id}: modifiedTime ${pm.modifiedTime} via proxy, ${m.modifiedTime} direct`,
    );
  }
  for (const id of proxied.keys()) check(directLists.has(id), `session.list through ${target} has ${id}, which no backend lists`);
  for (const id of ids) check(proxied.has(id), `session.list lacks ${id}`);
  console.log(`# session.list: ${proxied.size} sessions from ${new Set(owner.values()).size} backends`);

  const latest = sessions[2];
  await expectTurn(latest, "once more", "reply #2: once more");
  const last = await withTimeout(client.getLastSessionId(), 30_000, "session.getLastId");
  check(last === latest.sessionId, `session.getLastId = ${last}, want ${latest.sessionId}`);
  await stopClient(client);
});

scenario("resume on a second connection keeps backend and history", async () => {
  const id = "node-resume-0";
  const lookup = defineTool("node_lookup", {
    description: "Looks a key up (e2e test tool).",
    parameters: { type: "object", properties: { key: { type: "string" } }, required: ["key"] },
    handler: async (args) => `VALUE-${String(args.key).toUpperCase()}`,
  });
  const first = await newClient();
  const s1 = await createSession(first, id, [lookup]);
  await expectTurn(s1, "first turn", "reply #1: first turn");
  const home = placement(id);
  await stopClient(first);

  const second = await newClient();
  const s2 = await withTimeout(
    second.resumeSession(id, { provider, tools: [lookup], onPermissionRequest: approveAll }),
    30_000,
    `session.resume ${id}`,
  );
  await expectTurn(s2, "second turn", "reply #2: second turn");
  await expectTurn(s2, "call tool node_lookup with resumed", "reply #3: tool node_lookup returned: VALUE-RESUMED");
  const events = await withTimeout(s2.getEvents(), 30_000, "session.getMessages");
  const user = events.filter((e) => e.type === "user.message").map((e) => e.data.content);
  const assistant = events.filter((e) => e.type === "assistant.message").map((e) => e.data.content);
  check(
    user.includes("first turn") && user.includes("second turn") && assistant.includes("reply #1: first turn"),
    `session.getMessages after resume: user ${JSON.stringify(user)}, assistant ${JSON.stringify(assistant)}`,
  );
  check(placement(id) === home, `resumed session moved from ${home}`);
  await stopClient(second);
});

scenario("delete removes the session", async () => {
  const client = await newClient();
  const doomed = await createSession(client, "node-delete-0");
  const kept = await createSession(client, "node-delete-keep");
  await expectTurn(doomed, "soon gone", "reply #1: soon gone");
  await expectTurn(kept, "still here", "reply #1: still here");
  const home = placement(doomed.sessionId);
  check((await listById(client)).has(doomed.sessionId), "session.list lacks the session before delete");
  await withTimeout(doomed.disconnect(), 30_000, "session.detach");
  await withTimeout(client.deleteSession(doomed.sessionId), 30_000, "session.delete");
  const after = await listById(client);
  check(!after.has(doomed.sessionId), `session.list still has ${doomed.sessionId} after delete`);
  check(after.has(kept.sessionId), `session.list lost ${kept.sessionId}`);
  check(homesOf(doomed.sessionId).length === 0, `${home} still has ${doomed.sessionId} on disk after delete`);
  await stopClient(client);
});

let passed = 0;
let failed = 0;
for (const { name, fn } of scenarios) {
  const t0 = Date.now();
  try {
    await withTimeout(fn(), STEP_MS, name);
    passed++;
    console.log(`ok - ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    failed++;
    console.log(`not ok - ${name}: ${err instanceof CheckError ? err.message : err?.stack ?? err}`);
  }
  // A failed scenario may leave clients connected: close them before the next.
  for (const c of clients.splice(0)) await c.forceStop().catch(() => {});
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
