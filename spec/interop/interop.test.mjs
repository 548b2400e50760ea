// The interop suite: the project's output read by clients it did not write.
//   node interop.test.mjs CASES.json     (CASES.json from gen.lua; run.sh does both)
// (a) parsers.mjs: sse.encode output, raw streams and random bytes through
//     eventsource-parser@3, Node's TextDecoder and Chromium's EventSource;
// (b) live.mjs: the demo hub, on luv and in nginx (two workers), with server-side
//     cuts, read by npm eventsource@4 and
//     Chromium; (c) the early cut (a client cut before its first event); (d)
//     envelope.mjs: the envelope mode read by npm eventsource and sse-subscriber.js.
// Prints one line per check, then "interop: N passed, M failed (K known)".
// Environment: LUA, SSE_BUILD (the build dir holding sse/core.so), CHROMIUM,
// INTEROP_STRICT=1 (known failures fail), INTEROP_TIMEOUT_MS (default 90000).
import fs from 'node:fs';
import { check, summary, launchChromium, killChildren } from './lib.mjs';
import { normalize, parserChecks, chromiumStreamChecks } from './parsers.mjs';
import { liveChecks, earlyCutChecks, HUBS } from './live.mjs';
import { envelopeChecks } from './envelope.mjs';

const t0 = Date.now();
const phase = (what) => console.log(`interop: -- ${what} at ${Date.now() - t0} ms`);
const DEADLINE = Number(process.env.INTEROP_TIMEOUT_MS || 90000);
const watchdog = setTimeout(() => {
  console.log(`interop: still running after ${DEADLINE} ms, giving up`);
  killChildren();
  process.exit(1);
}, DEADLINE);

let browser = null;
try {
  const cases = normalize(JSON.parse(fs.readFileSync(process.argv[2], 'utf8')));
  console.log(`interop: seed ${cases.seed}`);
  // Chromium starts (seconds on a busy machine) while Node checks the parsers
  const launching = launchChromium().catch((e) => e);
  await parserChecks(cases);
  phase('parsers done');
  await envelopeChecks();
  phase('envelope mode done');
  browser = await launching;
  phase('Chromium up');
  if (browser instanceof Error) {
    const e = browser;
    browser = null;
    await check('launch Chromium', () => { throw e; });
  }
  if (browser) {
    await chromiumStreamChecks(cases, browser);
    phase('Chromium streams done');
    for (const hub of HUBS) {
      await liveChecks(browser, hub);
      phase(`live hub${hub.where} done`);
      await earlyCutChecks(browser, hub);
      phase(`early cut${hub.where} done`);
    }
  }
} catch (e) {
  await check('interop suite', () => { throw e; });
} finally {
  if (browser) await browser.close();
  killChildren();
  clearTimeout(watchdog);
}
const r = summary();
console.log(`interop: ${r.passed} passed, ${r.failed} failed (${r.known} known) in ${Date.now() - t0} ms`);
if (r.fixed.length) console.log(`interop: known tags to remove: ${r.fixed.join('; ')}`);
process.exit(r.failed ? 1 : 0);
