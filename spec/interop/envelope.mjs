// Part (d) of the interop suite: the hub's envelope mode (GET /events?...&envelope=1)
// read by npm eventsource@4, a client this project did not write, as a generic
// consumer (one listener for the fixed event name "sse") and through the browser
// module examples/browser/sse-subscriber.js running in Node on top of it. The
// envelope stream must carry exactly the events, types, data and ids that plain
// streams of each topic carry, across server-side cuts; the hub's own join and gap
// events arrive enveloped.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { EventSource } from 'eventsource';
import { ROOT, check, sameEvents, waitFor, sleep, startHub, post } from './lib.mjs';

const require = createRequire(import.meta.url);
const SseSubscriber = require(path.join(ROOT, 'examples/browser/sse-subscriber.js'));

const TOPICS = ['alpha', 'beta'];
const TYPES = ['message', 'tick', 'score'];

// Data of every awkward kind: line ends, unicode, long, empty, JSON, comment-like.
function dataFor(i) {
  const kinds = [
    () => `event ${i}`,
    () => `multi\r\nline\rdata\n${i}`,
    () => '',
    () => `  leading spaces ${i}: \u00e9\u20ac\u{1F600} "quoted" \\ back`,
    () => `${'x'.repeat(5000)}${i}`,
    () => `:looks like a comment\ndata: and a field ${i}\n`,
    () => JSON.stringify({ n: i, list: [1, 2, { deep: 'yes' }] }),
  ];
  return kinds[i % kinds.length]();
}
const lf = (s) => s.replace(/\r\n|\r/g, '\n');

function plainClient(url) {
  const c = { events: [], opens: 0 };
  const es = new EventSource(url);
  for (const t of TYPES) es.addEventListener(t, (e) => c.events.push({ type: e.type, data: e.data, id: e.lastEventId }));
  es.addEventListener('open', () => { c.opens++; });
  c.close = () => es.close();
  return c;
}

// A generic consumer of the envelope: one listener, everything in the JSON.
function envelopeClient(url) {
  const c = { events: [], hub: [], opens: 0 };
  const es = new EventSource(url);
  es.addEventListener('sse', (e) => {
    const env = JSON.parse(e.data);
    assert.deepEqual(Object.keys(env), ['topic', 'event', 'data'], 'envelope keys, in order');
    if (env.event.startsWith('sse-')) c.hub.push({ ...env, id: e.lastEventId });
    else c.events.push({ topic: env.topic, type: env.event, data: env.data, id: e.lastEventId });
  });
  es.addEventListener('message', (e) => c.events.push({ unexpected: e.data }));
  es.addEventListener('open', () => { c.opens++; });
  c.close = () => es.close();
  return c;
}

export async function envelopeChecks() {
  const hub = await startHub(['--replay-events', '1000']);
  const base = (q) => new URL(`events?${q}`, hub.url).href;
  const plain = TOPICS.map((t) => plainClient(base(`topic=${t}`)));
  const env = envelopeClient(base(TOPICS.map((t) => `topic=${t}`).join('&') + '&envelope=1'));
  const clients = [...plain, env];
  const want = [];
  try {
    await waitFor(() => clients.every((c) => c.opens === 1), 10000, 'the clients to open');
    let cuts = 0;
    for (let i = 1; i <= 36; i++) {
      const topic = TOPICS[i % 2];
      const type = TYPES[i % 3];
      const data = dataFor(i);
      const r = await post(hub.url, 'publish', { topic, event: type === 'message' ? undefined : type, data,
                                                 retry: i <= 2 ? 200 : undefined }); // each topic's clients
      want.push({ topic, type, data: lf(data), id: r.id });
      if (i % 12 === 0) {
        cuts++;
        await post(hub.url, 'admin/disconnect');
        for (let k = 0; k < 2; k++) {
          const d = dataFor(100 + i + k);
          const rr = await post(hub.url, 'publish', { topic: TOPICS[k], event: 'tick', data: d });
          want.push({ topic: TOPICS[k], type: 'tick', data: lf(d), id: rr.id });
        }
        await waitFor(() => clients.every((c) => c.opens === cuts + 1), 5000,
                      () => `reconnects after cut ${cuts}: ${clients.map((c) => c.opens).join(', ')}`);
      }
    }
    await waitFor(() => env.events.length >= want.length && plain.every((c, k) =>
      c.events.length >= want.filter((w) => w.topic === TOPICS[k]).length), 10000,
    () => `every event (envelope ${env.events.length}, plain ${plain.map((c) => c.events.length).join('/')} of ${want.length})`);
    await sleep(100);
    await check(`npm eventsource reads envelope mode: ${want.length} events of 2 topics and 3 types on one connection, cut ${cuts} times, once each, in order`, () => {
      sameEvents(env.events, want, 'envelope');
      assert.equal(env.opens, cuts + 1, 'connections opened');
      assert.deepEqual(env.hub.map((h) => h.event), ['sse-join'], 'the hub\'s own events: the join only');
      assert.equal(env.hub[0].topic, null, 'the join has no topic');
      assert.deepEqual(JSON.parse(env.hub[0].data), { last_event_id: env.hub[0].id }, 'the join names its id');
    });
    await check('the envelope carries what plain streams of each topic carry (type, data, id)', () => {
      TOPICS.forEach((t, k) => sameEvents(plain[k].events, env.events.filter((e) => e.topic === t)
        .map(({ type, data, id }) => ({ type, data, id })), `plain ${t} vs envelope`));
    });
  } catch (e) {
    await check('envelope mode with server-side cuts', () => { throw e; });
  } finally {
    for (const c of clients) c.close();
  }

  // a resume outside the window: the gap, enveloped, then what the window holds
  const late = envelopeClient(base('topic=alpha&envelope=1&lastEventId=old-1'));
  try {
    await waitFor(() => late.hub.length >= 1 && late.events.length >= want.filter((w) => w.topic === 'alpha').length,
                  5000, () => `the gap and the replay (${late.hub.length}, ${late.events.length})`);
    await check('npm eventsource: a resume outside the window gets the enveloped sse-gap, then the replay', () => {
      assert.equal(late.hub[0].event, 'sse-gap');
      assert.equal(late.hub[0].topic, null);
      const g = JSON.parse(late.hub[0].data);
      assert.equal(g.last_event_id, 'old-1');
      assert.equal(g.oldest, want[0].id);
      assert.equal(g.latest, want.at(-1).id);
      assert.equal(g.dropped, null);
      sameEvents(late.events, want.filter((w) => w.topic === 'alpha'), 'replay after the gap');
    });
  } catch (e) {
    await check('envelope gap', () => { throw e; });
  } finally {
    late.close();
  }

  // the browser module on npm eventsource: routing by topic, join and gap callbacks
  const got = { alpha: [], beta: [], any: [], gaps: [], joins: [], states: [] };
  const sub = new SseSubscriber(new URL('events', hub.url).href,
                                { topics: TOPICS, EventSource, lastEventId: 'old-2', diagnose: false });
  sub.on('alpha', (ev) => got.alpha.push(ev));
  sub.on('beta', (ev) => got.beta.push(ev));
  sub.onAny((ev) => got.any.push(ev));
  sub.onGap((g) => got.gaps.push(g));
  sub.onJoin((j) => got.joins.push(j));
  sub.onState((s) => got.states.push(s));
  try {
    await waitFor(() => got.any.length >= want.length, 5000, () => `the module's replay (${got.any.length} of ${want.length})`);
    const extra = await post(hub.url, 'publish', { topic: 'beta', event: 'brand-new-type', data: 'live' });
    await waitFor(() => got.beta.some((e) => e.id === extra.id), 3000, 'the live event');
    await check('sse-subscriber.js on npm eventsource: routes by topic, reports the gap, keeps the last id', () => {
      const all = [...want, { topic: 'beta', type: 'brand-new-type', data: 'live', id: extra.id }];
      sameEvents(got.any, all, 'every event');
      for (const t of TOPICS) sameEvents(got[t], all.filter((w) => w.topic === t), `topic ${t}`);
      assert.equal(got.gaps.length, 1);
      assert.equal(got.gaps[0].last_event_id, 'old-2');
      assert.equal(got.joins.length, 0, 'no join on a resume');
      assert.equal(sub.lastEventId, extra.id);
      assert.equal(sub.state, 'open');
      assert.deepEqual(got.states.slice(0, 2), ['connecting', 'open']);
    });
  } catch (e) {
    await check('sse-subscriber.js in Node', () => { throw e; });
  } finally {
    sub.close();
    await hub.stop();
  }
}
