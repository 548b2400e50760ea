// Shared pieces of the interop suite: a tiny test runner with "known" tags, bounded
// waits, the demo hub as a child process, publishing over HTTP, headless Chromium.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const LUA = process.env.LUA || 'lua5.4';
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const TOKEN = 'interop-token';
// INTEROP_STRICT=1: a test tagged known fails the run like any other.
const STRICT = process.env.INTEROP_STRICT === '1';

// ---- bytes -------------------------------------------------------------------
export const unhex = (h) => Buffer.from(h, 'hex');
export const hexOf = (s) => Buffer.from(s, 'utf8').toString('hex');
// an event from gen.lua (hex fields) as readable text -- for messages and for values
// known to be valid UTF-8 only: toString replaces bad bytes, which would hide a bug
export const evText = (e) => ({ type: unhex(e.type).toString('utf8'), data: unhex(e.data).toString('utf8'),
                                id: unhex(e.id).toString('utf8') });
// hex fields in one key order, for exact comparison of bytes
export const evHex = (e) => ({ type: e.type, data: e.data, id: e.id });
// an event a JS client produced (strings) with hex fields
export const jsHex = (e) => ({ type: hexOf(e.type), data: hexOf(e.data), id: hexOf(e.id) });

// ---- tests -------------------------------------------------------------------
const results = { passed: 0, failed: 0, known: 0, fixed: [] };

// Run one check. opts.known = why it is expected to fail today (an open issue): a
// failure then counts as known, not as a failure (unless INTEROP_STRICT=1), and a
// pass says the tag can go.
export async function check(name, fn, opts = {}) {
  const t0 = Date.now();
  try {
    await fn();
    results.passed++;
    console.log(`ok    ${name} (${Date.now() - t0} ms)`);
    if (opts.known) {
      results.fixed.push(name);
      console.log(`      passes now: remove its known tag (${opts.known})`);
    }
  } catch (e) {
    const msg = String(e && e.stack || e).split('\n').slice(0, 12).join('\n      ');
    if (opts.known && !STRICT) {
      results.known++;
      console.log(`KNOWN ${name}: ${opts.known}\n      ${msg}`);
    } else {
      results.failed++;
      console.log(`FAIL  ${name}\n      ${msg}`);
    }
  }
}
export const summary = () => results;

// Compare two lists of events and say where they first differ.
export function sameEvents(got, want, what) {
  if (JSON.stringify(got) === JSON.stringify(want)) return;
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) {
    if (JSON.stringify(got[i]) !== JSON.stringify(want[i])) {
      assert.fail(`${what}: ${got.length} events, want ${want.length}; first difference at #${i + 1}:\n` +
                  `  got  ${JSON.stringify(got[i])?.slice(0, 300)}\n  want ${JSON.stringify(want[i])?.slice(0, 300)}`);
    }
  }
}

// ---- waiting -------------------------------------------------------------------
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Poll cond() every 10 ms until it holds; throws after ms with what().
export async function waitFor(cond, ms, what) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await sleep(10);
  }
}

// ---- child processes -------------------------------------------------------------
const children = new Set();
export function killChildren() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) { try { process.kill(c.group ? -c.pid : c.pid, 'SIGKILL'); } catch { /* gone */ } }
  }
}
process.on('exit', killChildren);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { console.log(`interop: interrupted by ${sig}`); killChildren(); process.exit(1); });
}

// A hub as a child process: resolves to { url, kind, stop(), log() } once it printed
// the address `ready` matches; stop() sends SIGTERM (to the process group when the
// child leads one), then SIGKILL after 3 s.
function supervise(hub, kind, ready) {
  children.add(hub);
  let log = '';
  const exited = new Promise((r) => hub.on('exit', r));
  const signal = (sig) => { try { process.kill(hub.group ? -hub.pid : hub.pid, sig); } catch { /* gone */ } };
  const stop = async () => {
    if (hub.exitCode === null && hub.signalCode === null) {
      signal('SIGTERM');
      const t = setTimeout(() => signal('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    children.delete(hub);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { stop(); reject(new Error(`${kind} did not print its address within 15 s:\n${log}`)); }, 15000);
    hub.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start the ${kind}: ${e.message}`)); });
    hub.on('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`${kind} exited (${code ?? sig}):\n${log}`)); });
    hub.stderr.on('data', (b) => { log += b; });
    hub.stdout.on('data', (b) => {
      log += b;
      const m = ready.exec(log);
      if (m) { clearTimeout(timer); resolve({ url: m[1], kind, stop, log: () => log }); }
    });
  });
}

// Start the demo hub (examples/hub/server.lua) on a free loopback port.
export function startHub(extra = []) {
  const env = { ...process.env, LUA_PATH: 'lua/?.lua;lua/?/init.lua;;', LUA_CPATH: `${process.env.SSE_BUILD || 'build/lua5.4'}/?.so;;` };
  const args = ['examples/hub/server.lua', '--host', '127.0.0.1', '--port', '0', '--token', TOKEN, ...extra];
  const hub = spawn(LUA, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  return supervise(hub, 'the demo hub', /sse hub listening on (http:\/\/127\.0\.0\.1:\d+\/)/);
}

// A loopback port nobody listens on now.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

// Start the demo hub in nginx (examples/openresty/run.sh: `make run-openresty`) with two
// workers on a free loopback port: the same endpoints as the luv hub; a stream and the
// publish that feeds it may be served by different workers. Needs nginx with
// lua-nginx-module and the LuaJIT build (SSE_NGX_BUILD, default build/luajit).
export async function startNgxHub(extra = []) {
  const port = await freePort();
  const env = { ...process.env, SSE_HUB_TOKEN: TOKEN,
                SSE_NGX_BUILD: process.env.SSE_NGX_BUILD || path.join(ROOT, 'build', 'luajit') };
  const hub = spawn('bash', ['examples/openresty/run.sh', '127.0.0.1', String(port), '2', ...extra],
                    { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  hub.group = true; // bash and nginx: stopped together
  return supervise(hub, 'the nginx demo hub', /sse hub \(nginx, \d+ workers\) listening on (http:\/\/127\.0\.0\.1:\d+\/)/);
}

// POST JSON to the hub with the token; resolves to the parsed answer (throws on non-2xx).
export async function post(hubUrl, pathname, body) {
  const res = await fetch(new URL(pathname, hubUrl), {
    method: 'POST', signal: AbortSignal.timeout(5000),
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify(body ?? {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST ${pathname} -> ${res.status} ${text}`);
  return JSON.parse(text);
}

// ---- Chromium ----------------------------------------------------------------------
// Launch Debian's chromium (never a downloaded one) with a fresh profile.
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sse-interop-'));
  const context = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM, headless: true, timeout: 45000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    context,
    async close() {
      await Promise.race([context.close(), sleep(5000)]);
      fs.rmSync(userDir, { recursive: true, force: true });
    },
  };
}
