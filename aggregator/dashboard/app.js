// Emo7ion venue dashboard: venue picker, mood panel, stacked-area emotion chart and camera list, kept live
// by the aggregator's Server-Sent Events stream. Vanilla JS, no build step, nothing loaded from outside.
'use strict';

(function () {
  let LABELS = [];             // the model's labels in canonical order, from /api/meta
  let MOOD_WINDOW_S = 300;      // the aggregator's mood window, from /api/meta (a placeholder until then)
  const COLORS = {
    angry: '#ef4444',
    disgust: '#84cc16',
    fear: '#a855f7',
    happy: '#facc15',
    neutral: '#94a3b8',
    sad: '#3b82f6',
    surprise: '#f97316',
  };
  const SERIES_MIN_INTERVAL_MS = 4000;   // refetch the timeseries at most this often
  const REFRESH_MS = 30000;              // slide the chart and re-check venues even when nothing happens
  const VENUE_RETRY_MS = 5000;           // while there are no venues yet
  const TREND_FLAT = 0.01;
  const STALE_MS = 60000;                // "updated ..." turns amber when nothing arrived for this long
  const FIT_SPANS = [5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720];   // "Fit data" chart lengths, min
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const state = {
    token: null,
    venues: [],
    venue: null,
    zone: '',
    range: 'auto',          // the chart's period as chosen: 'auto' (fit the venue's data) or minutes
    minutes: 60,            // the period drawn, in minutes (fitted when range is 'auto')
    fitGeneration: -1,      // the view the fitted period belongs to
    fitAt: 0,
    scale: 'share',
    generation: 0,          // bumped on every venue/zone switch; late answers from older ones are dropped
    mood: null,
    moodAt: 0,              // when the page last received a mood
    series: null,
    cameras: [],
    source: null,
    streamState: 'idle',
    retryTimer: null,
    retryDelay: 2000,
    retryAt: 0,
    lastUpdate: null,
    lastSeriesFetch: 0,
    seriesTimer: null,
    moodTimer: null,
    lastMoodFetch: 0,
    venueTimer: null,
    hover: null,
  };

  const $ = (id) => document.getElementById(id);

  // ---- URL hash: #venue=hall-a&zone=front&minutes=60&token=... ------------------------------------

  function readHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    const minutes = parseInt(params.get('minutes') || '', 10);
    return {
      venue: params.get('venue') || null,
      zone: params.get('zone') || '',
      token: params.get('token') || null,
      range: Number.isFinite(minutes) && minutes > 0 ? minutes : 'auto',
    };
  }

  function writeHash() {
    const params = new URLSearchParams();
    if (state.venue) params.set('venue', state.venue);
    if (state.zone) params.set('zone', state.zone);
    if (state.range !== 'auto') params.set('minutes', String(state.range));
    if (state.token) params.set('token', state.token);
    const hash = '#' + params.toString();
    if (location.hash !== hash) history.replaceState(null, '', hash);
  }

  // ---- HTTP --------------------------------------------------------------------------------------

  class HttpError extends Error {
    constructor(status, detail) {
      super(`HTTP ${status}: ${detail}`);
      this.status = status;
    }
  }

  async function api(path) {
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    const response = await fetch(path, { headers, cache: 'no-store' });
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
      if (response.status === 401) {
        if (!state.mood) renderMood(null, false, 'Access token needed');
        showBanner(state.token
          ? `The access token was refused (${detail}). Check the token in the page address (#token=…).`
          : `This dashboard needs an access token: open it as ${location.origin}/#token=YOUR_TOKEN`);
      }
      throw new HttpError(response.status, detail);
    }
    clearBanner('auth');
    return response.json();
  }

  function showBanner(text, kind = 'auth') {
    const banner = $('banner');
    banner.textContent = text;
    banner.dataset.kind = kind;
    banner.hidden = false;
  }

  function clearBanner(kind) {
    const banner = $('banner');
    if (!banner.hidden && banner.dataset.kind === kind) banner.hidden = true;
  }

  function report(error) {
    if (!(error instanceof HttpError && error.status === 401)) console.warn('emo7ion dashboard:', error);
  }

  // ---- formatting --------------------------------------------------------------------------------

  const MINUS = '\u2212';

  function signed(value, digits = 2) {
    const text = Math.abs(value).toFixed(digits);
    if (Number(text) === 0) return (0).toFixed(digits);
    return (value > 0 ? '+' : MINUS) + text;
  }

  function percent(share) {
    return Math.round(share * 100) + '%';
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  }

  function hhmm(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
  }

  function ago(ms) {
    const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (seconds < 5) return 'just now';
    if (seconds < 60) return `${seconds} s ago`;
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return `${minutes} min ago`;
    const hours = Math.round(minutes / 60);
    if (hours < 48) return `${hours} h ago`;
    return new Date(ms).toLocaleDateString();
  }

  function periodText(minutes) {
    if (minutes === 60) return 'hour';
    return minutes % 60 === 0 ? `${minutes / 60} hours` : `${minutes} min`;
  }

  function windowText(seconds) {
    if (!seconds) return '';
    return seconds % 60 === 0 ? `last ${seconds / 60} min` : `last ${seconds} s`;
  }

  function lengthText(seconds) {
    return seconds % 60 === 0 ? `${seconds / 60}-min` : `${seconds}-s`;
  }

  // ---- venue and zone pickers --------------------------------------------------------------------

  // Labels and the mood window come from the aggregator, once (again after a token is entered).
  async function loadMeta() {
    if (LABELS.length) return false;
    const meta = await api('/api/meta');
    LABELS = meta.labels;
    MOOD_WINDOW_S = meta.mood_window_s;
    renderLegend();
    drawChart();
    return true;
  }

  async function loadVenues() {
    clearTimeout(state.venueTimer);
    let venues;
    try {
      if (await loadMeta() && state.venue) showVenue(state.venue, state.zone, true);
      venues = await api('/api/venues');
    } catch (error) {
      report(error);
      if (!state.venues.length && !state.venue) $('venue').replaceChildren(new Option('unavailable', ''));
      state.venueTimer = setTimeout(loadVenues, error instanceof HttpError && error.status === 401 ? REFRESH_MS : VENUE_RETRY_MS);
      return;
    }
    state.venues = Array.isArray(venues) ? venues : [];
    fillVenuePicker();
    if (!state.venues.length) {
      state.venueTimer = setTimeout(loadVenues, VENUE_RETRY_MS);
      if (!state.venue) renderWaiting();
      return;
    }
    state.venueTimer = setTimeout(loadVenues, REFRESH_MS);
    if (!state.venue) selectVenue(state.venues[0].venue);
    else fillZonePicker();
  }

  function fillVenuePicker() {
    const select = $('venue');
    const names = state.venues.map((v) => v.venue);
    if (state.venue && !names.includes(state.venue)) names.push(state.venue);
    select.replaceChildren();
    if (!names.length) {
      select.append(new Option('no venues yet', ''));
      return;
    }
    for (const name of names) {
      const info = state.venues.find((v) => v.venue === name);
      const option = new Option(name, name, false, name === state.venue);
      if (info) option.title = `${info.cameras_online} of ${info.cameras} cameras online`;
      select.append(option);
    }
    select.value = state.venue || names[0];
  }

  function fillZonePicker() {
    const select = $('zone');
    const info = state.venues.find((v) => v.venue === state.venue);
    const zones = info && Array.isArray(info.zones) ? info.zones.slice() : [];
    if (state.zone && !zones.includes(state.zone)) zones.push(state.zone);
    select.replaceChildren(new Option('All zones', ''));
    for (const zone of zones) select.append(new Option(zone, zone));
    select.value = state.zone;
    select.disabled = zones.length === 0;
  }

  function selectVenue(venue) {
    showVenue(venue, venue === state.venue ? state.zone : '', true);
  }

  function showVenue(venue, zone, reconnect) {
    state.venue = venue;
    state.zone = zone;
    $('venue-title').textContent = venue + (zone ? ` \u00b7 ${zone}` : '');
    document.title = `${venue} \u00b7 Emo7ion venue mood`;
    writeHash();
    fillVenuePicker();
    fillZonePicker();
    switchView({ reconnect });
  }

  // Load everything for the current venue/zone afresh; reconnect the stream when the venue changed.
  function switchView({ reconnect }) {
    state.generation += 1;
    state.mood = null;
    state.series = null;
    state.lastSeriesFetch = 0;
    state.lastMoodFetch = 0;
    clearTimeout(state.seriesTimer);
    clearTimeout(state.moodTimer);
    state.seriesTimer = state.moodTimer = null;
    renderMood(null, true);
    drawChart();
    if (reconnect) {
      state.cameras = [];
      renderCameras();
      loadCameras();
      connectStream();
    }
    loadMood();
    loadSeries();
  }

  // ---- data loading ------------------------------------------------------------------------------

  function zoneQuery() {
    return state.zone ? '&zone=' + encodeURIComponent(state.zone) : '';
  }

  async function loadMood() {
    const generation = state.generation;
    state.lastMoodFetch = Date.now();
    try {
      const mood = await api(`/api/venues/${encodeURIComponent(state.venue)}/mood?${zoneQuery().slice(1)}`);
      if (generation === state.generation) setMood(mood);
    } catch (error) {
      report(error);
      if (generation === state.generation && error instanceof HttpError && error.status === 404 && !state.mood) {
        renderMood(null, false, 'No data yet');   // a venue named in the address that has not reported yet
      }
    }
  }

  function stepFor(minutes) {
    // About 60 buckets for an hour or more; never under 30 s, so each bucket holds a few 10 s camera windows.
    return Math.max(30, Math.round(minutes));
  }

  function seriesPath(minutes, step) {
    return `/api/venues/${encodeURIComponent(state.venue)}/timeseries?minutes=${minutes}&step=${step}${zoneQuery()}`;
  }

  function firstDataMs(series) {
    const times = (series && Array.isArray(series.points) ? series.points : [])
      .filter((p) => p.faces > 0).map((p) => Date.parse(p.t)).filter(Number.isFinite);
    return times.length ? Math.min(...times) : null;
  }

  // "Fit data": the shortest readable period holding the venue's data of the last 12 hours, so a venue that
  // started ten minutes ago fills the chart instead of being a sliver at the edge of an hour.
  async function fitMinutes() {
    const longest = FIT_SPANS[FIT_SPANS.length - 1];
    let first = firstDataMs(await api(seriesPath(longest, longest)));   // 60 coarse buckets
    if (first === null) return FIT_SPANS[0];
    if (Date.now() - first < 75 * 60000) first = firstDataMs(await api(seriesPath(90, 60))) ?? first;
    const needed = ((Date.now() - first) / 60000) * 1.1;
    return FIT_SPANS.find((span) => span >= needed) || longest;
  }

  async function loadSeries() {
    const generation = state.generation;
    state.lastSeriesFetch = Date.now();
    try {
      // Fitted again for each venue or zone, and every REFRESH_MS (the data's span only changes slowly).
      if (state.range === 'auto' && (state.fitGeneration !== generation || Date.now() - state.fitAt > REFRESH_MS)) {
        const fitted = await fitMinutes();
        if (generation !== state.generation || state.range !== 'auto') return;
        state.minutes = fitted;
        state.fitGeneration = generation;
        state.fitAt = Date.now();
      }
      const step = stepFor(state.minutes);
      const series = await api(seriesPath(state.minutes, step));
      if (generation === state.generation) {
        state.series = series;
        drawChart();
      }
    } catch (error) {
      report(error);
      if (generation === state.generation && error instanceof HttpError && error.status === 404) {
        state.series = { points: [] };
        drawChart();
      }
    }
  }

  async function loadCameras() {
    const generation = state.generation;
    try {
      const cameras = await api('/api/cameras?venue=' + encodeURIComponent(state.venue));
      if (generation === state.generation) setCameras(cameras);
    } catch (error) { report(error); }
  }

  // Run `load` now or, when it ran less than `interval` ago, once at the end of that interval.
  function throttled(timerKey, lastKey, interval, load) {
    if (state[timerKey]) return;
    const wait = Math.max(0, state[lastKey] + interval - Date.now());
    state[timerKey] = setTimeout(() => { state[timerKey] = null; load(); }, wait);
  }

  // ---- live stream -------------------------------------------------------------------------------

  function connectStream() {
    closeStream();
    if (!state.venue) return;
    const url = '/api/stream?venue=' + encodeURIComponent(state.venue);
    // An EventSource sends no headers: the token rides in a same-site cookie, never in the URL (proxy logs).
    document.cookie = 'emo7ion_token=' + encodeURIComponent(state.token || '') + '; path=/api/stream; SameSite=Strict'
      + (state.token ? '' : '; max-age=0');
    const source = new EventSource(url);
    state.source = source;
    setLive('connecting');
    source.onopen = () => {
      if (source !== state.source) return;
      state.retryDelay = 2000;
      setLive('open');
    };
    source.onerror = () => {
      if (source !== state.source) return;
      if (source.readyState === EventSource.CLOSED) {
        // The server answered with an error status (or not an event stream): the browser gives up, we retry.
        setLive('closed');
        scheduleReconnect();
      } else {
        setLive('connecting');
      }
    };
    source.addEventListener('mood', (event) => {
      if (source !== state.source) return;
      let mood;
      try { mood = JSON.parse(event.data); } catch (error) { report(error); return; }
      if (mood.venue && mood.venue !== state.venue) return;
      touch();
      if (state.zone || mood.zone) {
        // The stream carries the whole venue; a zone's own mood comes from the API.
        throttled('moodTimer', 'lastMoodFetch', SERIES_MIN_INTERVAL_MS, loadMood);
      } else {
        setMood(mood);
      }
      throttled('seriesTimer', 'lastSeriesFetch', SERIES_MIN_INTERVAL_MS, loadSeries);
    });
    source.addEventListener('cameras', (event) => {
      if (source !== state.source) return;
      let cameras;
      try { cameras = JSON.parse(event.data); } catch (error) { report(error); return; }
      touch();
      setCameras(cameras);
    });
  }

  function closeStream() {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    if (state.source) {
      state.source.close();
      state.source = null;
    }
    setLive('idle');
  }

  function scheduleReconnect() {
    const source = state.source;
    if (source) source.close();
    clearTimeout(state.retryTimer);
    state.retryAt = Date.now() + state.retryDelay;
    state.retryTimer = setTimeout(() => {
      if (state.source === source) connectStream();
    }, state.retryDelay);
    state.retryDelay = Math.min(state.retryDelay * 2, 30000);
    updateLiveText();
  }

  function touch() {
    state.lastUpdate = Date.now();
    if (state.streamState !== 'open') setLive('open');
    updateLiveText();
  }

  function setLive(streamState) {
    state.streamState = streamState;
    $('live').dataset.state = streamState;
    updateLiveText();
  }

  function updateLiveText() {
    const text = {
      idle: 'not connected',
      connecting: state.lastUpdate ? 'reconnecting…' : 'connecting…',
      open: 'live',
      closed: 'disconnected',
    }[state.streamState];
    $('live-text').textContent = text;
    let age = '';
    if (state.streamState === 'closed' && state.retryTimer) {
      const seconds = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
      age = `retry in ${seconds} s`;
    }
    const stale = Boolean(state.lastUpdate) && Date.now() - state.lastUpdate > STALE_MS;
    if (state.lastUpdate) {
      const last = `updated ${clock(state.lastUpdate)}` + (stale ? ` (${ago(state.lastUpdate)})` : '');
      age = age ? `${age} · ${last}` : last;
    }
    $('live').dataset.stale = String(stale);
    $('live-age').textContent = age;
  }

  // ---- mood panel --------------------------------------------------------------------------------

  function setMood(mood) {
    state.mood = mood;
    state.moodAt = Date.now();
    renderMood(mood, false);
  }

  function renderWaiting() {
    renderMood(null, false, 'Waiting for the first camera to report');
  }

  function renderMood(mood, loading, message) {
    const panel = $('mood');
    const shares = mood && mood.shares && mood.faces > 0 ? mood.shares : null;
    const dominant = shares ? (mood.dominant || LABELS.reduce((a, b) => (shares[b] > shares[a] ? b : a))) : null;
    panel.dataset.empty = dominant ? 'false' : 'true';

    const dominantEl = $('dominant');
    dominantEl.dataset.emotion = dominant || '';
    dominantEl.textContent = dominant || (loading ? 'Loading…' : message || 'No faces yet');
    dominantEl.style.color = dominant ? COLORS[dominant] : '';
    // People figures (cameras sending v2 windows): the headline; the shares are then the people's votes.
    const people = Boolean(mood && typeof mood.people_seen === 'number');
    $('dominant-share').textContent = dominant
      ? `${percent(shares[dominant])} of ${people ? "people's votes" : 'faces'}`
      : (mood && !loading ? 'nobody has been counted in this window' : '');
    $('mood-window').textContent = mood ? windowText(mood.window_s) + (mood.zone ? ` · zone ${mood.zone}` : '') : '';

    // Positivity: a bar from 0 toward -1 or +1, a marker, and the number.
    const positivity = mood && typeof mood.positivity === 'number' ? Math.max(-1, Math.min(1, mood.positivity)) : null;
    const value = $('positivity');
    const fill = $('gauge-fill');
    const marker = $('gauge-marker');
    value.dataset.value = positivity === null ? '' : String(positivity);
    value.classList.toggle('pos', positivity !== null && positivity >= 0.005);
    value.classList.toggle('neg', positivity !== null && positivity <= -0.005);
    $('gauge').setAttribute('aria-valuenow', positivity === null ? '' : positivity.toFixed(2));
    if (positivity === null) {
      value.textContent = '—';
      fill.style.width = '0';
      marker.style.display = 'none';
    } else {
      value.textContent = signed(positivity);
      const position = (positivity + 1) * 50;
      fill.style.left = Math.min(50, position) + '%';
      fill.style.width = Math.abs(position - 50) + '%';
      fill.style.background = positivity >= 0 ? 'var(--good)' : 'var(--bad)';
      marker.style.display = 'block';
      marker.style.left = position + '%';
    }

    // Trend: change in positivity against the previous window.
    const trend = $('trend');
    if (mood && typeof mood.trend === 'number') {
      const direction = mood.trend > TREND_FLAT ? 'up' : mood.trend < -TREND_FLAT ? 'down' : 'flat';
      trend.dataset.direction = direction;
      trend.textContent = { up: '↑ ', down: '↓ ', flat: '→ ' }[direction]
        + (direction === 'flat' ? 'steady' : signed(mood.trend))
        + ` vs previous ${lengthText(mood.window_s || MOOD_WINDOW_S).replace('-', ' ')}`;
      trend.title = `Change in positivity against the ${lengthText(mood.window_s || MOOD_WINDOW_S)} window `
        + 'before this one';
    } else {
      trend.dataset.direction = 'none';
      trend.textContent = '';
    }

    renderPeople(mood, people);
    $('faces').textContent = mood && typeof mood.faces === 'number' ? mood.faces.toLocaleString() : '—';
    $('faces-label').textContent = 'face detections in the '
      + (windowText(mood && mood.window_s) || windowText(MOOD_WINDOW_S));
    renderCamerasOnline();
    renderStale();

    // Current mix: seven bars in canonical order, the dominant one highlighted.
    const mix = $('mix');
    mix.replaceChildren();
    for (const label of LABELS) {
      const share = shares ? shares[label] || 0 : 0;
      const row = document.createElement('div');
      row.className = 'mix-row' + (label === dominant ? ' top' : '');
      row.dataset.emotion = label;
      const name = document.createElement('span');
      name.className = 'mix-name';
      name.textContent = label;
      const bar = document.createElement('div');
      bar.className = 'mix-bar';
      const inner = document.createElement('div');
      inner.style.width = (share * 100).toFixed(1) + '%';
      inner.style.background = COLORS[label];
      bar.append(inner);
      const pct = document.createElement('span');
      pct.className = 'mix-pct';
      pct.textContent = shares ? percent(share) : '—';
      row.append(name, bar, pct);
      mix.append(row);
    }

    const withheld = mood && mood.withheld_windows ? mood.withheld_windows : 0;
    $('withheld').textContent = withheld
      ? `${withheld} camera window${withheld === 1 ? '' : 's'} withheld for privacy (too few ${people ? 'people' : 'faces'} to report)`
      : 'Counts only: no image or identity ever leaves a camera.';
  }

  // Seconds as a short duration: "45 s", "3.5 min".
  function duration(seconds) {
    if (seconds < 90) return `${Math.round(seconds)} s`;
    return `${(seconds / 60).toFixed(seconds < 600 ? 1 : 0)} min`;
  }

  function renderPeople(mood, people) {
    $('people').hidden = !people;
    $('stats').dataset.minor = String(people);
    $('mood').dataset.people = String(people);
    if (!people) return;
    $('people-in-view').textContent = typeof mood.people_in_view === 'number'
      ? mood.people_in_view.toLocaleString(undefined, { maximumFractionDigits: 1 }) : '—';
    $('people-seen').textContent = mood.people_seen.toLocaleString();
    $('people-seen-label').textContent = 'seen in the ' + (windowText(mood.window_s) || windowText(MOOD_WINDOW_S));
    $('dwell').textContent = typeof mood.dwell_s === 'number' ? duration(mood.dwell_s) : '—';
    $('dwell-label').textContent = typeof mood.dwell_s === 'number'
      ? 'stay of those who left' : 'stay: nobody has left yet';
  }

  function renderCamerasOnline() {
    const mood = state.mood;
    const total = state.cameras.length;
    let online = mood && typeof mood.cameras_online === 'number' ? mood.cameras_online : null;
    if (online === null && total) online = state.cameras.filter((c) => c.state === 'online').length;
    $('cameras-online').textContent = online === null ? '—' : total ? `${online} / ${total}` : String(online);
  }

  // Cameras of the shown venue (and zone) that are online now; null before anything is known.
  function onlineNow() {
    const shown = state.cameras.filter((c) => !state.zone || c.zone === state.zone);
    if (shown.length) return shown.filter((c) => c.state === 'online').length;
    return state.mood && typeof state.mood.cameras_online === 'number' ? state.mood.cameras_online : null;
  }

  // When the venue's newest window ended (from the venue list, refreshed every 30 s), or null.
  function newestWindowMs() {
    const info = state.venues.find((v) => v.venue === state.venue);
    const end = info && info.last_window_end ? Date.parse(info.last_window_end) : NaN;
    return Number.isFinite(end) ? end : null;
  }

  // The newest moment anything was heard from the venue: a camera's last message or the last window's end.
  function newestHeardMs() {
    const known = [newestWindowMs(), ...state.cameras.map((c) => Date.parse(c.last_seen))].filter(Number.isFinite);
    return known.length ? Math.max(...known) : null;
  }

  // Why the mood shown cannot be trusted as "now", or null: no camera online, nothing heard for longer than
  // the mood's own window, or no update for that long because the live connection is down.
  function staleReason() {
    const mood = state.mood;
    if (!mood || !state.venue) return null;
    const windowS = mood.window_s || MOOD_WINDOW_S;
    const newestWindow = newestWindowMs();
    const since = newestWindow === null ? '' : ` \u00b7 newest window ended ${ago(newestWindow)}`;
    if (onlineNow() === 0) return `no camera online${since}`;
    const heard = newestHeardMs();
    if (heard !== null && Date.now() - heard > windowS * 1000) {
      return `nothing heard for over ${lengthText(windowS).replace('-', ' ')}${since}`;
    }
    if (state.streamState !== 'open' && state.moodAt && Date.now() - state.moodAt > windowS * 1000) {
      return `not updated since ${clock(state.moodAt)}: the live connection is down`;
    }
    return null;
  }

  function renderStale() {
    const reason = staleReason();
    const cue = $('stale');
    $('mood').dataset.stale = String(Boolean(reason));
    cue.hidden = !reason;
    if (reason && cue.textContent !== 'Stale: ' + reason) cue.textContent = 'Stale: ' + reason;
    cue.title = reason ? 'The mood shown is not the mood now: it comes from windows received before this.' : '';
  }

  // ---- cameras -----------------------------------------------------------------------------------

  function setCameras(cameras) {
    if (!Array.isArray(cameras)) return;
    state.cameras = cameras.filter((c) => !c.venue || c.venue === state.venue)
      .sort((a, b) => String(a.camera).localeCompare(String(b.camera)));
    renderCameras();
    renderCamerasOnline();
    renderStale();
  }

  function cameraLine(label, value, warn) {
    const line = document.createElement('div');
    line.className = 'camera-line' + (warn ? ' warn' : '');
    const name = document.createElement('span');
    name.textContent = label;
    const bold = document.createElement('b');
    bold.textContent = value;
    line.append(name, bold);
    return line;
  }

  function renderCameras() {
    const list = $('cameras');
    const cameras = state.cameras;
    const online = cameras.filter((c) => c.state === 'online').length;
    $('cameras-summary').textContent = cameras.length ? `${online} of ${cameras.length} online` : '';
    list.replaceChildren();
    if (!cameras.length) {
      const empty = document.createElement('div');
      empty.className = 'muted';
      empty.textContent = state.venue ? 'No cameras have reported for this venue yet' : 'No venue selected';
      list.append(empty);
      return;
    }
    for (const camera of cameras) {
      const cameraState = ['online', 'offline'].includes(camera.state) ? camera.state : 'unknown';
      const card = document.createElement('div');
      card.className = 'camera';
      card.dataset.camera = camera.camera;
      card.dataset.state = cameraState;

      const head = document.createElement('div');
      head.className = 'camera-head';
      const name = document.createElement('span');
      name.className = 'camera-name';
      name.textContent = camera.camera;
      name.title = camera.agent || '';
      const badge = document.createElement('span');
      badge.className = 'badge ' + cameraState;
      badge.textContent = cameraState;
      head.append(name, badge);
      card.append(head);

      card.append(cameraLine('Zone', camera.zone || '—'));
      const seen = camera.last_seen ? Date.parse(camera.last_seen) : NaN;
      const seenLine = cameraLine('Last seen', Number.isFinite(seen) ? ago(seen) : 'never');
      if (Number.isFinite(seen)) {
        seenLine.dataset.seen = String(seen);
        seenLine.title = new Date(seen).toLocaleString();
      }
      card.append(seenLine);
      const health = camera.health;
      if (health) {
        const fps = typeof health.fps === 'number' ? health.fps.toFixed(1) : '—';
        const ms = typeof health.inference_ms === 'number' ? Math.round(health.inference_ms) + ' ms' : '—';
        card.append(cameraLine('Frames analysed', `${fps} fps`));
        const busy = cameraLine('Time per frame', ms);
        busy.title = 'Face detection and emotion classification of one frame, averaged since the last report';
        card.append(busy);
        if (health.source_ok === false) card.append(cameraLine('Video source', 'failing', true));
        if (health.outbox_depth > 0) card.append(cameraLine('Not yet stored', `${health.outbox_depth} windows in its outbox`, true));
      } else {
        card.append(cameraLine('Frames analysed', 'no report'));
      }
      list.append(card);
    }
  }

  function refreshCameraAges() {
    for (const line of document.querySelectorAll('.camera-line[data-seen]')) {
      line.querySelector('b').textContent = ago(Number(line.dataset.seen));
    }
  }

  // ---- stacked area chart ------------------------------------------------------------------------

  function svg(tag, attrs, parent) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (parent) parent.append(node);
    return node;
  }

  function niceCeiling(value) {
    if (value <= 0) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const factor of [1, 2, 2.5, 5, 10]) {
      if (factor * power >= value) return factor * power;
    }
    return 10 * power;
  }

  function tickMinutes(rangeMinutes, width) {
    const most = Math.max(2, Math.floor(width / 90));
    for (const step of [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440]) {
      if (rangeMinutes / step <= most) return step;
    }
    return 1440;
  }

  // Points of the current series as {t (ms), end (ms), faces, values: {label: number}}, only those with faces.
  function chartPoints(series, scale) {
    if (!series || !Array.isArray(series.points)) return [];
    const stepMs = (series.step_s || stepFor(state.minutes)) * 1000;
    const points = [];
    for (const point of series.points) {
      const t = Date.parse(point.t);
      if (!Number.isFinite(t) || !point.faces) continue;
      const source = scale === 'share' ? point.shares : point.counts;
      if (!source) continue;
      const values = {};
      for (const label of LABELS) values[label] = Number(source[label]) || 0;
      points.push({ t, end: t + stepMs, faces: point.faces, values });
    }
    points.sort((a, b) => a.t - b.t);
    return points;
  }

  // Consecutive buckets form one run; a missing bucket breaks the areas instead of bridging the gap.
  function runsOf(points) {
    const runs = [];
    let run = [];
    for (const point of points) {
      if (run.length && point.t - run[run.length - 1].end > 1000) {
        runs.push(run);
        run = [];
      }
      run.push(point);
    }
    if (run.length) runs.push(run);
    return runs;
  }

  function drawChart() {
    const box = $('chart');
    const root = $('chart-svg');
    const width = Math.max(200, box.clientWidth);
    const height = Math.max(150, box.clientHeight);
    root.setAttribute('viewBox', `0 0 ${width} ${height}`);
    root.replaceChildren();

    const scale = state.scale;
    const points = chartPoints(state.series, scale);
    const margin = { left: 48, right: 14, top: 8, bottom: 26 };
    const plotW = width - margin.left - margin.right;
    const plotH = height - margin.top - margin.bottom;
    const rangeMs = state.minutes * 60000;
    const lastEnd = points.length ? points[points.length - 1].end : 0;
    const end = Math.max(Date.now(), lastEnd);
    const start = end - rangeMs;
    const visible = points.filter((p) => p.end > start);

    let yMax = 1;
    if (scale !== 'share') {
      const tallest = visible.reduce((most, p) => Math.max(most, LABELS.reduce((s, l) => s + p.values[l], 0)), 0);
      yMax = niceCeiling(tallest || 1);
    }
    const x = (t) => margin.left + ((Math.max(start, Math.min(end, t)) - start) / rangeMs) * plotW;
    const y = (v) => margin.top + plotH - (v / yMax) * plotH;

    // Grid and y labels.
    const grid = svg('g', { class: 'grid' }, root);
    const yTicks = 4;
    for (let i = 0; i <= yTicks; i += 1) {
      const value = (yMax * i) / yTicks;
      const yy = Math.round(y(value)) + 0.5;
      svg('line', { x1: margin.left, x2: margin.left + plotW, y1: yy, y2: yy }, grid);
      const label = svg('text', { x: margin.left - 8, y: yy + 4, 'text-anchor': 'end' }, root);
      label.textContent = scale === 'share' ? Math.round(value * 100) + '%' : String(Math.round(value * 10) / 10);
    }

    // Time axis.
    const every = tickMinutes(state.minutes, plotW) * 60000;
    const offset = new Date(start).getTimezoneOffset() * 60000;
    for (let t = Math.ceil((start - offset) / every) * every + offset; t <= end; t += every) {
      const xx = Math.round(x(t)) + 0.5;
      svg('line', { x1: xx, x2: xx, y1: margin.top, y2: margin.top + plotH }, grid);
      const label = svg('text', { x: xx, y: height - 7, 'text-anchor': 'middle' }, root);
      label.textContent = hhmm(t);
    }

    // One path per emotion, stacked bottom-up in canonical order, one closed sub-path per run of buckets.
    const areas = svg('g', { class: 'areas' }, root);
    const runs = runsOf(visible);
    const paths = {};
    for (const label of LABELS) paths[label] = [];
    for (const run of runs) {
      const xs = [];        // x of each vertex: bucket start of the first, centres, bucket end of the last
      const rows = [];      // the point whose values each vertex takes
      xs.push(x(run[0].t)); rows.push(run[0]);
      for (const point of run) { xs.push(x((point.t + point.end) / 2)); rows.push(point); }
      xs.push(x(run[run.length - 1].end)); rows.push(run[run.length - 1]);
      const base = rows.map(() => 0);
      for (const label of LABELS) {
        const top = rows.map((row, i) => base[i] + row.values[label]);
        if (top.some((v, i) => v > base[i])) {
          let d = '';
          xs.forEach((xx, i) => { d += (i ? 'L' : 'M') + xx.toFixed(1) + ',' + y(top[i]).toFixed(1); });
          for (let i = xs.length - 1; i >= 0; i -= 1) d += 'L' + xs[i].toFixed(1) + ',' + y(base[i]).toFixed(1);
          paths[label].push(d + 'Z');
        }
        top.forEach((v, i) => { base[i] = v; });
      }
    }
    for (const label of LABELS) {
      if (!paths[label].length) continue;
      svg('path', { class: 'area', 'data-emotion': label, fill: COLORS[label], d: paths[label].join(' ') }, areas);
    }

    svg('line', {
      class: 'axis-line', x1: margin.left, x2: margin.left + plotW,
      y1: margin.top + plotH + 0.5, y2: margin.top + plotH + 0.5,
    }, root);

    // Hover: a cursor line and the bucket's numbers.
    const tip = $('chart-tip');
    tip.hidden = true;
    if (state.hover !== null && visible.length) {
      const t = start + ((state.hover - margin.left) / plotW) * rangeMs;
      const point = visible.find((p) => p.t <= t && t < p.end);
      if (point) {
        const xx = x((point.t + point.end) / 2);
        svg('line', { class: 'cursor', x1: xx, x2: xx, y1: margin.top, y2: margin.top + plotH }, root);
        showTip(point, xx, width);
      }
    }

    drawSpark(start, end);
    root.dataset.points = String(visible.length);
    $('chart-empty').hidden = visible.length > 0 || !state.venue;
    $('chart-empty').textContent = state.series ? 'No face detections in this period yet' : 'Loading…';
  }

  // Positivity per bucket over the chart's period: a line, green above zero and red below.
  function drawSpark(start, end) {
    const root = $('spark');
    const width = Math.max(100, root.clientWidth);
    const height = Math.max(40, root.clientHeight);
    root.setAttribute('viewBox', `0 0 ${width} ${height}`);
    root.replaceChildren();
    const pad = 4;
    const x = (t) => ((t - start) / (end - start)) * width;
    const y = (v) => pad + ((1 - v) / 2) * (height - 2 * pad);
    svg('line', { class: 'zero', x1: 0, x2: width, y1: y(0), y2: y(0) }, root);
    const points = (state.series && Array.isArray(state.series.points) ? state.series.points : [])
      .map((p) => ({ t: Date.parse(p.t), v: p.positivity }))
      .filter((p) => Number.isFinite(p.t) && typeof p.v === 'number' && p.t >= start)
      .sort((a, b) => a.t - b.t);
    const stepMs = ((state.series && state.series.step_s) || stepFor(state.minutes)) * 1000;
    const runs = [];
    for (const point of points) {
      const run = runs[runs.length - 1];
      if (run && point.t - run[run.length - 1].t <= stepMs + 1000) run.push(point);
      else runs.push([point]);
    }
    for (const run of runs) {
      const xs = run.length > 1 ? run.map((p) => x(p.t + stepMs / 2)) : [x(run[0].t), x(run[0].t + stepMs)];
      const vs = run.length > 1 ? run.map((p) => p.v) : [run[0].v, run[0].v];
      const line = xs.map((xx, i) => `${xx.toFixed(1)},${y(vs[i]).toFixed(1)}`).join(' ');
      const zero = y(0).toFixed(1);
      for (const [cls, clip] of [['pos', (v) => Math.max(0, v)], ['neg', (v) => Math.min(0, v)]]) {
        const top = xs.map((xx, i) => `${xx.toFixed(1)},${y(clip(vs[i])).toFixed(1)}`).join(' ');
        svg('polygon', {
          class: cls, points: `${xs[0].toFixed(1)},${zero} ${top} ${xs[xs.length - 1].toFixed(1)},${zero}`,
        }, root);
      }
      svg('polyline', { class: 'line', points: line }, root);
    }
    $('spark-period').textContent = 'over the last ' + periodText(state.minutes);
    svg('text', { x: 2, y: 10 }, root).textContent = '+1';
    svg('text', { x: 2, y: height - 2 }, root).textContent = MINUS + '1';
  }

  function showTip(point, xx, width) {
    const tip = $('chart-tip');
    tip.replaceChildren();
    const head = document.createElement('div');
    head.className = 'tip-head';
    head.textContent = `${hhmm(point.t)}–${hhmm(point.end)} · ${point.faces} face detections`;
    tip.append(head);
    for (const label of LABELS.slice().reverse()) {
      const row = document.createElement('div');
      row.className = 'tip-row';
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.background = COLORS[label];
      const name = document.createElement('span');
      name.textContent = label;
      const value = document.createElement('span');
      const v = point.values[label];
      value.textContent = state.scale === 'share' ? percent(v) : String(v);
      row.append(swatch, name, value);
      tip.append(row);
    }
    tip.hidden = false;
    const left = xx + 14 + 170 > width ? xx - 14 - tip.offsetWidth : xx + 14;
    tip.style.left = left + 'px';
    tip.style.top = '10px';
  }

  function renderLegend() {
    const legend = $('legend');
    legend.replaceChildren();
    for (const label of LABELS.slice().reverse()) {   // top of the stack first, as the eye reads it
      const item = document.createElement('span');
      item.className = 'legend-item';
      item.dataset.emotion = label;
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.background = COLORS[label];
      const name = document.createElement('span');
      name.textContent = label;
      item.append(swatch, name);
      legend.append(item);
    }
  }

  function setScale(scale) {
    state.scale = scale;
    for (const [id, value] of [['scale-share', 'share'], ['scale-faces', 'faces']]) {
      $(id).classList.toggle('active', scale === value);
      $(id).setAttribute('aria-pressed', String(scale === value));
    }
    drawChart();
  }

  // ---- start -------------------------------------------------------------------------------------

  function applyHash() {
    const wanted = readHash();
    const tokenChanged = wanted.token !== state.token;
    state.token = wanted.token;
    state.range = wanted.range;
    if (state.range !== 'auto') state.minutes = state.range;
    state.fitGeneration = -1;
    const rangeSelect = $('range');
    if (![...rangeSelect.options].some((o) => o.value === String(state.range))) {
      rangeSelect.append(new Option(`${state.range} min`, String(state.range)));
    }
    rangeSelect.value = String(state.range);
    return { wanted, tokenChanged };
  }

  function start() {
    const { wanted } = applyHash();
    renderMood(null, true);
    renderCameras();
    drawChart();
    // The labels first: a chart parsed without them would stay empty. Without a token yet, loadVenues retries.
    loadMeta().catch(report).finally(() => {
      if (wanted.venue) showVenue(wanted.venue, wanted.zone, true);
      loadVenues();
    });

    $('venue').addEventListener('change', (event) => {
      if (event.target.value) selectVenue(event.target.value);
    });
    $('zone').addEventListener('change', (event) => showVenue(state.venue, event.target.value, false));
    $('range').addEventListener('change', (event) => {
      state.range = event.target.value === 'auto' ? 'auto' : Number(event.target.value) || 60;
      if (state.range !== 'auto') state.minutes = state.range;
      state.fitGeneration = -1;
      writeHash();
      state.series = null;
      drawChart();
      loadSeries();
    });
    $('scale-share').addEventListener('click', () => setScale('share'));
    $('scale-faces').addEventListener('click', () => setScale('faces'));
    window.addEventListener('hashchange', () => {
      // Someone edited the address: follow it.
      const { wanted, tokenChanged } = applyHash();
      const venue = wanted.venue || state.venue;
      if (!venue) {
        loadVenues();
      } else if (tokenChanged || venue !== state.venue) {
        showVenue(venue, wanted.zone, true);
        if (tokenChanged) loadVenues();
      } else if (wanted.zone !== state.zone) {
        showVenue(venue, wanted.zone, false);
      } else {
        state.series = null;
        drawChart();
        loadSeries();
      }
    });

    const svgRoot = $('chart-svg');
    svgRoot.addEventListener('mousemove', (event) => {
      const rect = svgRoot.getBoundingClientRect();
      state.hover = event.clientX - rect.left;
      drawChart();
    });
    svgRoot.addEventListener('mouseleave', () => { state.hover = null; drawChart(); });
    let resizeFrame = 0;
    const observer = new ResizeObserver(() => {
      cancelAnimationFrame(resizeFrame);
      resizeFrame = requestAnimationFrame(drawChart);
    });
    observer.observe($('chart'));
    observer.observe($('spark'));

    setInterval(() => {
      updateLiveText();
      refreshCameraAges();
      renderStale();
    }, 1000);
    setInterval(() => {
      if (!state.venue) return;
      throttled('seriesTimer', 'lastSeriesFetch', SERIES_MIN_INTERVAL_MS, loadSeries);
      if (state.streamState !== 'open') {
        loadMood();
        loadCameras();
      }
    }, REFRESH_MS);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
