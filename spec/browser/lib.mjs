// Shared pieces of the browser suite (spec/browser/): the demo hub as a child process,
// HTTP calls to it, bounded waits, checks, and the children to stop on exit.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const LUA = process.env.LUA || 'lua5.4';
export const WAIT_MS = 10000;   // longest wait for any one condition

// ---- children ------------------------------------------------------------------
const children = new Set();
export function killChildren() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try { process.kill(c.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  }
}
process.on('exit', killChildren);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { console.log(`browser: interrupted by ${sig}`); killChildren(); process.exit(1); });
}

// Spawns cmd (a list) in ROOT; the child is killed when this process ends.
export function run(cmd, opts = {}) {
  const c = spawn(cmd[0], cmd.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  c.log = '';
  c.stdout.on('data', (b) => { c.log += b; });
  c.stderr.on('data', (b) => { c.log += b; });
  children.add(c);
  c.on('exit', () => children.delete(c));
  return c;
}

// Stops a child with SIGTERM (SIGKILL after 3 s); resolves to its exit code or signal.
export async function stop(c) {
  if (!c || c.exitCode !== null || c.signalCode !== null) return null;
  const done = new Promise((r) => c.once('exit', (code, sig) => r(code ?? sig)));
  c.kill('SIGTERM');
  const t = setTimeout(() => { try { c.kill('SIGKILL'); } catch { /* gone */ } }, 3000);
  const code = await done;
  clearTimeout(t);
  return code;
}

// The demo hub (examples/hub/server.lua) on a free loopback port: {proc, url, port}.
export function startHub(args) {
  const env = { ...process.env, LUA_PATH: 'lua/?.lua;lua/?/init.lua;;', LUA_CPATH: 'build/lua5.4/?.so;;' };
  const cmd = process.env.SSE_HUB_CMD ? process.env.SSE_HUB_CMD.split(/\s+/).filter(Boolean)
                                      : [LUA, 'examples/hub/server.lua'];
  const proc = run([...cmd, '--host', '127.0.0.1', '--port', '0', ...args], { env });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hub did not print its address within 10 s:\n${proc.log}`)), 10000);
    proc.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start hub: ${e.message}`)); });
    proc.on('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`hub exited early (${code ?? sig}):\n${proc.log}`)); });
    proc.stdout.on('data', () => {
      const m = /sse hub listening on (http:\/\/127\.0\.0\.1:(\d+)\/)/.exec(proc.log);
      if (m) { clearTimeout(timer); resolve({ proc, url: m[1], port: Number(m[2]) }); }
    });
  });
}

// ---- checks and waits ----------------------------------------------------------------
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function check(cond, msg) { if (!cond) throw new Error(typeof msg === 'function' ? msg() : msg); }

export function eq(actual, expected, what) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e?.slice(0, 600)}, got ${a?.slice(0, 600)}`);
}

// Polls fn until it returns a truthy value; fails with describe()'s view of the state.
export async function until(fn, what, describe, ms = WAIT_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) {
      const seen = describe ? await describe() : '';
      throw new Error(`timed out after ${ms} ms waiting for ${what}${seen ? `; seen: ${seen}` : ''}`);
    }
    await sleep(25);
  }
}

// ---- HTTP ----------------------------------------------------------------------------
// method, base + p, a JSON body; token (default none) as a bearer token.
export async function http(base, method, p, body, token) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(base + p, { method, headers, body: payload });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, type: res.headers.get('content-type') || '', text, json };
}
