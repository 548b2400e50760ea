// Browser test of the demo hub's dashboard (examples/hub/dashboard.html) in headless
// Debian Chromium driven by playwright-core. Starts the real hub on a free loopback port,
// publishes over HTTP and through the page's form, drops every stream from the server side
// and checks the page resumes with no event lost or repeated, then forces a replay-window
// gap and checks the gap event is shown. Prints "browser: N passed, M failed".
//
// Environment: CHROMIUM (default /usr/bin/chromium), LUA (default lua5.4),
// SSE_HUB_CMD (replace "$LUA examples/hub/server.lua", e.g. a stand-in hub),
// SCREENSHOT (default /tmp/dashboard.png), BROWSER_TEST_TIMEOUT_MS (default 55000).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LUA = process.env.LUA || 'lua5.4';
const SCREENSHOT = process.env.SCREENSHOT || '/tmp/dashboard.png';
const DEADLINE_MS = Number(process.env.BROWSER_TEST_TIMEOUT_MS || 55000);
const TOKEN = 'browser-test-token';
const REPLAY = 16;           // --replay-events: small, so the gap step can overflow it
const WAIT_MS = 10000;       // longest wait for any one condition

let hub = null;              // the hub child process
let context = null;          // the browser context
let userDir = null;
let hubLog = '';

// ---- process handling ------------------------------------------------------
function killHub() {
  if (hub && hub.exitCode === null && hub.signalCode === null) {
    try { process.kill(hub.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killHub);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { console.log(`browser: interrupted by ${sig}`); killHub(); process.exit(1); });
}

function startHub() {
  const env = { ...process.env, LUA_PATH: 'lua/?.lua;lua/?/init.lua;;', LUA_CPATH: 'build/lua5.4/?.so;;' };
  const args = ['--host', '127.0.0.1', '--port', '0', '--token', TOKEN, '--replay-events', String(REPLAY)];
  const cmd = process.env.SSE_HUB_CMD ? process.env.SSE_HUB_CMD.split(/\s+/).filter(Boolean)
                                      : [LUA, 'examples/hub/server.lua'];
  hub = spawn(cmd[0], [...cmd.slice(1), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hub did not print its address within 10 s:\n${hubLog}`)), 10000);
    hub.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start hub: ${e.message}`)); });
    hub.on('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`hub exited early (${code ?? sig}):\n${hubLog}`)); });
    hub.stderr.on('data', (b) => { hubLog += b; });
    hub.stdout.on('data', (b) => {
      hubLog += b;
      const m = /sse hub listening on (http:\/\/127\.0\.0\.1:(\d+)\/)/.exec(hubLog);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
  });
}

async function stopHub() {
  if (!hub || hub.exitCode !== null || hub.signalCode !== null) return null;
  const done = new Promise((r) => hub.once('exit', (code, sig) => r(code ?? sig)));
  hub.kill('SIGTERM');
  const t = setTimeout(killHub, 3000);
  const code = await done;
  clearTimeout(t);
  return code;
}

// ---- helpers -----------------------------------------------------------------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function check(cond, msg) { if (!cond) throw new Error(msg); }

// Deep equality; object keys in any order (a Lua table's JSON has no fixed order).
function canon(v) {
  if (Array.isArray(v)) return v.map(canon);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]));
  }
  return v;
}
function eq(actual, expected, what) {
  const a = JSON.stringify(canon(actual)), e = JSON.stringify(canon(expected));
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

// Polls fn until it returns a truthy value; fails with describe()'s view of the state.
async function until(fn, what, describe, ms = WAIT_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) {
      const seen = describe ? await describe() : '';
      throw new Error(`timed out after ${ms} ms waiting for ${what}${seen ? `; seen: ${seen}` : ''}`);
    }
    await sleep(50);
  }
}

let BASE = null;
let page = null;

async function http(method, p, body, { token = TOKEN, form = false } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = form ? 'application/x-www-form-urlencoded' : 'application/json';
    payload = form ? new URLSearchParams(body).toString() : JSON.stringify(body);
  }
  const res = await fetch(BASE + p, { method, headers, body: payload });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, type: res.headers.get('content-type') || '', text, json };
}

const published = { alpha: [], beta: [] };   // ids in publish order, per topic
const sent = new Map();                       // id -> {topic, type, data}

async function publish(topic, event, data, extra = {}) {
  const body = { topic, data, ...extra };
  if (event) body.event = event;
  const r = await http('POST', 'publish', body);
  check(r.status === 200 && r.json && typeof r.json.id === 'string' && r.json.id !== '',
        `publish to ${topic}: status ${r.status}, body ${r.text}`);
  eq(r.json.topic, topic, 'publish answer topic');
  const text = typeof data === 'string' ? data : null;   // non-strings: compared after JSON.parse
  published[topic]?.push(r.json.id);
  sent.set(r.json.id, { topic, type: event || 'message', data: text, value: data });
  return r.json.id;
}

// The rows of the event list in arrival order (the page shows newest first).
function rows() {
  return page.$$eval('#events tbody tr:not(.empty)', (trs) => trs.reverse().map((tr) => ({
    id: tr.dataset.id, topic: tr.dataset.topic, type: tr.dataset.type,
    data: tr.querySelector('td.data').title, cell: tr.querySelector('td.data').textContent,
    gap: tr.classList.contains('gap'),
  })));
}

const idsOf = (rs, topic) => rs.filter((r) => r.topic === topic && !r.gap).map((r) => r.id);
const text = (sel) => page.$eval(sel, (e) => e.textContent.trim());
const state = (topic) => text(`.conn-state[data-topic="${topic}"]`).catch(() => 'absent');
const reconnects = async (topic) => Number(await text(`.reconnects[data-topic="${topic}"]`));

async function connState() {
  const out = {};
  for (const t of ['alpha', 'beta']) out[t] = await state(t);
  return JSON.stringify(out);
}

async function bothOpen() {
  return (await state('alpha')) === 'open' && (await state('beta')) === 'open';
}

// Waits until the hub itself counts one subscriber on each topic (the page's two streams).
async function hubSubscribed() {
  let last = null;
  await until(async () => {
    last = (await http('GET', 'stats')).json;
    const count = (t) => ((last && last.top_topics) || []).find((e) => e.topic === t)?.subscribers;
    return count('alpha') === 1 && count('beta') === 1;
  }, 'the hub to count one subscriber on alpha and on beta', () => JSON.stringify(last && last.top_topics));
}

// Waits until every given id is on the page; returns the rows.
async function shown(ids) {
  let rs = [];
  await until(async () => {
    rs = await rows();
    const have = new Set(rs.map((r) => r.id));
    return ids.every((id) => have.has(id));
  }, `${ids.length} event(s) on the page`, () => `missing ${ids.filter((id) => !rs.some((r) => r.id === id)).join(',')}`);
  return rs;
}

function checkRow(r, id) {
  const s = sent.get(id);
  eq(r.topic, s.topic, `topic of ${id}`);
  eq(r.type, s.type, `type of ${id}`);
  if (s.data !== null) eq(r.data, s.data, `data of ${id}`);
  else eq(JSON.parse(r.data), s.value, `data of ${id} (as JSON)`);
  check(!r.gap, `row ${id} marked as a gap`);
}

// Every id the page shows for topic, in order, exactly once: equal to the expected list.
function exactlyOnce(rs, topic, expected, what) {
  const got = idsOf(rs, topic);
  const dups = got.filter((id, i) => got.indexOf(id) !== i);
  check(dups.length === 0, `${what}: ${topic} ids shown twice: ${dups.join(',')}`);
  eq(got, expected, `${what}: ${topic} ids in arrival order`);
}

// ---- the steps ---------------------------------------------------------------
const pageErrors = [];
let oldAlpha = null, oldBeta = null;

const steps = [
  ['GET / serves the dashboard as text/html', async () => {
    const r = await http('GET', '', undefined, { token: null });
    eq(r.status, 200, 'GET / status');
    check(/^text\/html/.test(r.type), `GET / content-type: ${r.type}`);
    check(r.text.includes('id="topics"') && r.text.includes('id="events"'), 'GET / body is not the dashboard');
    check(!/<(script|link)[^>]+(src|href)=["']?(https?:)?\/\//i.test(r.text), 'dashboard loads an external resource');
    await page.goto(BASE, { waitUntil: 'load' });
    eq(await page.title(), 'sse hub', 'page title');
    await until(async () => (await text('#hub-status')).startsWith('online'), 'the stats panel to reach the hub',
                () => text('#hub-status'));
    // the hub has a token: /stats is closed to a page that has not entered it
    eq((await http('GET', 'stats', undefined, { token: null })).status, 401, 'GET /stats without the token');
    check((await text('#hub-status')).includes('token'), `status before the token: ${await text('#hub-status')}`);
    await page.fill('#token', TOKEN);
    await until(async () => (await text('#hub-status')).startsWith('online \u00b7 up'), 'the stats with the token',
                () => text('#hub-status'));
  }],

  ['connect to alpha,beta: one open stream per topic', async () => {
    // Make the event types known to the hub first: the page listens to /stats event_types.
    for (const type of ['greeting', 'tick']) await publish('warmup', type, 'w');
    await page.fill('#topics', 'alpha, beta');
    await page.click('#connect');
    await until(bothOpen, 'alpha and beta streams to open', connState);
    await hubSubscribed();
    eq(await reconnects('alpha'), 0, 'alpha reconnections after connect');
    eq(await text('#stat-types').then((t) => ['greeting', 'tick'].every((x) => t.includes(x))), true,
       'greeting and tick among the listened types');
  }],

  ['events published over HTTP appear with their topic, type, id and data', async () => {
    const ids = [
      await publish('alpha', null, 'hello alpha', { retry: 300 }),
      await publish('beta', 'greeting', 'hi beta', { retry: 300 }),
      await publish('alpha', 'tick', { n: 1, list: [1, 2] }),
      await publish('beta', null, 'line one\nline two'),
      await publish('alpha', 'greeting', '<img src=x onerror="window.__xss=1">'),
    ];
    const rs = await shown(ids);
    for (const id of ids) checkRow(rs.find((r) => r.id === id), id);
    const xss = rs.find((r) => r.id === ids[4]);
    eq(xss.cell, '<img src=x onerror="window.__xss=1">', 'markup in data is shown as text');
    eq(await page.evaluate(() => window.__xss === undefined && !document.querySelector('#events img')), true,
       'markup in data is not interpreted');
    exactlyOnce(rs, 'alpha', published.alpha, 'after first publishes');
    exactlyOnce(rs, 'beta', published.beta, 'after first publishes');
    eq(await page.$eval('.last-id[data-topic="alpha"]', (e) => e.dataset.lastId), ids[4], 'alpha Last-Event-ID shown');
  }],

  ['the page form publishes (401 without the token, then the id it got)', async () => {
    await page.fill('#token', '');
    await page.fill('#pub-topic', 'beta');
    await page.fill('#pub-event', 'greeting');
    await page.fill('#pub-data', 'from the form');
    await page.click('#publish');
    await until(async () => (await page.getAttribute('#pub-result', 'data-status')) === '401',
                'the form to report 401', () => text('#pub-result'));
    check((await text('#pub-result')).startsWith('error 401'), 'form shows the 401 error');
    await page.fill('#token', TOKEN);
    await page.click('#publish');
    const id = await until(() => page.getAttribute('#pub-result', 'data-id'), 'the form to show the assigned id',
                           () => text('#pub-result'));
    check((await text('#pub-result')).includes(id), 'the result line names the id');
    published.beta.push(id);
    sent.set(id, { topic: 'beta', type: 'greeting', data: 'from the form' });
    const rs = await shown([id]);
    checkRow(rs.find((r) => r.id === id), id);
    exactlyOnce(rs, 'beta', published.beta, 'after the form publish');
  }],

  ['POST /admin/disconnect: both streams resume with nothing lost or repeated', async () => {
    const before = { alpha: await reconnects('alpha'), beta: await reconnects('beta') };
    const r = await http('POST', 'admin/disconnect', {});
    eq(r.status, 200, `admin/disconnect status (${r.text})`);
    check(r.json && r.json.closed >= 2, `admin/disconnect closed ${r.text}`);
    // Published while the page is reconnecting: must come back through Last-Event-ID.
    const down = [];
    for (let i = 1; i <= 4; i++) {
      down.push(await publish('alpha', i % 2 ? 'tick' : null, `alpha down ${i}`));
      down.push(await publish('beta', null, `beta down ${i}`));
    }
    await until(async () => (await bothOpen()) && (await reconnects('alpha')) > before.alpha
                           && (await reconnects('beta')) > before.beta,
                'both streams to reconnect', async () => `${await connState()} reconnects `
                  + `${await reconnects('alpha')}/${await reconnects('beta')}`);
    await hubSubscribed();
    const live = [await publish('alpha', null, 'alpha live'), await publish('beta', 'tick', 'beta live')];
    const rs = await shown([...down, ...live]);
    for (const id of [...down, ...live]) checkRow(rs.find((r) => r.id === id), id);
    exactlyOnce(rs, 'alpha', published.alpha, 'after the server dropped the streams');
    exactlyOnce(rs, 'beta', published.beta, 'after the server dropped the streams');
    check(!rs.some((r) => r.gap), 'no gap event within the replay window');
  }],

  ['the "Drop all streams" button: page reconnects and resumes', async () => {
    const before = await reconnects('alpha');
    await page.click('#kick');
    await until(async () => (await text('#admin-result')).startsWith('closed'), 'the admin result',
                () => text('#admin-result'));
    const a = await publish('alpha', 'greeting', 'after the button');
    await until(async () => (await bothOpen()) && (await reconnects('alpha')) > before, 'alpha to reconnect', connState);
    const rs = await shown([a]);
    exactlyOnce(rs, 'alpha', published.alpha, 'after the button');
    exactlyOnce(rs, 'beta', published.beta, 'after the button');
  }],

  ['a resume id outside the replay window shows a highlighted gap event', async () => {
    await page.click('#disconnect');
    await until(async () => (await state('alpha')) === 'closed' && (await state('beta')) === 'closed',
                'the streams to close', connState);
    oldAlpha = published.alpha.at(-1);
    oldBeta = published.beta.at(-1);
    eq(await page.$eval('.last-id[data-topic="alpha"]', (e) => e.dataset.lastId), oldAlpha, 'alpha id kept on disconnect');
    const missed = [];
    for (let i = 1; i <= REPLAY + 4; i++) missed.push(await publish('alpha', null, `missed ${i}`));
    await page.click('#connect');            // resumes each topic from the id it last saw
    await until(bothOpen, 'the streams to reopen', connState);
    let rs = [];
    await until(async () => { rs = await rows(); return rs.filter((r) => r.gap).length >= 2; },
                'a gap event on alpha and on beta', async () => JSON.stringify(rs.filter((r) => r.gap)));
    const gaps = rs.filter((r) => r.gap);
    eq(gaps.map((g) => g.topic).sort(), ['alpha', 'beta'], 'topics of the gap events');
    for (const g of gaps) {
      eq(g.type, 'sse-gap', 'gap row type');
      eq(g.id, '', 'gap row id');
      const d = JSON.parse(g.data);
      eq(d.last_event_id, g.topic === 'alpha' ? oldAlpha : oldBeta, `${g.topic} gap last_event_id`);
      eq(d.latest, missed.at(-1), `${g.topic} gap latest`);
      check(typeof d.oldest === 'string' && d.oldest !== oldAlpha, `${g.topic} gap oldest: ${d.oldest}`);
      check(g.cell.includes('outside the replay window'), `gap row text: ${g.cell}`);
    }
    // Highlighted: the gap row's cells do not look like an ordinary row's.
    const look = await page.evaluate(() => {
      const bg = (sel) => getComputedStyle(document.querySelector(sel)).backgroundColor;
      return { gap: bg('#events tr.gap td.data'), normal: bg('#events tr:not(.gap) td.data') };
    });
    check(look.gap !== look.normal && look.gap !== 'rgba(0, 0, 0, 0)', `gap row not highlighted: ${JSON.stringify(look)}`);
    // Whatever the hub replays after the gap is a tail of what was missed, in order, once.
    const after = idsOf(rs, 'alpha').filter((id) => missed.includes(id));
    eq(after, missed.slice(missed.length - after.length), 'alpha events after the gap');
    published.alpha = idsOf(rs, 'alpha');     // from here on: what the page holds, plus live ones
    const live = [await publish('alpha', null, 'live after gap', { retry: 300 }),
                  await publish('beta', null, 'beta after gap', { retry: 300 })];
    rs = await shown(live);
    exactlyOnce(rs, 'alpha', published.alpha, 'after the gap');
    exactlyOnce(rs, 'beta', published.beta, 'after the gap');
  }],

  ['after a gap, a server-side drop resumes from the newest id (header wins over ?lastEventId)', async () => {
    const before = await reconnects('alpha');
    const gapsBefore = (await rows()).filter((r) => r.gap).length;
    const r = await http('POST', 'admin/disconnect', {});
    eq(r.status, 200, 'admin/disconnect status');
    const down = [await publish('alpha', 'tick', 'down again 1'), await publish('alpha', null, 'down again 2')];
    await until(async () => (await bothOpen()) && (await reconnects('alpha')) > before, 'alpha to reconnect', connState);
    const rs = await shown(down);
    eq(rs.filter((x) => x.gap).length, gapsBefore, 'gap events after resuming within the window');
    exactlyOnce(rs, 'alpha', published.alpha, 'second resume');
    exactlyOnce(rs, 'beta', published.beta, 'second resume');
  }],

  ['the stats panel mirrors GET /stats', async () => {
    await hubSubscribed();
    let s = null;
    await until(async () => {
      s = (await http('GET', 'stats')).json;
      return (await text('#stat-connections')) === String(s.connections)
          && (await text('#stat-published')) === String(s.published);
    }, 'the panel to show /stats', async () => `${await text('#stat-connections')}/${await text('#stat-published')} vs ${JSON.stringify(s)}`);
    eq(s.connections, 2, '/stats connections');
    const topics = await text('#stat-topics');
    check(topics.includes('alpha 1') && topics.includes('beta 1'), `topics panel: ${topics}`);
    eq(await page.$eval('#events tbody', (b) => b.rows.length), (await rows()).length, 'row count');
  }],
];

// ---- run ---------------------------------------------------------------------
async function main() {
  let passed = 0, failed = 0, skipped = 0;
  const t0 = Date.now();
  const watchdog = setTimeout(() => {
    console.log(`not ok - the whole browser test exceeded ${DEADLINE_MS} ms`);
    console.log(`browser: ${passed} passed, ${failed + 1} failed`);
    killHub();
    process.exit(1);
  }, DEADLINE_MS);
  try {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found (apt-get install chromium)`);
    BASE = await startHub();
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sse-browser-'));
    context = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 820 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = context.pages()[0] || await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    for (const [name, fn] of steps) {
      if (failed) { skipped++; console.log(`skip - ${name}`); continue; }
      const s0 = Date.now();
      try {
        await fn();
        if (pageErrors.length) throw new Error(`page error: ${pageErrors.join('; ')}`);
        passed++;
        console.log(`ok - ${name} (${Date.now() - s0} ms)`);
      } catch (e) {
        failed++;
        console.log(`not ok - ${name}\n  ${String(e.message).split('\n').join('\n  ')}`);
      }
    }
  } catch (e) {
    failed++;
    console.log(`not ok - setup: ${e.message}`);
  }
  try {
    if (page) { await sleep(1300); await page.screenshot({ path: SCREENSHOT, fullPage: false }); console.log(`screenshot: ${SCREENSHOT}`); }
  } catch (e) { console.log(`screenshot failed: ${e.message}`); }
  try { if (context) await context.close(); } catch { /* ignore */ }
  const code = await stopHub();
  if (code !== null && code !== 0) { failed++; console.log(`not ok - hub exit status on SIGTERM: ${code}\n${hubLog}`); }
  else if (code === 0) { passed++; console.log('ok - hub exits 0 on SIGTERM'); }
  if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  if (failed && hubLog) console.log(`--- hub output ---\n${hubLog.slice(-4000)}`);
  clearTimeout(watchdog);
  console.log(`(${Date.now() - t0} ms)`);
  console.log(`browser: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exitCode = failed ? 1 : 0;
}

main();
