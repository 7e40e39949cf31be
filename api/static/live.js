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
    const res = await fetch(path, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const msg = (data && (data.message || (typeof data.detail === "string" ? data.detail : null)))
        || `${res.status} ${res.statusText}`;
      throw new Error(msg);
    }
    return data;
  },

  /** engine zone ("rest" | "below" | "in" | "over") -> page kind ("neutral" | "below" | "in" | "above") */
  zoneKind(zone) {
    return { rest: "neutral", below: "below", in: "in", over: "above" }[zone] || "neutral";
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
      ws = new WebSocket(`${proto}//${location.host}/ws/live`);
    } catch (e) {
      this._retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => { this.backoffMs = 500; this.lastMessageAt = performance.now(); };
    ws.onmessage = (ev) => this._onMessage(ev.data);
    ws.onclose = () => { if (this.ws === ws) { this.ws = null; this._setState("closed"); this._retry(); } };
    ws.onerror = () => { try { ws.close(); } catch (e) { /* ignore */ } };
  }

  _retry() {
    if (this.stopped) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    setTimeout(() => this._connect(), delay);
  }

  _onMessage(text) {
    let msg;
    try { msg = JSON.parse(text); } catch (e) { return; }
    const now = performance.now();
    this.lastMessageAt = now;
    if (msg.schema_version !== undefined && msg.schema_version !== LUMBO_SCHEMA_VERSION) {
      if (this.schemaOk) this._schemaError(msg.schema_version);
      return;
    }
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
