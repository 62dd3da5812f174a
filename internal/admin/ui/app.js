// rpcproxy status page: polls the admin JSON API every second and renders
// the pool, the totals and the last events. No framework, no build step;
// every value goes into the DOM as text, never as HTML.
'use strict';

(() => {
  const POLL_MS = 1000;
  const TIMEOUT_MS = 5000;
  const TOKEN_KEY = 'rpcproxy.admin.token';
  const STATE_ICONS = { up: '●', draining: '◐', down: '✕' };

  const $ = (id) => document.getElementById(id);

  // The token: from ?token= (then dropped from the address bar, so it is not
  // kept in history or shared with a copied link), else from sessionStorage.
  let memoryToken = '';
  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return memoryToken; }
  }
  function setToken(t) {
    memoryToken = t;
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* storage off: keep it in memory */ }
  }
  function takeTokenFromURL() {
    const url = new URL(window.location.href);
    if (!url.searchParams.has('token')) return;
    const t = url.searchParams.get('token');
    if (t) setToken(t);
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }

  class Unauthorized extends Error {}

  async function getJSON(path) {
    const headers = { Accept: 'application/json' };
    const token = getToken();
    if (token) headers.Authorization = 'Bearer ' + token;
    const resp = await fetch(path, { headers, cache: 'no-store', credentials: 'omit', signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (resp.status === 401) throw new Unauthorized(token ? 'refused' : 'missing');
    if (!resp.ok) {
      let msg = resp.status + ' ' + resp.statusText;
      try { const body = await resp.json(); if (body && body.error) msg += ': ' + body.error; } catch (e) { /* not JSON */ }
      throw new Error(path + ': ' + msg);
    }
    return resp.json();
  }

  // Formatting. null and undefined show as an em dash.
  const DASH = '—';
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const fmtInt = (v) => (isNum(v) ? v.toLocaleString('en-US') : DASH);
  function fmtRate(v) {
    if (!isNum(v)) return DASH;
    return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  }
  const fmtPct = (v, digits) => (isNum(v) ? (v * 100).toFixed(digits) + ' %' : DASH);
  function fmtMS(v) {
    if (!isNum(v)) return DASH;
    if (v >= 10000) return (v / 1000).toFixed(1) + ' s';
    if (v >= 1000) return (v / 1000).toFixed(2) + ' s';
    if (v >= 10) return v.toFixed(0) + ' ms';
    if (v >= 1) return v.toFixed(1) + ' ms';
    return v.toFixed(2) + ' ms';
  }
  function fmtAgo(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return '';
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    return Math.floor(s / 3600) + ' h ago';
  }
  const pad = (n) => String(n).padStart(2, '0');
  function fmtClock(d) {
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  // el('td', {className: 'num'}, '3', child, …): an element with text or
  // element children.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k === 'data') Object.assign(e.dataset, v);
        else if (k === 'attrs') for (const [a, av] of Object.entries(v)) e.setAttribute(a, av);
        else e[k] = v;
      }
    }
    for (const c of children) {
      if (c === null || c === undefined || c === '') continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function stateBadge(state) {
    const known = Object.hasOwn(STATE_ICONS, state);
    return el('span', { className: 'badge state ' + (known ? 'state-' + state : ''), data: { state } },
      el('span', { className: 'icon', attrs: { 'aria-hidden': 'true' } }, known ? STATE_ICONS[state] : '?'),
      state);
  }

  function renderSummary(s) {
    $('t-clients').textContent = fmtInt(s.clients);
    $('t-sessions').textContent = fmtInt(s.sessions);
    $('t-backends').textContent = fmtInt(s.backends);
    $('t-backends-sub').textContent = fmtInt(s.up) + ' up · ' + fmtInt(s.draining) + ' draining · ' + fmtInt(s.down) + ' down';
    $('t-rps').textContent = fmtRate(s.requests_per_second);
    $('t-errors').textContent = fmtPct(s.error_rate, 2);
    $('t-p50').textContent = fmtMS(s.turn_p50_ms);
    $('t-p99').textContent = fmtMS(s.turn_p99_ms);
    const ready = $('ready');
    ready.hidden = false;
    ready.textContent = s.ready ? 'Ready' : 'Not ready';
    ready.className = 'ready ' + (s.ready ? 'yes' : 'no');
    ready.title = s.ready ? 'At least one backend takes new sessions' : 'No backend takes new sessions (/readyz answers 503)';
  }

  function backendRow(b) {
    const details = [b.source, 'weight ' + b.weight];
    if (b.version) details.push('v' + b.version);
    if (b.admin_drain) details.push('drained by the admin API');

    const share = isNum(b.share) ? Math.min(Math.max(b.share, 0), 1) : 0;
    const fill = el('div', { className: 'fill' });
    fill.style.width = (share * 100).toFixed(2) + '%';
    const shareCell = el('td', null,
      el('div', { className: 'share', title: 'Fraction of the ring (of new sessions) this backend owns' },
        el('div', { className: 'bar', attrs: { 'aria-hidden': 'true' } }, fill),
        el('span', { className: 'pct' }, fmtPct(share, 1))));

    const lc = b.last_check || {};
    let check;
    if (!lc.time) {
      check = el('td', null, el('span', { className: 'sub' }, 'not checked yet'));
    } else {
      const when = new Date(lc.time);
      check = el('td', { title: 'Last health check at ' + when.toLocaleString() },
        el('div', null,
          el('span', { className: lc.ok ? 'check-ok' : 'check-failed' }, lc.ok ? 'ok' : 'failed'),
          ' · ' + fmtMS(lc.latency_ms) + ' · ' + fmtAgo(lc.time)),
        lc.error ? el('div', { className: 'sub error', title: lc.error }, lc.error) : null);
    }

    return el('tr', { data: { backend: b.address, state: b.state } },
      el('td', null, el('div', { className: 'addr' }, b.address), el('div', { className: 'sub' }, details.join(' · '))),
      el('td', null, stateBadge(b.state)),
      shareCell,
      el('td', { className: 'num' }, fmtInt(b.sessions)),
      el('td', { className: 'num' }, fmtInt(b.clients)),
      check);
  }

  function renderBackends(list) {
    $('backends').tBodies[0].replaceChildren(...list.map(backendRow));
    $('backends-empty').hidden = list.length > 0;
  }

  function renderEvents(list) {
    const rows = list.slice(-50).reverse().map((e) => {
      const when = new Date(e.time);
      return el('tr', { data: { kind: e.kind } },
        el('td', { className: 'time', title: when.toISOString() }, fmtClock(when)),
        el('td', null, el('span', { className: 'badge kind-' + e.kind }, e.kind)),
        el('td', { className: 'addr' }, e.backend),
        el('td', { className: 'detail' }, e.detail));
    });
    $('events').tBodies[0].replaceChildren(...rows);
    $('events-empty').hidden = rows.length > 0;
  }

  // setLive shows the connection's state. Only a change of it is written to
  // the status region (announced by screen readers); the time of the last
  // update, which changes every second, is not in that region.
  function setLive(kind, text, time) {
    $('live').className = 'live ' + kind;
    if ($('live-text').textContent !== text) $('live-text').textContent = text;
    $('live-time').textContent = time ? '· updated ' + time : '';
  }

  function showAuth(reason) {
    $('dashboard').hidden = true;
    $('ready').hidden = true;
    $('auth').hidden = false;
    $('auth-message').textContent = reason === 'refused'
      ? 'The admin listener refused the token (401 Unauthorized). Enter the right admin.token.'
      : 'This admin listener requires a token (401 Unauthorized): admin.token is set. Enter it below.';
    setLive('error', 'Paused: token needed');
    $('auth-token').focus();
  }

  let timer = 0;
  let polling = false;

  async function poll() {
    timer = 0;
    polling = true;
    const sent = getToken();
    try {
      const [summary, backends, events] = await Promise.all([
        getJSON('/v1/summary'), getJSON('/v1/backends'), getJSON('/v1/events'),
      ]);
      renderSummary(summary);
      renderBackends(backends);
      renderEvents(events);
      $('auth').hidden = true;
      $('dashboard').hidden = false;
      $('main').classList.remove('stale');
      setLive('ok', 'Live', fmtClock(new Date()));
    } catch (err) {
      if (err instanceof Unauthorized) {
        if (getToken() === sent) {
          showAuth(err.message);
          return; // wait for a token: polling resumes on submit
        }
        // A new token came in while this request was out: try it now.
        timer = window.setTimeout(poll, 0);
        return;
      }
      $('main').classList.add('stale');
      const why = err.name === 'TimeoutError' ? 'no answer in ' + TIMEOUT_MS / 1000 + ' s' : err.message;
      setLive('error', 'Cannot reach the admin API (' + why + '); retrying');
    } finally {
      polling = false;
    }
    timer = window.setTimeout(poll, POLL_MS);
  }

  function restart() {
    if (timer) window.clearTimeout(timer);
    if (!polling) poll();
  }

  function init() {
    takeTokenFromURL();
    $('host').textContent = window.location.host;
    $('auth-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = $('auth-token').value.trim();
      if (!t) return;
      setToken(t);
      $('auth-token').value = '';
      $('auth-message').textContent = 'Checking…';
      restart();
    });
    poll();
  }

  init();
})();
