// Part (a) of the interop suite: the byte streams gen.lua wrote (sse.encode output, raw
// streams with bad UTF-8, random bytes) read by eventsource-parser (behind a streaming
// TextDecoder, as npm eventsource reads), by Node's own TextDecoder and by Chromium's
// EventSource, compared with what our parser and sse.client yielded for the same bytes.
import http from 'node:http';
import assert from 'node:assert/strict';
import { createParser } from 'eventsource-parser';
import { check, sameEvents, unhex, hexOf, evText, evHex, jsHex, sleep } from './lib.mjs';

// deterministic pieces of 1..64 bytes
function randomSizes(seed) {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return 1 + (s >>> 16) % 64; };
}

// Cut bytes into pieces: step 0 = whole, a number = that size, 'rand' = 1..64 at random.
function pieces(bytes, step, seed) {
  if (step === 0) return [bytes];
  const next = step === 'rand' ? randomSizes(seed) : () => step;
  const out = [];
  for (let i = 0; i < bytes.length;) { const n = next(); out.push(bytes.subarray(i, i + n)); i += n; }
  return out;
}

// Read bytes as npm eventsource does (TextDecoder in stream mode, then eventsource-
// parser), keeping the last event id the way the WHATWG rules do (an event without an
// id field carries the previous one). Returns { events (hex fields), retry }.
function esParse(chunks) {
  const events = [];
  let lastId = '', retry = null;
  const parser = createParser({
    onEvent(ev) {
      if (typeof ev.id === 'string') lastId = ev.id;
      events.push({ type: hexOf(ev.event || 'message'), data: hexOf(ev.data), id: hexOf(lastId) });
    },
    onRetry(ms) { retry = ms; },
  });
  const dec = new TextDecoder('utf-8');
  for (const c of chunks) parser.feed(dec.decode(c, { stream: true }));
  return { events, retry };
}

const STEPS = [0, 1, 7, 'rand'];
// 1-byte pieces cost eventsource-parser ~15 us a byte: only for streams up to 32 KiB
const stepsFor = (c) => STEPS.filter((s) => s !== 1 || c.wire.length <= 2 * 32768);
// gen.lua's cjson writes an empty list as {}
const list = (x) => (Array.isArray(x) ? x : []);

// Make gen.lua's output regular: lists are lists.
export function normalize(cases) {
  for (const c of [...cases.encoded, ...cases.raw]) c.events = list(c.events);
  for (const u of cases.utf8) u.cuts = list(u.cuts);
  cases.problems = list(cases.problems);
  return cases;
}

export async function parserChecks(cases) {
  await check('gen.lua: our parser agrees with itself at every chunking, with the reference parser, and with sse.client',
    () => assert.deepEqual(cases.problems, []));

  // sse.encode output, read back by eventsource-parser at several chunk sizes
  for (const c of cases.encoded) {
    const opts = c.divergence ? { known: 'eventsource-parser drops a block without data, its id included ' +
                                          '(WHATWG keeps the id; Chromium does)' } : {};
    await check(`eventsource-parser reads sse.encode output: ${c.name}`, () => {
      for (const step of stepsFor(c)) {
        const got = esParse(pieces(unhex(c.wire), step, c.wire.length));
        sameEvents(got.events.map(evHex), c.events.map(evHex), `pieces of ${step || 'all'} bytes`);
        assert.equal(got.retry === null ? null : String(got.retry), c.retry, `retry, pieces of ${step || 'all'} bytes`);
      }
    }, opts);
  }

  // byte streams sse.encode would refuse: bad UTF-8, BOMs, CR and CRLF line ends
  await check(`eventsource-parser + TextDecoder read ${cases.raw.length} raw streams (bad UTF-8, BOM, CR) as our parser does`, () => {
    for (const c of cases.raw) {
      for (const step of stepsFor(c)) {
        const got = esParse(pieces(unhex(c.wire), step, 7));
        sameEvents(got.events.map(evHex), c.events.map(evHex), `${c.name}, pieces of ${step || 'all'} bytes`);
      }
    }
  });

  // Node's own UTF-8 decoder (WHATWG TextDecoder, stream mode, BOM kept) on random bytes
  await check(`Node's TextDecoder decodes ${cases.utf8.length} random byte strings at random cuts as our parser does`, () => {
    for (const u of cases.utf8) {
      const bytes = unhex(u.bytes);
      const dec = new TextDecoder('utf-8', { ignoreBOM: true });
      const bounds = [0, ...u.cuts, bytes.length];
      let text = '';
      for (let i = 1; i < bounds.length; i++) {
        text += dec.decode(bytes.subarray(bounds[i - 1], bounds[i]), { stream: i < bounds.length - 1 });
      }
      assert.equal(u.text, hexOf(text), `bytes ${u.bytes} cut at ${JSON.stringify(u.cuts)}`);
    }
  });
}

// Serve every stream from a local HTTP server (whole, or in 7-byte writes) to a page in
// Chromium; each EventSource reads one to its end (the error at EOF), then closes.
export async function chromiumStreamChecks(cases, browser) {
  const streams = [...cases.encoded, ...cases.raw];
  const server = http.createServer(async (req, res) => {
    const h = /^\/head\/(\d+)$/.exec(req.url);
    if (h) { // the response exactly as gen.lua wrote it, head included
      res.socket.end(unhex(cases.heads[Number(h[1])].wire));
      return;
    }
    const m = /^\/(whole|seven)\/(\d+)$/.exec(req.url);
    if (!m) { res.writeHead(200, { 'Content-Type': 'text/html' }); res.end('<!doctype html><title>interop</title>'); return; }
    const bytes = unhex(streams[Number(m[2])].wire);
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    res.socket.setNoDelay(true);
    if (m[1] === 'whole') { res.end(bytes); return; }
    for (let i = 0; i < bytes.length && !res.destroyed; i += 7) {
      res.write(bytes.subarray(i, i + 7));
      await new Promise((r) => setImmediate(r));
    }
    res.end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  const page = await browser.context.newPage();
  try {
    await page.goto(`${base}/`, { timeout: 10000 });
    // one stream per EventSource, at most 5 at a time (6 connections per host)
    const read = (jobs) => page.evaluate(async (list) => {
      const one = ({ url, types }) => new Promise((resolve) => {
        const got = [];
        const es = new EventSource(url);
        const on = (e) => got.push({ type: e.type, data: e.data, id: e.lastEventId });
        for (const t of types) es.addEventListener(t, on);
        const t = setTimeout(() => { es.close(); resolve({ got, timeout: true }); }, 10000);
        es.onerror = () => { clearTimeout(t); es.close(); resolve({ got }); };
      });
      const out = [];
      for (let i = 0; i < list.length; i += 5) out.push(...await Promise.all(list.slice(i, i + 5).map(one)));
      return out;
    }, jobs);
    for (const how of ['whole', 'seven']) {
      const idx = streams.map((_, i) => i).filter((i) => how === 'whole' || streams[i].wire.length <= 2 * 8192);
      const jobs = idx.map((i) => ({
        url: `${base}/${how}/${i}`,
        types: [...new Set(['message', ...streams[i].events.map((e) => evText(e).type)])],
      }));
      const got = await read(jobs);
      idx.forEach((i, k) => { streams[i][`chromium_${how}`] = got[k]; });
    }
    const heads = await read(cases.heads.map((_, i) => ({ url: `${base}/head/${i}`, types: ['message'] })));
    cases.heads.forEach((c, i) => { c.chromium = heads[i]; });
  } finally {
    await page.close().catch(() => {});
    await new Promise((r) => server.close(r));
    server.closeAllConnections?.();
  }
  for (const c of streams) {
    await check(`Chromium's EventSource reads ${c.name} as our parser does`, () => {
      for (const how of ['whole', 'seven']) {
        const r = c[`chromium_${how}`];
        if (!r) continue;
        assert.ok(!r.timeout, `${how}: no end of stream within 10 s`);
        sameEvents(r.got.map(jsHex), c.events.map(evHex), how === 'whole' ? 'one write' : '7-byte writes');
      }
    });
  }
  for (const c of cases.heads) {
    const verdict = c.accepted ? 'accepts' : 'refuses';
    await check(`Chromium and sse.client agree on a response head: ${c.name} (both ${verdict})`, () => {
      assert.ok(!c.chromium.timeout, 'Chromium: no end of stream within 10 s');
      const chromiumAccepts = c.chromium.got.some((e) => e.data === 'ok');
      assert.equal(chromiumAccepts, c.accepted,
                   `Chromium ${chromiumAccepts ? 'accepts' : 'refuses'}, sse.client ${verdict} (${c.client_error})`);
    });
  }
  await sleep(0);
}
