// Beyond six connections at the transport level (part of the browser suite, run by
// dashboard.test.mjs with its Chromium and hub):
//   1. straight to the hub over HTTP/1.1, a page holds six EventSources; the seventh
//      and eighth stay connecting, and a fetch from the page waits behind them;
//   2. behind nginx as a TLS + HTTP/2 proxy (examples/nginx-proxy.conf itself, with its
//      ports and certificate paths replaced; a self-signed certificate made here with
//      openssl), 16 EventSources of one page are open at once, an event to each
//      arrives within a second, and nginx's access log shows every stream on one
//      connection ($connection) over HTTP/2.0; the dashboard works through it too.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ROOT, run, stop, http, until, check, eq, sleep } from './lib.mjs';

const NGINX = process.env.NGINX || 'nginx';
const MANY = 16;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

const canConnect = (port) => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
  s.on('error', () => resolve(false));
});

// The example with this run's ports and files; each replaced line must be there once.
function proxyConf(dir, port, hubPort) {
  let conf = fs.readFileSync(path.join(ROOT, 'examples/nginx-proxy.conf'), 'utf8');
  const swaps = [
    [/listen 443 ssl http2;/, `listen 127.0.0.1:${port} ssl http2;`],
    [/server 127\.0\.0\.1:8080;/, `server 127.0.0.1:${hubPort};`],
    [/\/etc\/ssl\/certs\/sse\.example\.org\.pem/, path.join(dir, 'cert.pem')],
    [/\/etc\/ssl\/private\/sse\.example\.org\.key/, path.join(dir, 'key.pem')],
  ];
  for (const [re, to] of swaps) {
    const n = (conf.match(new RegExp(re.source, 'g')) || []).length;
    if (n !== 1) throw new Error(`examples/nginx-proxy.conf: ${re} found ${n} times, want 1`);
    conf = conf.replace(re, to);
  }
  return conf;
}

async function startNginx(hubPort) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sse-h2-'));
  fs.chmodSync(dir, 0o755); // workers run as nobody when started as root
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const tmp = path.join(dir, 'tmp');
  fs.mkdirSync(tmp);
  fs.chmodSync(tmp, 0o777);
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'sse.conf'), proxyConf(dir, port, hubPort));
  fs.writeFileSync(path.join(dir, 'nginx.conf'), [
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log info;`,
    'events { worker_connections 512; }',
    'http {',
    "  log_format conn '$connection $server_protocol $status $request_uri';",
    `  access_log ${dir}/access.log conn;`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${tmp}/${t};`),
    `  include ${dir}/sse.conf;`,
    '}', ''].join('\n'));
  const proc = run([NGINX, '-p', `${dir}/`, '-c', `${dir}/nginx.conf`, '-g', 'daemon off;']);
  const errlog = () => { try { return fs.readFileSync(path.join(dir, 'error.log'), 'utf8').slice(-2000); } catch { return ''; } };
  try {
    await until(async () => {
      if (proc.exitCode !== null) throw new Error(`nginx exited (${proc.exitCode}): ${proc.log}\n${errlog()}`);
      return canConnect(port);
    }, 'nginx to listen', () => proc.log + errlog(), 8000);
  } catch (e) {
    await stop(proc);
    throw e;
  }
  return { proc, dir, port, url: `https://127.0.0.1:${port}/`, errlog,
           access: () => { try { return fs.readFileSync(path.join(dir, 'access.log'), 'utf8'); } catch { return ''; } } };
}

// Opens n EventSources (plain mode, topic prefix + i) in the page; records what arrives.
function openMany(page, base, prefix, n) {
  return page.evaluate(({ base, prefix, n }) => {
    window.streams = [];
    for (let i = 1; i <= n; i++) {
      const es = new EventSource(new URL(`events?topic=${prefix}${i}`, base).href);
      const rec = { es, got: [] };
      es.addEventListener('ping', (e) => rec.got.push({ data: e.data, at: performance.now() }));
      window.streams.push(rec);
    }
  }, { base, prefix, n });
}

const readyStates = (page) => page.evaluate(() => window.streams.map((s) => s.es.readyState));

export function h2Steps({ browser, hubUrl, token }) {
  const api = (method, p, body) => http(hubUrl, method, p, body, token);
  let nginx = null;
  return [
    ['HTTP/1.1 straight to the hub: six EventSources open, the 7th and 8th wait, and so does a fetch', async () => {
      const ctx = await browser.newContext();
      try {
        const page = await ctx.newPage();
        await page.goto(hubUrl + 'sse-subscriber.js'); // same origin, a small response
        await openMany(page, hubUrl, 'h', 8);
        await until(async () => (await readyStates(page)).filter((s) => s === 1).length === 6, 'six streams open',
                    () => readyStates(page).then(JSON.stringify), 5000);
        await sleep(700);
        eq((await readyStates(page)).filter((s) => s === 1).length, 6, 'streams open at once over HTTP/1.1');
        const fetched = await page.evaluate(() => Promise.race([
          fetch('stats').then(() => 'answered', () => 'failed'),
          new Promise((r) => setTimeout(() => r('still waiting'), 800))]));
        eq(fetched, 'still waiting', 'a fetch behind six streams');
      } finally {
        await ctx.close();
      }
    }],

    [`behind nginx (TLS, HTTP/2): ${MANY} EventSources of one page on one connection, an event to each within a second`, async () => {
      nginx = await startNginx(Number(new URL(hubUrl).port));
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
      try {
        const page = await ctx.newPage();
        const res = await page.goto(nginx.url + 'sse-subscriber.js');
        eq(res.status(), 200, 'GET through nginx');
        await openMany(page, nginx.url, 'p', MANY);
        await until(async () => (await readyStates(page)).every((s) => s === 1), `${MANY} streams open`,
                    () => readyStates(page).then(JSON.stringify), 8000);
        let s = null;
        await until(async () => {
          s = (await api('GET', 'stats?top=100')).json;
          return Array.from({ length: MANY }, (_, i) => `p${i + 1}`)
            .every((t) => s.top_topics.some((e) => e.topic === t && e.subscribers === 1));
        }, `the hub to count the ${MANY} streams`, () => JSON.stringify(s?.top_topics));
        const lat = [];
        for (let i = 1; i <= MANY; i++) {
          const t0 = Date.now();
          const r = await api('POST', 'publish', { topic: `p${i}`, event: 'ping', data: `to p${i}` });
          eq(r.status, 200, 'publish');
          await until(() => page.evaluate((k) => window.streams[k].got.length === 1, i - 1), `the event on stream ${i}`,
                      null, 1000);
          lat.push(Date.now() - t0);
        }
        const got = await page.evaluate(() => window.streams.map((x) => x.got.map((g) => g.data)));
        eq(got, Array.from({ length: MANY }, (_, i) => [`to p${i + 1}`]), 'each stream got its event only');
        console.log(`  through nginx: max ${Math.max(...lat)} ms from publish to the page`);
        // the dashboard through the proxy, in envelope mode
        await page.goto(nginx.url + '?topic=x1&topic=x2');
        await page.fill('#token', token);
        await until(async () => (await page.getAttribute('#conn-state', 'data-state')) === 'open', 'the dashboard stream');
        const r = await api('POST', 'publish', { topic: 'x2', event: 'via-proxy', data: 'through nginx' });
        await page.waitForSelector(`#events li[data-id="${r.json.id}"][data-type="via-proxy"]`, { timeout: 2000 });
      } finally {
        await ctx.close();
      }
      // nginx logs a request when it ends: now, for every stream
      let lines = [];
      await until(() => {
        lines = nginx.access().split('\n').filter((l) => / \/events\?topic=p\d+$/.test(l));
        return lines.length === MANY;
      }, `${MANY} stream lines in nginx's access log`, () => nginx.access().slice(-1500), 5000);
      const conns = new Set(lines.map((l) => l.split(' ')[0]));
      eq([...new Set(lines.map((l) => l.split(' ')[1]))], ['HTTP/2.0'], 'protocol of the streams');
      eq(conns.size, 1, `connections the ${MANY} streams used (${[...conns].join(',')})`);
      const code = await stop(nginx.proc);
      check(code === 0 || code === 'SIGTERM', `nginx exit: ${code}\n${nginx.errlog()}`);
      fs.rmSync(nginx.dir, { recursive: true, force: true });
      nginx = null;
    }],
  ];
}
