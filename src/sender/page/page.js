// camstream's page: logs in with the pairing code, plays the sender's stream live (fMP4 into
// Media Source Extensions, or JPEG frames on a canvas), acks what it shows and keeps an overlay
// of fps, latency and bit rate. The messages are in the README ("Browser").
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const video = $('video'), canvas = $('canvas'), form = $('login'), status = $('status');
  const overlay = $('overlay'), toggle = $('toggle'), input = $('code'), reason = $('reason');
  const MS = window.ManagedMediaSource || window.MediaSource;

  const stats = { shown: 0, unshown: 0, fps: 0, latency_ms: null, kbps: 0, mode: 'none', state: 'connecting' };
  // The close code of a sender that is full (--max-viewers); see src/sender/web.rs.
  const SENDER_FULL = 4002;
  const latencies = [];
  window.camstream = { stats, latencies };

  // The page's wall clock in µs since the epoch, and the sender's clock minus it.
  const nowUs = () => (performance.timeOrigin + performance.now()) * 1000;
  let offset = null;
  // The last minute of clock readings; the one with the shortest round trip sets the offset, so
  // it follows a clock that drifts.
  let clockSamples = [];

  let ws = null, gotStream = false, backoff = 500, clockTimer = 0, retryTimer = 0, fps = 30;
  let mse = null; // {ms, sb, url, queue, current, initCapture, seeked}
  let jpegChain = Promise.resolve();
  let lastLatencyUs = null;
  // The last second's shown frames, latencies and payload bytes, as [performance.now(), value].
  const recent = { shown: [], latency: [], bytes: [] };

  function setState(state, text) {
    stats.state = state;
    status.textContent = text || '';
    status.hidden = !text;
    showOverlay();
  }

  // Login: the code from #code=CODE, or typed.
  function showLogin(why) {
    teardown();
    setState('login');
    reason.textContent = why || '';
    form.hidden = false;
    input.focus();
  }

  async function login(code) {
    form.hidden = true;
    setState('connecting', 'logging in…');
    let answer;
    try {
      answer = await fetch('/login', {
        method: 'POST', body: code, credentials: 'same-origin', cache: 'no-store',
        headers: { 'Content-Type': 'text/plain; charset=utf-8' },
      });
    } catch (e) {
      showLogin('cannot reach the sender: ' + e.message);
      return;
    }
    if (answer.status === 204) {
      connect();
      return;
    }
    const text = (await answer.text().catch(() => '')).trim();
    if (answer.status === 429) {
      const wait = parseInt(answer.headers.get('Retry-After'), 10);
      showLogin((text || 'too many wrong codes') + (wait >= 0 ? ` (try again in ${wait} s)` : ''));
      if (wait > 0) {
        const button = form.querySelector('button');
        button.disabled = true;
        setTimeout(() => { button.disabled = false; }, wait * 1000);
      }
    } else {
      showLogin(text || `the sender answered ${answer.status}`);
    }
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (input.value.trim()) login(input.value.trim());
  });

  // The stream socket.
  function connect() {
    clearTimeout(retryTimer);
    form.hidden = true;
    gotStream = false;
    setState('connecting', 'connecting…');
    const sock = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
    sock.binaryType = 'arraybuffer';
    ws = sock;
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      if (typeof ev.data === 'string') onText(JSON.parse(ev.data));
      else onBinary(ev.data);
    };
    sock.onclose = (ev) => { if (ws === sock) closed(ev); };
  }

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }

  async function closed(ev) {
    const hadStream = gotStream;
    ws = null;
    teardown();
    if (ev && ev.code === SENDER_FULL) {
      // The sender is full (--max-viewers): say so, and try again.
      setState('full', `${ev.reason}; trying again`);
    } else if (!hadStream) {
      // Refused (no or stale cookie) or the sender is down: a browser cannot tell which from the
      // socket, so ask for a file that needs no credentials.
      const up = await fetch('/page.css', { cache: 'no-store' }).then((r) => r.ok, () => false);
      if (up) {
        showLogin('');
        return;
      }
    }
    if (stats.state !== 'full') setState('connecting', 'reconnecting…');
    retryTimer = setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 5000);
  }

  function teardown() {
    clearInterval(clockTimer);
    if (ws) { const sock = ws; ws = null; sock.close(); }
    closeMse();
    jpegChain = Promise.resolve();
    offset = null;
    clockSamples = [];
    stats.mode = 'none';
  }

  function onText(msg) {
    if (msg.stream) onStream(msg.stream);
    else if (msg.clock) onClock(msg.clock);
  }

  function onStream(s) {
    gotStream = true;
    fps = s.fps > 0 ? s.fps : 30;
    backoff = 500;
    const useMse = !!(s.mime && MS && MS.isTypeSupported(s.mime));
    stats.mode = useMse ? 'mse' : 'jpeg';
    video.hidden = !useMse;
    canvas.hidden = useMse;
    if (useMse) openMse(s.mime, []);
    else { canvas.width = s.width; canvas.height = s.height; }
    setState('connecting', 'waiting for the first frame…');
    send({ start: { mse: useMse } });
    sendClock();
    clockTimer = setInterval(sendClock, 5000);
  }

  function sendClock() { send({ clock: { t1: nowUs() } }); }

  function onClock({ t1, t2, t3 }) {
    const t4 = nowUs();
    clockSamples.push({ rtt: (t4 - t1) - (t3 - t2), offset: ((t2 - t1) + (t3 - t4)) / 2 });
    if (clockSamples.length > 12) clockSamples.shift();
    offset = clockSamples.reduce((a, b) => (b.rtt < a.rtt ? b : a)).offset;
  }

  function onBinary(buf) {
    if (buf.byteLength < 18) return;
    const view = new DataView(buf);
    const u64 = (at) => view.getUint32(at, true) + view.getUint32(at + 4, true) * 4294967296;
    const frame = {
      kind: view.getUint8(0), seq: u64(1), capture: u64(9), key: view.getUint8(17) === 1,
      payload: new Uint8Array(buf, 18), ws,
    };
    recent.bytes.push([performance.now(), frame.payload.byteLength]);
    if (frame.kind === 2 && stats.mode === 'jpeg') {
      jpegChain = jpegChain.then(() => drawJpeg(frame));
    } else if (frame.kind <= 1 && mse) {
      if (frame.kind === 0 && mse.initCapture !== null) openMse(mse.mime, [frame]); // re-muxed
      else {
        // Acked as it arrives while appends keep up (setting up MSE can take longer than the
        // sender lets frames wait, which would skip to the next keyframe); once appends fall
        // behind, only as each is appended, so the sender sends no faster than this plays.
        if (frame.kind === 1 && mse.queue.length < 2) {
          frame.acked = true;
          ack(frame.seq, lastLatencyUs);
        }
        mse.queue.push(frame);
        pump();
      }
    } else if (frame.kind !== 0) {
      ack(frame.seq); // not for this mode; never hold the sender up
    }
  }

  function ack(seq, latencyUs) {
    const msg = { seq };
    if (latencyUs != null) msg.latency_us = Math.round(latencyUs);
    send({ ack: msg });
  }

  function latencyUs(capture, shownPageUs) {
    return offset === null ? null : shownPageUs + offset - capture;
  }

  function frameShown(latency) {
    const now = performance.now();
    stats.shown += 1;
    recent.shown.push([now, 1]);
    if (latency !== null) {
      lastLatencyUs = latency;
      latencies.push(latency / 1000);
      if (latencies.length > 600) latencies.shift();
      recent.latency.push([now, latency / 1000]);
    }
    if (stats.state !== 'playing') setState('playing');
  }

  // JPEG mode: decode, draw, ack.
  async function drawJpeg(frame) {
    if (frame.ws !== ws) return; // from a closed connection
    try {
      const bitmap = await createImageBitmap(new Blob([frame.payload], { type: 'image/jpeg' }));
      if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
      }
      canvas.getContext('2d').drawImage(bitmap, 0, 0);
      bitmap.close();
      // Shown with the next frame the browser paints, not when drawn into the canvas.
      requestAnimationFrame(() => {
        const latency = latencyUs(frame.capture, nowUs());
        frameShown(latency);
        ack(frame.seq, latency);
      });
    } catch (e) {
      ack(frame.seq);
    }
  }

  // MSE mode: one SourceBuffer, appends queued and driven by updateend.
  function openMse(mime, queue) {
    closeMse();
    const ms = new MS();
    if (window.ManagedMediaSource && ms instanceof window.ManagedMediaSource) {
      video.disableRemotePlayback = true;
    }
    const m = { ms, sb: null, mime, queue, current: null, initCapture: null, seeked: false };
    m.url = URL.createObjectURL(ms);
    mse = m;
    ms.addEventListener('sourceopen', () => {
      if (mse !== m) return;
      try {
        m.sb = ms.addSourceBuffer(mime);
        m.sb.mode = 'segments';
      } catch (e) {
        failMse();
        return;
      }
      m.sb.addEventListener('updateend', () => appended(m));
      m.sb.addEventListener('error', failMse);
      pump();
    }, { once: true });
    video.src = m.url;
    video.play().catch(() => {});
  }

  function closeMse() {
    if (!mse) return;
    const old = mse;
    mse = null;
    // Fragments that will never be appended are acked, so the sender keeps sending.
    for (const f of old.queue) if (f.kind === 1 && !f.acked) ack(f.seq);
    if (old.current && old.current.kind === 1 && !old.current.acked) ack(old.current.seq);
    video.removeAttribute('src');
    video.load();
    URL.revokeObjectURL(old.url);
  }

  function failMse() {
    setState('error', 'the browser could not play the stream; reconnecting…');
    if (ws) ws.close(); // closed() reconnects
  }

  function pump() {
    const m = mse;
    if (!m || !m.sb || m.sb.updating || m.current || !m.queue.length) return;
    const item = m.current = m.queue.shift();
    try {
      if (item.remove) m.sb.remove(item.remove[0], item.remove[1]);
      else {
        if (item.kind === 0) m.initCapture = item.capture;
        m.sb.appendBuffer(item.payload);
      }
    } catch (e) {
      m.current = null;
      if (item.kind === 1 && !item.acked) ack(item.seq);
      failMse();
    }
  }

  function appended(m) {
    if (mse !== m) return;
    const item = m.current;
    m.current = null;
    if (item && item.kind === 1) {
      if (!m.seeked && video.buffered.length) {
        // A late joiner's media time does not start at 0.
        video.currentTime = video.buffered.start(0);
        m.seeked = true;
        video.play().catch(() => {});
      }
      if (!hasVideoFrameCallback) frameShown(latencyUs(item.capture, nowUs()));
      if (!item.acked) ack(item.seq, lastLatencyUs);
    }
    pump();
  }

  const hasVideoFrameCallback = 'requestVideoFrameCallback' in HTMLVideoElement.prototype;
  function onVideoFrame(_now, meta) {
    if (mse && mse.initCapture !== null && stats.mode === 'mse') {
      const capture = mse.initCapture + meta.mediaTime * 1e6;
      const shownUs = (performance.timeOrigin + meta.expectedDisplayTime) * 1000;
      frameShown(latencyUs(capture, shownUs));
    }
    video.requestVideoFrameCallback(onVideoFrame);
  }
  if (hasVideoFrameCallback) video.requestVideoFrameCallback(onVideoFrame);

  // Frames received but never shown (the decoder dropped them, or the live edge jumped past
  // them), told to the sender: the page acks frames as they arrive, so without this a machine
  // too busy to play the stream would look like one keeping up, and --bitrate auto would not
  // come down for it.
  let unshownSince = 0, droppedBefore = 0;
  function unshown(frames) {
    if (frames > 0) { unshownSince += frames; stats.unshown += frames; }
  }
  function reportUnshown() {
    const quality = mse && video.getVideoPlaybackQuality && video.getVideoPlaybackQuality();
    if (quality) {
      // The count starts again with each new source.
      if (quality.droppedVideoFrames < droppedBefore) droppedBefore = 0;
      unshown(quality.droppedVideoFrames - droppedBefore);
      droppedBefore = quality.droppedVideoFrames;
    }
    if (unshownSince > 0) send({ unshown: { frames: unshownSince } });
    unshownSince = 0;
  }

  // The live edge, every 250 ms: jump when far behind or stuck in a gap, else catch up gently.
  let lastTime = -1, lastTrim = 0;
  function liveEdge() {
    const m = mse;
    if (!m || !m.seeked || !video.buffered.length) return;
    const b = video.buffered, end = b.end(b.length - 1), t = video.currentTime;
    const lag = end - t;
    const stalled = lag > 0.1 && (t === lastTime || video.paused);
    lastTime = t;
    if (lag > 0.5 || stalled) {
      // Stuck at a gap is frames the sender skipped (it counts those); far behind while
      // playing is frames that came faster than this machine plays them.
      if (!stalled) unshown(Math.round((end - 0.05 - t) * fps));
      video.currentTime = end - 0.05;
      video.playbackRate = 1;
      if (video.paused) video.play().catch(() => {});
    } else {
      video.playbackRate = lag > 0.1 ? 1.1 : 1.0;
    }
    const now = performance.now();
    if (now - lastTrim > 5000 && t - 10 > b.start(0)) {
      lastTrim = now;
      m.queue.push({ remove: [0, t - 10] });
      pump();
    }
  }

  // Stats and the overlay.
  function tick() {
    liveEdge();
    reportUnshown();
    const since = performance.now() - 1000;
    for (const list of Object.values(recent)) while (list.length && list[0][0] < since) list.shift();
    stats.fps = recent.shown.length;
    const lat = recent.latency.map((x) => x[1]).sort((a, b) => a - b);
    stats.latency_ms = lat.length ? Math.round(lat[lat.length >> 1]) : null;
    stats.kbps = Math.round(recent.bytes.reduce((sum, x) => sum + x[1], 0) * 8 / 1000);
    overlay.textContent = `${stats.fps} fps\n${stats.latency_ms ?? '–'} ms\n`
      + `${stats.kbps} kbit/s\n${stats.mode}`;
  }
  setInterval(tick, 250);

  // The numbers, when wanted, over the video: never over the login form, where they would
  // only say "0 fps".
  let overlayWanted = true;
  function showOverlay() {
    overlay.hidden = !overlayWanted || stats.state === 'login';
    toggle.hidden = stats.state === 'login';
  }
  function setOverlay(on) {
    overlayWanted = on;
    showOverlay();
    try { localStorage.setItem('camstream.overlay', on ? '1' : '0'); } catch (e) { /* private */ }
  }
  let saved = null;
  try { saved = localStorage.getItem('camstream.overlay'); } catch (e) { /* private */ }
  setOverlay(saved !== '0');
  toggle.addEventListener('click', () => setOverlay(!overlayWanted));
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'o' && ev.target !== input && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      setOverlay(!overlayWanted);
    }
  });

  // Start: a code in the address logs in (and leaves the address bar); else try the socket.
  const code = new URLSearchParams(location.hash.slice(1)).get('code');
  if (code) {
    history.replaceState(null, '', location.pathname);
    login(code);
  } else {
    connect();
  }
})();
