// Parts (b) and (c) of the interop suite: the demo hub (examples/hub/server.lua, i.e.
// sse.app) on a free port, read by npm eventsource and by Chromium's EventSource while
// the server cuts every stream (POST /admin/disconnect), mid-stream and before a
// client's first event. Every published event must arrive exactly once, in order,
// with its id, across the reconnects (Last-Event-ID).
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { check, sameEvents, waitFor, sleep, startHub, startNgxHub, post } from './lib.mjs';

// The hubs the live checks run against: the luv demo hub, and the same hub in nginx
// with two workers (a publish and the streams it feeds may be in different workers;
// a client may reconnect to the other worker and resumes from the shared log).
export const HUBS = [
  { start: startHub, where: '' },
  { start: startNgxHub, where: ' (nginx, 2 workers)' },
];

const TYPES = ['message', 'tick', 'sse-gap'];

// A client of either kind: events of TYPES as {type, data, id}, opens counted.
function esClient(url) {
  const c = { kind: 'npm eventsource', events: [], opens: 0 };
  const es = new EventSource(url);
  for (const t of TYPES) es.addEventListener(t, (e) => c.events.push({ type: e.type, data: e.data, id: e.lastEventId }));
  es.addEventListener('open', () => { c.opens++; });
  c.close = async () => es.close();
  return c;
}

async function chromiumClient(browser, hubUrl, url) {
  const c = { kind: 'Chromium', events: [], opens: 0 };
  const page = await browser.context.newPage();
  await page.exposeFunction('report', (msg) => {
    if (msg.open) c.opens++; else c.events.push(msg);
  });
  await page.goto(new URL('stats', hubUrl).href, { timeout: 10000 }); // same origin as the stream
  await page.evaluate(({ src, types }) => {
    const es = new EventSource(src);
    for (const t of types) es.addEventListener(t, (e) => window.report({ type: e.type, data: e.data, id: e.lastEventId }));
    es.onopen = () => window.report({ open: true });
    window.es = es;
  }, { src: url, types: TYPES });
  c.close = async () => { await page.evaluate(() => window.es.close()).catch(() => {}); await page.close().catch(() => {}); };
  return c;
}

// Event data a publisher may send: line ends of every kind, unicode, long, empty.
function dataFor(i) {
  const kinds = [
    () => `event ${i}`,
    () => `multi\r\nline\rdata\n${i}`,
    () => '',
    () => `  leading spaces ${i}: \u00e9\u20ac\u{1F600}`,
    () => `${'x'.repeat(20000)}${i}`,
    () => `:looks like a comment\ndata: and a field ${i}\n`,
  ];
  return kinds[i % kinds.length]();
}
const lf = (s) => s.replace(/\r\n|\r/g, '\n');

// Publish one event; returns what every subscriber must receive for it.
async function publish(hubUrl, topic, i, extra = {}) {
  const data = dataFor(i);
  const event = i % 3 === 0 ? 'tick' : undefined;
  const r = await post(hubUrl, 'publish', { topic, data, event, ...extra });
  return { type: event || 'message', data: lf(data), id: r.id };
}

const disconnect = (hubUrl) => post(hubUrl, 'admin/disconnect');

export async function liveChecks(browser, { start, where } = HUBS[0]) {
  const hub = await start(['--replay-events', '1000']);
  const url = new URL('events?topic=live', hub.url).href;
  const clients = [esClient(url), await chromiumClient(browser, hub.url, url)];
  try {
    await waitFor(() => clients.every((c) => c.opens === 1), 10000, 'both clients to open');
    const want = [];
    // the first event sets a short reconnection time for the cuts below
    want.push(await publish(hub.url, 'live', 1, { retry: 200 }));
    await waitFor(() => clients.every((c) => c.events.length === 1), 5000, 'the first event');
    let cuts = 0;
    for (let i = 2; i <= 45; i++) {
      want.push(await publish(hub.url, 'live', i));
      if (i % 11 === 0) {
        // cut mid-stream (events may still be in flight), publish during the gap,
        // then wait for both to come back before the next cut
        cuts++;
        await disconnect(hub.url);
        for (let k = 0; k < 3; k++) want.push(await publish(hub.url, 'live', 100 * i + k));
        await waitFor(() => clients.every((c) => c.opens === cuts + 1), 5000,
                      () => `reconnects after cut ${cuts}: ${clients.map((c) => c.opens).join(', ')}`);
      } else if (i % 4 === 0) {
        await sleep(5);
      }
    }
    await waitFor(() => clients.every((c) => c.events.length >= want.length), 10000,
                  () => `every event (${clients.map((c) => `${c.kind} ${c.events.length}`).join(', ')} of ${want.length})`);
    await sleep(100); // nothing more may come
    for (const c of clients) {
      await check(`${c.kind} reads a live hub stream${where} cut ${cuts} times: ${want.length} events once each, in order`, () => {
        sameEvents(c.events, want, c.kind);
        assert.equal(c.opens, cuts + 1, 'connections opened');
      });
    }
  } catch (e) {
    await check(`live hub streams${where} with server-side cuts`, () => { throw e; });
  } finally {
    for (const c of clients) await c.close();
    await hub.stop();
  }
}

// (c) A client cut before its first event must resume from where it joined. Two
// joins: on a fresh hub (empty replay window) and after events exist. (Until the
// hub gave the join position as the sse-join event, it sent an id-only block,
// which eventsource-parser drops: npm eventsource then lost what was published
// during its first gap -- 1 of these 6 events arrived.)
export async function earlyCutChecks(browser, { start, where } = HUBS[0]) {
  const hub = await start(['--replay-events', '1000']);
  const url = new URL('events?topic=early', hub.url).href;
  const fresh = [esClient(url), await chromiumClient(browser, hub.url, url)];
  const later = [];
  try {
    await waitFor(() => fresh.every((c) => c.opens === 1), 10000, 'the first clients to open');
    await post(hub.url, 'publish', { topic: 'elsewhere', data: 'before the second join' });
    later.push(esClient(url), await chromiumClient(browser, hub.url, url));
    await waitFor(() => later.every((c) => c.opens === 1), 10000, 'the second clients to open');
    await sleep(200); // whatever the hub sends at the join reaches the clients
    await disconnect(hub.url);
    const want = [];
    for (let i = 1; i <= 5; i++) want.push(await publish(hub.url, 'early', i));
    // no event has told these clients a reconnection time: the default (3 s) applies
    const all = [...fresh, ...later];
    await waitFor(() => all.every((c) => c.opens === 2), 8000,
                  () => `reconnects: ${all.map((c) => `${c.kind} ${c.opens}`).join(', ')}`);
    want.push(await publish(hub.url, 'early', 6));
    await waitFor(() => all.every((c) => c.events.some((e) => e.id === want[5].id)), 5000,
                  () => `the last event (${all.map((c) => `${c.kind} ${c.events.length}`).join(', ')})`);
    await sleep(100);
    for (const [label, list] of [['on a fresh hub', fresh], ['after events were published', later]]) {
      for (const c of list) {
        await check(`${c.kind} cut before its first event (joined ${label})${where} resumes and misses nothing`, () => {
          sameEvents(c.events, want, c.kind);
        });
      }
    }
  } catch (e) {
    await check(`early-cut clients${where}`, () => { throw e; });
  } finally {
    for (const c of [...fresh, ...later]) await c.close();
    await hub.stop();
  }
}
