// Compressed streams in a browser (issue 14): the demo hub with --compress,
// Debian Chromium's EventSource (which sends Accept-Encoding: gzip) gets a
// gzip-encoded stream and still receives each event before the next one is
// published. Prints "browser-compress: N passed, M failed".
// Environment: CHROMIUM (default /usr/bin/chromium), LUA (default lua5.4).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LUA = process.env.LUA || 'lua5.4';
const EVENTS = 5;

let hub = null;
let hubLog = '';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function killHub() {
  if (hub && hub.exitCode === null && hub.signalCode === null) {
    try { process.kill(hub.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}
process.on('exit', killHub);

function startHub() {
  const env = { ...process.env, LUA_PATH: 'lua/?.lua;lua/?/init.lua;;', LUA_CPATH: 'build/lua5.4/?.so;;' };
  hub = spawn(LUA, ['examples/hub/server.lua', '--port', '0', '--compress'], { cwd: ROOT, env,
    stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hub did not start:\n${hubLog}`)), 10000);
    hub.stderr.on('data', (b) => { hubLog += b; });
    hub.stdout.on('data', (b) => {
      hubLog += b;
      const m = /sse hub listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(hubLog);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    hub.on('exit', (c) => { clearTimeout(timer); reject(new Error(`hub exited (${c}):\n${hubLog}`)); });
  });
}

async function until(fn, ms) {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await fn()) return true;
    await sleep(25);
  }
  return false;
}

async function main() {
  let passed = 0, failed = 0, context = null, userDir = null;
  const ok = (name) => { passed++; console.log(`ok - ${name}`); };
  const bad = (name, why) => { failed++; console.log(`not ok - ${name}\n  ${why}`); };
  const watchdog = setTimeout(() => { console.log('not ok - timed out'); killHub(); process.exit(1); }, 45000);
  try {
    const base = await startHub();
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sse-browser-gz-'));
    context = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM, headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = context.pages()[0] || await context.newPage();
    const seen = {};
    page.on('response', async (r) => {
      if (r.url().includes('/events?topic=gz')) {
        seen.encoding = (await r.allHeaders())['content-encoding'];
        seen.accept = (await r.request().allHeaders())['accept-encoding']; // added by the network stack
      }
    });
    await page.goto(base + '/catalogue'); // same origin, a page with no stream of its own
    await page.evaluate(() => {
      window.got = [];
      window.opened = false;
      const es = new EventSource('/events?topic=gz');
      es.onopen = () => { window.opened = true; };
      es.addEventListener('tick', (e) => window.got.push({ id: e.lastEventId, data: JSON.parse(e.data) }));
    });
    if (!await until(() => page.evaluate(() => window.opened), 10000)) throw new Error('EventSource did not open');
    await sleep(200);
    let alone = true;
    const ids = [];
    for (let n = 1; n <= EVENTS; n++) {
      const res = await fetch(base + '/publish', { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ topic: 'gz', event: 'tick', data: { n, text: `hello ${n} `.repeat(8) } }) });
      ids.push((await res.json()).id);
      const arrived = await until(() => page.evaluate((k) => window.got.length >= k, n), 3000);
      const count = await page.evaluate(() => window.got.length);
      if (!arrived || count !== n) { alone = false; bad(`event ${n} arrives before the next is published`, `got ${count}`); break; }
      await sleep(150);
    }
    if (alone) ok(`${EVENTS} events arrive one by one through the gzip stream`);
    if (seen.encoding === 'gzip' && /gzip/.test(seen.accept || '')) ok('Chromium asked for gzip and got Content-Encoding: gzip');
    else bad('the stream is gzip-encoded', `accept-encoding ${seen.accept}, content-encoding ${seen.encoding}`);
    const got = await page.evaluate(() => window.got);
    const same = got.length === EVENTS && got.every((e, i) => e.id === ids[i] && e.data.n === i + 1);
    if (same) ok('ids and data are what was published'); else bad('ids and data', JSON.stringify(got).slice(0, 400));
  } catch (e) {
    bad('setup', e.message);
  }
  try { if (context) await context.close(); } catch { /* ignore */ }
  killHub();
  if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  if (failed && hubLog) console.log(`--- hub output ---\n${hubLog.slice(-2000)}`);
  clearTimeout(watchdog);
  console.log(`browser-compress: ${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

main();
