// Lumbo live connection shared by the patient and therapist pages.
// One WebSocket to /ws/live with automatic reconnection, a schema-version check against
// /api/schema/frame, and staleness detection (no frame / no message at all for a while).
"use strict";

const LUMBO_SCHEMA_VERSION = 1; // the frame schema this page was written for

const Lumbo = {
  /** fetch JSON from the REST API; throws Error with the server's message on 4xx/5xx */
  async api(method, path, body) {
    const opts = { method, headers: {} };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(Lumbo.withPatient(path), opts);
    if (res.status === 401) { Lumbo.toLogin(); throw new Error("Sign in again."); }
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const msg = (data && (data.message || (typeof data.detail === "string" ? data.detail : null)))
        || `${res.status} ${res.statusText}`;
      throw new Error(msg);
    }
    return data;
  },

  /** the sign-in has ended (or never was): to the login page, back here afterwards */
  toLogin() {
    if (window.lumboSigningOut || window.lumboToLogin) return; // already on its way there
    window.lumboToLogin = true; // one navigation: several 401s at once must not abort it
    location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
  },

  /** `?patient_id=` of this page (a therapist watching one of several patients) passed on to
   *  the session API and the WebSocket */
  withPatient(path) {
    const pid = new URLSearchParams(location.search).get("patient_id");
    const scoped = path.startsWith("/api/session") || path.startsWith("/ws/live") ||
      (path.startsWith("/api/practice/") && !path.startsWith("/api/practice/patients/"));
    if (!pid || !scoped || /[?&]patient_id=/.test(path)) return path;
    return path + (path.includes("?") ? "&" : "?") + "patient_id=" + encodeURIComponent(pid);
  },

  /** engine zone ("rest" | "below" | "in" | "over") -> page kind ("neutral" | "below" | "in" | "above") */
  zoneKind(zone) {
    return { rest: "neutral", below: "below", in: "in", over: "above" }[zone] || "neutral";
  },

  /** recording health (frame.storage / status.storage): the #storage-warning banner of a page
   * shows while storage fails (live feedback goes on); the therapist sees the server's reason */
  showStorage(storage) {
    const el = document.getElementById("storage-warning");
    if (!el || storage === undefined) return;
    const failing = !!storage && storage.healthy === false;
    el.hidden = !failing;
    if (failing && el.dataset.audience === "therapist") {
      const text = document.getElementById("storage-text");
      const dropped = storage.dropped_samples ? ` ${storage.dropped_samples} samples could not be kept.` : "";
      if (text) text.textContent = "Recording is failing: " + (storage.last_error || "storage error") +
        " Live feedback goes on; the data is kept in memory and retried." + dropped;
    }
  },

  fmt(x, digits = 0, unit = "") {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    return Number(x).toFixed(digits) + unit;
  },
};

/**
 * LiveConnection: callbacks onFrame(frame), onStatus(sessionStatus), onHeartbeat(hb),
 * onConnection(state) with state in "connecting" | "live" | "no-data" | "stale" | "closed",
 * onSchemaError(message).
 */
class LiveConnection {
  constructor(handlers, opts = {}) {
    this.h = handlers;
    this.staleAfterMs = opts.staleAfterMs || 2500; // no message at all: connection is stale
    this.noDataAfterMs = opts.noDataAfterMs || 1500; // heartbeats but no frames
    this.ws = null;
    this.backoffMs = 500;
    this.lastMessageAt = 0;
    this.lastFrameAt = 0;
    this.state = "connecting";
    this.sessionActive = false;
    this.schemaOk = true;
    this.stopped = false;
    this.frames = 0;
    this._timer = setInterval(() => this._checkStale(), 250);
    this.listeners = []; // extra message listeners (practice-*.js), after the page's own
  }

  async start() {
    await this._checkSchema();
    this._connect();
  }

  async _checkSchema() {
    try {
      const s = await Lumbo.api("GET", "/api/schema/frame");
      const v = s.schema_version ?? (s.properties && s.properties.schema_version && s.properties.schema_version.const);
      if (v !== LUMBO_SCHEMA_VERSION) this._schemaError(v);
    } catch (e) {
      // the server may be restarting; the frames' own schema_version is checked as well
    }
  }

  _schemaError(v) {
    this.schemaOk = false;
    if (this.h.onSchemaError) {
      this.h.onSchemaError(`This page understands live data version ${LUMBO_SCHEMA_VERSION}, ` +
        `but the server sends version ${v}. Reload the page; if this stays, page and server do not match.`);
    }
  }

  _connect() {
    if (this.stopped) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    this._setState("connecting");
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}${Lumbo.withPatient("/ws/live")}`);
    } catch (e) {
      this._retry();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => { opened = true; this.backoffMs = 500; this.lastMessageAt = performance.now(); };
    ws.onmessage = (ev) => this._onMessage(ev.data);
    ws.onclose = (ev) => {
      // refused or closed for policy (1008: signed out): ask the API, which sends us to login on 401
      if (!opened || ev.code === 1008) Lumbo.api("GET", "/api/auth/me").catch(() => {});
      if (this.ws === ws) { this.ws = null; this._setState("closed"); this._retry(); }
    };
    ws.onerror = () => { try { ws.close(); } catch (e) { /* ignore */ } };
  }

  _retry() {
    if (this.stopped) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    setTimeout(() => this._connect(), delay);
  }

  /** listen to every message as well (after the page's handlers), e.g. graded practice */
  addListener(fn) { this.listeners.push(fn); }

  _onMessage(text) {
    let msg;
    try { msg = JSON.parse(text); } catch (e) { return; }
    const now = performance.now();
    this.lastMessageAt = now;
    if (msg.schema_version !== undefined && msg.schema_version !== LUMBO_SCHEMA_VERSION) {
      if (this.schemaOk) this._schemaError(msg.schema_version);
      return;
    }
    if (msg.type === "frame" || msg.type === "status") {
      Lumbo.showStorage(msg.type === "frame" ? msg.storage : msg.session && msg.session.storage);
    }
    if (this.listeners.length) queueMicrotask(() => { for (const fn of this.listeners) { try { fn(msg); } catch (e) { console.error(e); } } });
    if (msg.type === "frame") {
      this.lastFrameAt = now;
      this.frames += 1;
      this.sessionActive = true;
      this._setState("live");
      if (this.h.onFrame) this.h.onFrame(msg);
    } else if (msg.type === "heartbeat") {
      this.sessionActive = ["calibrating", "running", "starting"].includes(msg.state);
      if (this.h.onHeartbeat) this.h.onHeartbeat(msg);
      this._checkStale();
    } else if (msg.type === "status") {
      const st = msg.session && msg.session.state;
      this.sessionActive = ["calibrating", "running", "starting"].includes(st);
      if (this.h.onStatus) this.h.onStatus(msg.session);
      this._checkStale();
    }
  }

  _checkStale() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    const now = performance.now();
    if (now - this.lastMessageAt > this.staleAfterMs) {
      this._setState("stale");
      // a silent socket is probably dead: reconnect
      if (now - this.lastMessageAt > 2 * this.staleAfterMs) { try { this.ws.close(); } catch (e) { /* */ } }
    } else if (this.sessionActive && now - this.lastFrameAt > this.noDataAfterMs) {
      this._setState("no-data");
    } else if (!this.sessionActive) {
      this._setState("idle");
    } else {
      this._setState("live");
    }
  }

  _setState(s) {
    if (s === this.state) return;
    this.state = s;
    if (this.h.onConnection) this.h.onConnection(s);
  }
}

/** speech cues with a persistent mute switch */
class Voice {
  constructor() {
    this.available = "speechSynthesis" in window;
    this.muted = localStorage.getItem("lumbo.muted") === "1";
    this.last = "";
  }
  setMuted(m) {
    this.muted = m;
    localStorage.setItem("lumbo.muted", m ? "1" : "0");
    if (m && this.available) speechSynthesis.cancel();
  }
  say(text, { interrupt = false } = {}) {
    if (this.muted || !this.available || !text) return;
    if (interrupt) speechSynthesis.cancel();
    const u = new SpeechSynthesisUtterance(text);
    u.rate = 1.0;
    speechSynthesis.speak(u);
    this.last = text;
  }
}
