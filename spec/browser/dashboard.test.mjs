// The browser suite (make browser): the demo hub's dashboard used as a person would,
// in headless Debian Chromium driven by playwright-core, against the real hub on a free
// loopback port; then (h2.mjs) nginx as a TLS + HTTP/2 proxy in front of it.
//   - a link naming 8, 20 or 32 topics opens one connection for all of them; an event
//     to each arrives within a second; the form still publishes; 33 topics: the page
//     says why the hub refused;
//   - events of types never published before appear, also across a forced reconnect
//     (POST /admin/disconnect) and across the module's own reconnect after the
//     browser's EventSource gave up; ids compared with the hub's: none lost, none twice;
//   - multi-line data as lines, long data cut and expandable, a gap shown with the
//     hub's oldest/latest ids, the stats status turning stale when /stats hangs;
//   - at 390x844 (a phone) nothing scrolls sideways and the data column has width;
//     screenshots in build/browser/ (look at them);
//   - no console errors except the HTTP errors a step provokes on purpose.
// Prints "browser: N passed, M failed".
//
// Environment: CHROMIUM (default /usr/bin/chromium), LUA (default lua5.4), SSE_HUB_CMD
// (replaces "$LUA examples/hub/server.lua"), BROWSER_TEST_TIMEOUT_MS (default 85000),
// BROWSER_SHOTS (default build/browser), NGINX (default nginx; "skip" skips h2.mjs).
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT, startHub, stop, killChildren, http, until, check, eq, sleep } from './lib.mjs';
import { h2Steps } from './h2.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const DEADLINE_MS = Number(process.env.BROWSER_TEST_TIMEOUT_MS || 85000);
const SHOTS = path.resolve(ROOT, process.env.BROWSER_SHOTS || 'build/browser');
const TOKEN = 'browser-test-token';
const REPLAY = 64;           // --replay-events: the gap step overflows it
const ARRIVE_MS = 1000;      // an event must be on the page this soon after its publish

let hub = null, BASE = null, browser = null, context = null, page = null;
const consoleErrors = [];    // {text, step}
let allowed = [];            // patterns of console errors the current step provokes
const latencies = [];        // ms from publish to row, every timed event

const api = (method, p, body, token = TOKEN) => http(BASE, method, p, body, token);

// ---- publishing and reading the page -------------------------------------------------
const sent = new Map();      // id -> {topic, type, data}
let order = [];              // ids in the hub's order since the page connected

async function publish(topic, type, data, extra = {}) {
  const body = { topic, data, ...extra };
  if (type) body.event = type;
  const r = await api('POST', 'publish', body);
  check(r.status === 200 && r.json && typeof r.json.id === 'string' && r.json.id !== '',
        `publish to ${topic}: status ${r.status}, body ${r.text}`);
  sent.set(r.json.id, { topic, type: type || 'message', data });
  order.push(r.json.id);
  return r.json.id;
}

// Publishes and waits for the row: at most ARRIVE_MS.
async function publishTimed(topic, type, data, extra) {
  const t0 = Date.now();
  const id = await publish(topic, type, data, extra);
  try {
    await page.waitForSelector(`#events li[data-id="${id}"]`, { state: 'attached', timeout: ARRIVE_MS });
  } catch {
    throw new Error(`event ${id} to ${topic} not on the page within ${ARRIVE_MS} ms`);
  }
  latencies.push(Date.now() - t0);
  return id;
}

// The event rows in arrival order (the page shows newest first).
const rows = () => page.$$eval('#events li.ev', (lis) => lis.reverse().map((li) => ({
  id: li.dataset.id, topic: li.dataset.topic, type: li.dataset.type, data: li.sseData,
  gap: li.classList.contains('gap'), text: li.querySelector('.text')?.textContent,
})));

const text = (sel) => page.$eval(sel, (e) => e.textContent.trim());
const attr = (sel, name) => page.getAttribute(sel, name);
const connState = () => attr('#conn-state', 'data-state');
const reconnects = async () => Number(await text('#conn-reconnects'));

async function waitOpen() {
  await until(async () => (await connState()) === 'open', 'the connection to open',
              async () => `${await connState()} / ${await text('#conn-note')}`);
}

// Waits until every id is on the page; returns the rows.
async function shown(ids, ms) {
  let rs = [];
  await until(async () => {
    rs = await rows();
    const have = new Set(rs.map((r) => r.id));
    return ids.every((id) => have.has(id));
  }, `${ids.length} event(s) on the page`,
  () => `missing ${ids.filter((id) => !rs.some((r) => r.id === id)).slice(0, 8).join(',')}`, ms);
  return rs;
}

// The page's events since it connected: the hub's order, each once, with what was sent.
function exactlyAsSent(rs, what) {
  const got = rs.filter((r) => !r.gap).map((r) => r.id);
  const dups = got.filter((id, i) => got.indexOf(id) !== i);
  check(dups.length === 0, `${what}: ids shown twice: ${dups.join(',')}`);
  eq(got, order, `${what}: ids in the hub's order`);
  for (const r of rs) {
    if (r.gap) continue;
    const s = sent.get(r.id);
    eq({ topic: r.topic, type: r.type, data: r.data }, s, `${what}: event ${r.id}`);
  }
}

// Opens the dashboard from a link naming topics; waits for the one connection.
async function openTopics(topics) {
  order = [];
  await page.goto(BASE + '?' + topics.map((t) => 'topic=' + encodeURIComponent(t)).join('&'), { waitUntil: 'load' });
  await waitOpen();
  let s = null;
  await until(async () => {
    s = (await api('GET', 'stats?top=100')).json;
    return s && s.connections === 1 && topics.every((t) => s.top_topics.some((e) => e.topic === t && e.subscribers === 1));
  }, `the hub to count one connection subscribed to ${topics.length} topics`,
  () => JSON.stringify({ c: s?.connections, n: s?.top_topics?.length }));
  // the join event gives the page its position before the first event
  await until(async () => (await attr('#conn-last-id', 'data-last-id')) !== '', 'the join position');
  // a short reconnection time for the cuts below (the browser's default is 3 s)
  await publishTimed(topics[0], 'hello', 'retry in 250 ms', { retry: 250 });
}

const topicsN = (n) => Array.from({ length: n }, (_, i) => `t${i + 1}`);

// ---- the steps ---------------------------------------------------------------------
function manyTopics(n) {
  return [`${n} topics from a link: one connection, an event to each within ${ARRIVE_MS} ms, the form publishes`, async () => {
    const topics = topicsN(n);
    await openTopics(topics);
    eq(await page.inputValue('#topics'), topics.join(', '), 'topics field');
    eq(new URL(page.url()).searchParams.getAll('topic'), topics, 'the link keeps the topics');
    eq(await text('#conn-topics'), `${n} (one connection)`, 'connection panel');
    for (const t of topics) await publishTimed(t, `first-${t}`, `to ${t}`);
    // the form still publishes (no request waits behind the stream)
    await page.fill('#pub-topic', topics.at(-1));
    await page.fill('#pub-event', 'from-the-form');
    await page.fill('#pub-data', `typed for ${topics.at(-1)}`);
    const t0 = Date.now();
    await page.click('#publish');
    const id = await until(() => attr('#pub-result', 'data-id'), 'the form to show the id it got', () => text('#pub-result'));
    await page.waitForSelector(`#events li[data-id="${id}"]`, { state: 'attached', timeout: ARRIVE_MS });
    latencies.push(Date.now() - t0);
    sent.set(id, { topic: topics.at(-1), type: 'from-the-form', data: `typed for ${topics.at(-1)}` });
    order.push(id);
    exactlyAsSent(await rows(), `${n} topics`);
    // per-topic counts, routed by topic on the one connection
    const chips = await page.$$eval('#chips button', (bs) => bs.map((b) => [b.dataset.topic, b.querySelector('.n').textContent]));
    eq(chips, topics.map((t) => [t, String(order.filter((x) => sent.get(x).topic === t).length)]), 'events per topic');
    check((await attr('#hub-status', 'data-state')) === 'online', 'the stats still poll');
  }];
}

const steps = [
  ['GET / and /sse-subscriber.js; the page asks for the token /stats needs', async () => {
    const r = await api('GET', '', undefined, null);
    eq(r.status, 200, 'GET / status');
    check(/^text\/html/.test(r.type), `GET / content-type: ${r.type}`);
    check(!/<(script|link|img)[^>]+(src|href)=["']?(https?:)?\/\//i.test(r.text), 'dashboard loads an external resource');
    check(/<link rel="icon" href="data:/.test(r.text), 'a favicon (no /favicon.ico request)');
    const js = await api('GET', 'sse-subscriber.js', undefined, null);
    eq(js.status, 200, 'GET /sse-subscriber.js');
    check(/^text\/javascript/.test(js.type), `sse-subscriber.js content-type: ${js.type}`);
    eq(js.text, fs.readFileSync(path.join(ROOT, 'examples/browser/sse-subscriber.js'), 'utf8'),
       'the hub serves examples/browser/sse-subscriber.js');
    allowed = [/status of 401/];
    await page.goto(BASE, { waitUntil: 'load' });
    eq(await page.title(), 'sse hub', 'page title');
    await until(async () => (await attr('#hub-status', 'data-state')) === 'locked', 'the token prompt',
                () => text('#hub-status'));
    check((await text('#token-hint')).includes('token'), 'the hint beside the token field');
    await page.fill('#token', TOKEN);
    await until(async () => (await attr('#hub-status', 'data-state')) === 'online', 'the stats with the token',
                () => text('#hub-status'));
    eq(await text('#token-hint'), '', 'the hint goes once the token is there');
  }],

  manyTopics(8),
  manyTopics(20),
  manyTopics(32),

  ['33 topics: the page says why the hub refused the stream', async () => {
    allowed = [/status of 400/];
    await page.goto(BASE + '?' + topicsN(33).map((t) => 'topic=' + t).join('&'), { waitUntil: 'load' });
    await until(async () => /too many topics.*32/.test(await text('#conn-note')),
                'the refusal in the connection panel', async () => `${await connState()}: ${await text('#conn-note')}`);
    eq(await connState(), 'retrying', 'state after the refusal');
  }],

  ['events of types never published before appear, in the hub\'s order, none lost', async () => {
    await openTopics(topicsN(20));
    const ids = [];
    for (let i = 0; i < 30; i++) {
      const t = `t${(i * 7) % 20 + 1}`;
      ids.push(await publish(t, `novel-${i}-${Math.random().toString(36).slice(2, 7)}`, `event ${i} of a new type`));
    }
    exactlyAsSent(await shown(ids), 'new types');
    // a topic's button shows only its events, and again all of them
    const visible = () => page.$$eval('#events li.ev', (lis) => lis.filter((li) => !li.hidden).map((li) => li.dataset.topic));
    await page.click('#chips button[data-topic="t8"]');
    const only = await visible();
    eq([...new Set(only)], ['t8'], 'rows shown after clicking t8');
    eq(only.length, order.filter((id) => sent.get(id).topic === 't8').length, 't8 rows');
    await page.click('#filter-note button');
    eq((await visible()).length, (await rows()).length, 'every row after "show all"');
  }],

  ['POST /admin/disconnect: events of new types published meanwhile arrive once', async () => {
    const before = await reconnects();
    const r = await api('POST', 'admin/disconnect', {});
    eq(r.status, 200, `admin/disconnect (${r.text})`);
    const down = [];
    for (let i = 0; i < 12; i++) down.push(await publish(`t${i + 1}`, `while-down-${i}`, `down ${i}`));
    await until(async () => (await connState()) === 'open' && (await reconnects()) > before, 'the page to reconnect',
                async () => `${await connState()} reconnects ${await reconnects()}`);
    const live = [await publishTimed('t3', 'after-reconnect', 'live again')];
    exactlyAsSent(await shown([...down, ...live]), 'after the server dropped the stream');
    eq(await attr('#conn-last-id', 'data-last-id'), live[0], 'the position is the newest id');
  }],

  ['the browser gives up (HTTP 503): the module reconnects with ?lastEventId=, nothing lost', async () => {
    allowed = [/status of 503/];
    const before = await reconnects();
    const lastBefore = await attr('#conn-last-id', 'data-last-id');
    const urls = [];
    const onRequest = (req) => { if (/\/events\?/.test(req.url())) urls.push(req.url()); };
    page.on('request', onRequest);
    await page.route(/\/events\?/, (route) => route.fulfill({
      status: 503, contentType: 'application/json', body: '{"error":"hub restarting"}' }));
    try {
      await api('POST', 'admin/disconnect', {});
      const down = [];
      for (let i = 0; i < 5; i++) down.push(await publish(`t${i + 5}`, `gave-up-${i}`, `while refused ${i}`));
      await until(async () => (await text('#conn-note')).includes('hub restarting'), 'the refusal shown',
                  async () => `${await connState()}: ${await text('#conn-note')}`);
      eq(await connState(), 'retrying', 'state while refused');
      await page.unroute(/\/events\?/);
      await until(async () => (await connState()) === 'open' && (await reconnects()) > before, 'the module to reconnect',
                  async () => `${await connState()} ${await text('#conn-detail')}`);
      exactlyAsSent(await shown(down), 'after the module reconnected');
      const last = urls.at(-1);
      eq(new URL(last).searchParams.get('lastEventId'), lastBefore, `the fresh EventSource resumes (${last})`);
      eq(new URL(last).searchParams.getAll('topic'), topicsN(20), 'with every topic');
      eq(new URL(last).searchParams.get('envelope'), '1', 'in envelope mode');
      await publishTimed('t20', 'after-giving-up', 'and live');
    } finally {
      page.off('request', onRequest);
      await page.unroute(/\/events\?/).catch(() => {});
    }
  }],

  ['multi-line data is shown as lines; long data is cut and expands', async () => {
    const poem = await publishTimed('t1', 'poem', 'first line\nsecond line\n  third, indented');
    const row = `#events li[data-id="${poem}"]`;
    eq(await page.$eval(`${row} .text`, (e) => e.textContent), 'first line\nsecond line\n  third, indented', 'lines');
    const lines = await page.$eval(`${row} .text`, (e) => Math.round(e.getBoundingClientRect().height
                                                                   / parseFloat(getComputedStyle(e).lineHeight)));
    eq(lines, 3, 'rendered lines');
    const long = 'L'.repeat(4000) + ' the end';
    const lid = await publishTimed('t2', 'long', long);
    const lrow = `#events li[data-id="${lid}"]`;
    const short = await page.$eval(`${lrow} .text`, (e) => e.textContent);
    check(short.length <= 301 && short.endsWith('\u2026'), `cut: ${short.length} chars`);
    eq(await text(`${lrow} .more`), 'show all (1 line, 4008 chars)', 'the button');
    await page.click(`${lrow} .more`);
    eq(await page.$eval(`${lrow} .text`, (e) => e.textContent), long, 'expanded');
    await page.click(`${lrow} .more`);
    eq(await page.$eval(`${lrow} .text`, (e) => e.textContent), short, 'cut again');
  }],

  ['a resume outside the replay window: the gap row names the hub\'s oldest and latest ids', async () => {
    await page.click('#disconnect');
    await until(async () => (await connState()) === 'closed', 'the stream to close', connState);
    const resumeFrom = await attr('#conn-last-id', 'data-last-id');
    check(resumeFrom !== '', 'a position to resume from');
    for (let i = 0; i < REPLAY + 6; i++) await publish(`t${(i % 20) + 1}`, 'missed', `missed ${i}`);
    await page.click('#connect');
    await waitOpen();
    const gapRow = await page.waitForSelector('#events li.ev.gap', { timeout: 5000 });
    const field = async (k) => gapRow.$eval(`dd[data-field="${k}"]`, (e) => e.textContent);
    const s = (await api('GET', 'stats')).json;
    eq(await field('resumed from'), resumeFrom, 'resumed from');
    eq(await field('oldest held'), s.replay.first_id, 'oldest held (the hub\'s first_id)');
    eq(await field('latest'), s.replay.last_id, 'latest (the hub\'s last_id)');
    check((await gapRow.$eval('.text', (e) => e.textContent)).includes('outside the hub\'s replay window'), 'in words');
    const look = await page.evaluate(() => {
      const bg = (sel) => getComputedStyle(document.querySelector(sel)).backgroundColor;
      return { gap: bg('#events li.gap'), normal: bg('#events li.ev:not(.gap)') };
    });
    check(look.gap !== look.normal, `gap row not highlighted: ${JSON.stringify(look)}`);
    // after the gap: the window's events (the tail of what was missed), in order
    const rs = await rows();
    const gi = rs.findIndex((r) => r.gap);
    const after = rs.slice(gi + 1).map((r) => r.id);
    eq(after, order.slice(order.length - after.length), 'the replay after the gap');
    check(after.length === REPLAY, `${after.length} replayed, want ${REPLAY}`);
  }],

  ['the status turns stale while /stats hangs, and recovers', async () => {
    allowed = [/ERR_FAILED|aborted/i];
    await page.route(/\/stats$/, () => { /* never answered: the page gives up after 4 s */ });
    try {
      await until(async () => (await attr('#hub-status', 'data-state')) === 'stale', 'the stale status',
                  () => text('#hub-status'), 9000);
      check((await text('#hub-status')).includes('no answer within 4 s'), `status: ${await text('#hub-status')}`);
      check(await page.$eval('#stats-panel', (e) => e.classList.contains('stale')), 'the stats panel greys out');
    } finally {
      await page.unroute(/\/stats$/);
    }
    await until(async () => (await attr('#hub-status', 'data-state')) === 'online', 'online again',
                () => text('#hub-status'), 9000);
  }],

  ['at 390x844 (a phone): no sideways scrolling, the data column has width; screenshots', async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await openTopics(topicsN(20));
    await publishTimed('t4', 'headline', 'A headline that is long enough to wrap on a phone screen, word after word');
    await publishTimed('t5', 'poem', 'one\ntwo\nthree');
    await publishTimed('t6', 'score', JSON.stringify({ home: 2, away: 1, minute: 77 }));
    await publishTimed('t7', 'blob', 'x'.repeat(2000));
    const m = await page.evaluate(() => {
      const se = document.scrollingElement;
      const data = document.querySelector('#events li.ev .data').getBoundingClientRect();
      const wide = [...document.querySelectorAll('body *')].filter((e) => {
        const r = e.getBoundingClientRect();
        return r.width > 0 && r.right > innerWidth + 0.5 && !e.closest('[hidden]');
      }).map((e) => e.id || e.className || e.tagName).slice(0, 5);
      return { scrollWidth: se.scrollWidth, clientWidth: se.clientWidth, dataWidth: data.width,
               dataLeft: data.left, innerWidth, wide };
    });
    check(m.scrollWidth <= m.clientWidth, `sideways scrolling: scrollWidth ${m.scrollWidth} > ${m.clientWidth}`);
    check(m.dataWidth >= 300, `data column ${m.dataWidth}px wide at 390px`);
    eq(m.wide, [], 'elements past the right edge');
    await sleep(1400); // the rows' arrival flash is over
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-phone.png') });
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-phone-full.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 820 });
    const wide = await page.evaluate(() => document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth);
    check(wide, 'sideways scrolling at 1280 px');
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-desktop.png') });
    console.log(`  screenshots: ${SHOTS}/dashboard-{desktop,phone,phone-full}.png; data column ${Math.round(m.dataWidth)}px`);
  }],
];

// ---- run ---------------------------------------------------------------------------
async function main() {
  let passed = 0, failed = 0;
  const t0 = Date.now();
  const watchdog = setTimeout(() => {
    console.log(`not ok - the whole browser test exceeded ${DEADLINE_MS} ms`);
    console.log(`browser: ${passed} passed, ${failed + 1} failed`);
    killChildren();
    process.exit(1);
  }, DEADLINE_MS);
  const runStep = async (name, fn) => {
    const s0 = Date.now();
    allowed = [];
    const errBefore = consoleErrors.length;
    try {
      await fn();
      const errs = consoleErrors.slice(errBefore).filter((e) => !allowed.some((re) => re.test(e)));
      if (errs.length) throw new Error(`console errors: ${errs.join(' | ')}`);
      passed++;
      console.log(`ok - ${name} (${Date.now() - s0} ms)`);
      return true;
    } catch (e) {
      failed++;
      console.log(`not ok - ${name}\n  ${String(e.message).split('\n').join('\n  ')}`);
      return false;
    }
  };
  try {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found (apt-get install chromium)`);
    const started = startHub(['--token', TOKEN, '--replay-events', String(REPLAY)]);
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
             '--disable-component-update', '--disable-sync', '--ignore-certificate-errors'],
    });
    hub = await started;
    BASE = hub.url;
    context = await browser.newContext({ viewport: { width: 1280, height: 820 } });
    page = await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
    let ok = true;
    for (const [name, fn] of steps) {
      if (!ok) { console.log(`skip - ${name}`); continue; }
      ok = await runStep(name, fn);
    }
    if (latencies.length) {
      const sorted = [...latencies].sort((a, b) => a - b);
      console.log(`  publish -> on the page: ${latencies.length} events, median ${sorted[sorted.length >> 1]} ms, `
                  + `max ${sorted.at(-1)} ms`);
    }
    await context.close();
    context = null;
    if (process.env.NGINX !== 'skip') {
      for (const [name, fn] of h2Steps({ browser, hubUrl: BASE, token: TOKEN })) await runStep(name, fn);
    }
  } catch (e) {
    failed++;
    console.log(`not ok - setup: ${e.message}`);
  }
  try { if (browser) await browser.close(); } catch { /* ignore */ }
  const code = hub ? await stop(hub.proc) : null;
  if (code !== null && code !== 0) { failed++; console.log(`not ok - hub exit status on SIGTERM: ${code}\n${hub.proc.log}`); }
  else if (code === 0) { passed++; console.log('ok - hub exits 0 on SIGTERM'); }
  if (failed && hub) console.log(`--- hub output ---\n${hub.proc.log.slice(-3000)}`);
  clearTimeout(watchdog);
  console.log(`(${Date.now() - t0} ms)`);
  console.log(`browser: ${passed} passed, ${failed} failed`);
  killChildren();
  process.exitCode = failed ? 1 : 0;
}

main();
