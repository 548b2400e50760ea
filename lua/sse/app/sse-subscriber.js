/* sse-subscriber.js - one EventSource for many topics, every event type.
 *
 * For the envelope mode of an `sse` hub (GET /events?topic=a&topic=b&envelope=1):
 * the hub sends every event as `event: sse` with {"topic","event","data"} in
 * JSON and the event's own id, so one connection follows any number of
 * topics and sees types it has never heard of. This module routes those
 * events by topic, keeps the position (Last-Event-ID) and reconnects.
 * No dependencies: copy it, or load it from the demo hub (GET /sse-subscriber.js).
 *
 *   const sub = new SseSubscriber('/events', { topics: ['news', 'sport'] });
 *   sub.on('news', (ev) => show(ev.type, ev.data, ev.id));   // one topic
 *   sub.onAny((ev) => log(ev));                                // every event
 *   sub.onGap((gap) => refetch(gap));   // events were lost: {last_event_id, oldest, latest, dropped}
 *   sub.onState((state, info) => ...);  // 'connecting' | 'open' | 'retrying' | 'closed'
 *   sub.close();
 *
 * ev is {topic, type, data, id}: topic a string (null for an event the hub
 * sent to every stream), type the event name ("message" when it had none),
 * data the publisher's text exactly (JSON.parse it when you sent JSON), id
 * the event's id (the EventSource's lastEventId).
 *
 * Reconnection: while the browser's EventSource retries by itself (a dropped
 * connection; it sends Last-Event-ID), the state is 'connecting'. When it
 * gives up (readyState CLOSED: an HTTP error, a proxy's error page) this
 * module opens a fresh EventSource after a backoff (1 s doubling to 30 s,
 * with jitter), resuming with ?lastEventId= (a new EventSource cannot send
 * the header). info.status and info.error then say why, when the server
 * answered (fetched once, for the message). Either way the hub replays what
 * was missed, so no event is lost within its replay window; beyond it onGap
 * is called.
 *
 * Options: topics (list), lastEventId (resume from it), withCredentials,
 * params (more query parameters, an object), backoff {initial, max} (ms),
 * EventSource (a constructor: Node's npm `eventsource`, a polyfill),
 * diagnose (false: do not fetch the error message). Works as a classic
 * <script> (window.SseSubscriber) and with require() (module.exports). */
(function (root, factory) {
  'use strict';
  const api = factory();
  if (typeof module === 'object' && module.exports) module.exports = api;
  else root.SseSubscriber = api;
}(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  const ENVELOPE_EVENT = 'sse';  // the hub's fixed event name in envelope mode
  const JOIN = 'sse-join';       // the hub's own events (no topic)
  const GAP = 'sse-gap';
  const CLOSED = 2;              // EventSource.CLOSED

  // Calls fn(...args); a handler that throws is reported, the others still run.
  function call(fn, args) {
    try {
      fn.apply(null, args);
    } catch (e) {
      if (typeof reportError === 'function') reportError(e);
      else setTimeout(() => { throw e; }, 0);
    }
  }

  function addTo(map, key, fn) {
    if (typeof fn !== 'function') throw new TypeError('handler must be a function');
    let set = map.get(key);
    if (!set) map.set(key, (set = new Set()));
    set.add(fn);
    return () => { set.delete(fn); if (!set.size) map.delete(key); };
  }

  function emit(map, key, args) {
    const set = map.get(key);
    if (set) for (const fn of [...set]) call(fn, args);
  }

  class SseSubscriber {
    constructor(url, options) {
      const o = options || {};
      this.url = url;
      this.topics = Array.from(o.topics || []);
      this.lastEventId = o.lastEventId || '';
      this.state = 'closed';
      this.reconnects = 0;       // connections opened after the first
      this._opts = o;
      this._ES = o.EventSource || (typeof EventSource !== 'undefined' ? EventSource : null);
      if (!this._ES) throw new Error('no EventSource: pass options.EventSource');
      this._backoff = Object.assign({ initial: 1000, max: 30000 }, o.backoff);
      this._delay = this._backoff.initial;
      this._handlers = new Map();  // topic -> Set of fn
      this._special = new Map();   // 'any' | 'gap' | 'join' | 'state' -> Set of fn
      this._es = null;
      this._timer = null;
      this._opened = false;
      this._closed = false;
      // opened after the caller's synchronous set-up, so its handlers see it all
      const start = () => { if (!this._closed && !this._es && !this._timer) this._open(); };
      if (typeof queueMicrotask === 'function') queueMicrotask(start);
      else Promise.resolve().then(start);
    }

    /* sub.on(topic, fn(ev)): the events of one topic; returns a function
     * that removes the handler. */
    on(topic, fn) { return addTo(this._handlers, String(topic), fn); }
    /* Every event of every topic (and those without a topic). */
    onAny(fn) { return addTo(this._special, 'any', fn); }
    /* fn(gap): events were lost (a resume outside the replay window, or a slow
     * connection's dropped events): {last_event_id, oldest, latest, dropped}. */
    onGap(fn) { return addTo(this._special, 'gap', fn); }
    /* fn({last_event_id}): a fresh connection's join position. */
    onJoin(fn) { return addTo(this._special, 'join', fn); }
    /* fn(state, info): 'connecting', 'open', 'retrying' (info.delay ms,
     * info.status, info.error when known) or 'closed'. */
    onState(fn) { return addTo(this._special, 'state', fn); }

    /* Follows another set of topics: a new connection that resumes from the
     * last id, so nothing of the topics kept is lost. */
    setTopics(topics) {
      this.topics = Array.from(topics);
      if (!this._closed) this.reconnect();
    }

    /* A fresh connection now (resuming from the last id). */
    reconnect() {
      if (this._closed) return;
      this._stop();
      this._delay = this._backoff.initial;
      this._open();
    }

    /* Stops for good. */
    close() {
      this._closed = true;
      this._stop();
      this._setState('closed', {});
    }

    /* The URL of the stream, resuming from id when given. */
    streamUrl(id) {
      const base = typeof location !== 'undefined' ? location.href : undefined;
      const u = new URL(this.url, base);
      for (const t of this.topics) u.searchParams.append('topic', t);
      u.searchParams.set('envelope', '1');
      const extra = this._opts.params || {};
      for (const k of Object.keys(extra)) u.searchParams.set(k, extra[k]);
      if (id) u.searchParams.set('lastEventId', id);
      return u.href;
    }

    _stop() {
      if (this._timer) clearTimeout(this._timer);
      this._timer = null;
      if (this._es) this._es.close();
      this._es = null;
    }

    _setState(state, info) {
      this.state = state;
      emit(this._special, 'state', [state, info]);
    }

    _open() {
      this._timer = null;
      const url = this.streamUrl(this.lastEventId);
      const es = new this._ES(url, { withCredentials: !!this._opts.withCredentials });
      this._es = es;
      this._setState('connecting', {});
      es.addEventListener('open', () => {
        if (es !== this._es) return;
        if (this._opened) this.reconnects++;
        this._opened = true;
        this._delay = this._backoff.initial;
        this._setState('open', {});
      });
      es.addEventListener('error', () => {
        if (es !== this._es) return;
        if (es.readyState === CLOSED) this._giveUp(es, url);
        else if (this.state !== 'connecting') this._setState('connecting', {});
      });
      es.addEventListener(ENVELOPE_EVENT, (e) => { if (es === this._es) this._envelope(e); });
      // a stream that is not in envelope mode still shows its unnamed events
      es.addEventListener('message', (e) => {
        if (es !== this._es) return;
        this._track(e);
        this._deliver({ topic: null, type: 'message', data: e.data, id: e.lastEventId || '' });
      });
    }

    // The browser gave up: retry ourselves after the backoff, and find out why.
    _giveUp(es, url) {
      es.close();
      this._es = null;
      const delay = Math.round(this._delay * (0.5 + Math.random() / 2));
      this._delay = Math.min(this._delay * 2, this._backoff.max);
      this._timer = setTimeout(() => this._open(), delay);
      const info = { delay };
      this._setState('retrying', info);
      if (this._opts.diagnose === false || typeof fetch !== 'function') return;
      const ctl = typeof AbortController === 'function' ? new AbortController() : null;
      fetch(url, { signal: ctl && ctl.signal, cache: 'no-store',
                   credentials: this._opts.withCredentials ? 'include' : 'same-origin' })
        .then(async (res) => {
          const type = res.headers.get('content-type') || '';
          let error = res.ok && /event-stream/.test(type) ? null : 'HTTP ' + res.status;
          if (!/event-stream/.test(type)) {
            const text = await res.text().catch(() => '');
            try { error = JSON.parse(text).error || error; } catch (e) { if (text) error = text.slice(0, 200); }
          }
          if (ctl) ctl.abort();
          if (this.state === 'retrying' && this._timer) {
            info.status = res.status;
            info.error = error;
            this._setState('retrying', info);
          }
        })
        .catch(() => {});
    }

    _track(e) {
      if (e.lastEventId) this.lastEventId = e.lastEventId;
    }

    _envelope(e) {
      this._track(e);
      let env;
      try { env = JSON.parse(e.data); } catch (err) { env = null; }
      if (!env || typeof env !== 'object') {
        // not an envelope: show it as it came
        this._deliver({ topic: null, type: ENVELOPE_EVENT, data: e.data, id: e.lastEventId || '' });
        return;
      }
      const type = typeof env.event === 'string' ? env.event : 'message';
      const data = typeof env.data === 'string' ? env.data : JSON.stringify(env.data);
      if (type === JOIN || type === GAP) {
        let info = {};
        try { info = JSON.parse(data); } catch (err) { /* keep {} */ }
        emit(this._special, type === GAP ? 'gap' : 'join', [info]);
        return;
      }
      const topic = typeof env.topic === 'string' ? env.topic : null;
      this._deliver({ topic, type, data, id: e.lastEventId || '' });
    }

    _deliver(ev) {
      if (ev.topic !== null) emit(this._handlers, ev.topic, [ev]);
      emit(this._special, 'any', [ev]);
    }
  }

  SseSubscriber.ENVELOPE_EVENT = ENVELOPE_EVENT;
  return SseSubscriber;
}));
