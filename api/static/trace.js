// A small streaming line chart on canvas: fixed-capacity ring buffers, redrawn at most once per
// animation frame, only the visible window walked. No library, no build step.
"use strict";

class Ring {
  constructor(capacity) {
    this.cap = capacity;
    this.t = new Float64Array(capacity);
    this.y = [];
    this.start = 0;
    this.len = 0;
  }
  addSeries() { this.y.push(new Float64Array(this.cap)); return this.y.length - 1; }
  push(t, values) {
    const i = (this.start + this.len) % this.cap;
    this.t[i] = t;
    for (let k = 0; k < this.y.length; k++) {
      const v = values[k];
      this.y[k][i] = v === null || v === undefined ? NaN : v;
    }
    if (this.len < this.cap) this.len += 1; else this.start = (this.start + 1) % this.cap;
  }
  clear() { this.start = 0; this.len = 0; }
  at(j) { return (this.start + j) % this.cap; }
  last() { return this.len ? this.t[this.at(this.len - 1)] : NaN; }
}

class TraceChart {
  /** series: [{label, color, dash}] ; windowS: visible seconds */
  constructor(canvas, series, { windowS = 30, capacity = 6000 } = {}) {
    this.canvas = canvas;
    this.series = series;
    this.windowS = windowS;
    this.ring = new Ring(capacity);
    series.forEach(() => this.ring.addSeries());
    this.band = null; // {low, high}
    this.dirty = false;
    this.points = 0;
    new ResizeObserver(() => this.requestDraw()).observe(canvas);
  }
  push(tArr, ...seriesArrs) {
    for (let i = 0; i < tArr.length; i++) {
      if (this.ring.len && tArr[i] < this.ring.last() - 1) this.ring.clear(); // time jumped back: new session
      this.ring.push(tArr[i], seriesArrs.map((a) => (a ? a[i] : NaN)));
      this.points += 1;
    }
    this.requestDraw();
  }
  setBand(band) { this.band = band; this.requestDraw(); }
  clear() { this.ring.clear(); this.requestDraw(); }
  requestDraw() {
    if (this.dirty) return;
    this.dirty = true;
    requestAnimationFrame(() => { this.dirty = false; this.draw(); });
  }
  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const W = Math.max(1, Math.round(c.clientWidth * dpr)), H = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== W || c.height !== H) { c.width = W; c.height = H; }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const w = c.clientWidth, h = c.clientHeight;
    const L = 48, Rm = 12, T = 10, B = 28, pw = w - L - Rm, ph = h - T - B;
    g.clearRect(0, 0, w, h);
    g.fillStyle = "#ffffff"; g.fillRect(0, 0, w, h);
    const ring = this.ring;
    const tEnd = ring.len ? ring.last() : 0, tStart = tEnd - this.windowS;
    // y range: fixed floor/ceiling that grows with the data and the band
    let yMin = -20, yMax = 60;
    if (this.band) yMax = Math.max(yMax, this.band.high + 10);
    for (let j = 0; j < ring.len; j++) {
      const i = ring.at(j);
      if (ring.t[i] < tStart) continue;
      for (const s of ring.y) { const v = s[i]; if (v > yMax) yMax = v + 5; if (v < yMin) yMin = v - 5; }
    }
    yMax = Math.ceil(yMax / 10) * 10; yMin = Math.floor(yMin / 10) * 10;
    const X = (t) => L + ((t - tStart) / this.windowS) * pw;
    const Y = (v) => T + (1 - (v - yMin) / (yMax - yMin)) * ph;
    // grid
    g.font = "13px system-ui, sans-serif"; g.fillStyle = "#4a4a4a"; g.strokeStyle = "#e3e1d8"; g.lineWidth = 1;
    g.textAlign = "right"; g.textBaseline = "middle";
    for (let v = yMin; v <= yMax; v += 10) {
      g.beginPath(); g.moveTo(L, Y(v)); g.lineTo(L + pw, Y(v)); g.stroke();
      g.fillText(`${v}°`, L - 6, Y(v));
    }
    g.textAlign = "center"; g.textBaseline = "top";
    for (let s = 0; s <= this.windowS; s += 5) {
      const x = L + pw - (s / this.windowS) * pw;
      g.beginPath(); g.moveTo(x, T); g.lineTo(x, T + ph); g.stroke();
      g.fillText(s === 0 ? "now" : `−${s} s`, x, T + ph + 6);
    }
    g.strokeStyle = "#141414"; g.beginPath(); g.moveTo(L, Y(0)); g.lineTo(L + pw, Y(0)); g.stroke();
    // target band, with dashed edges so it reads without colour
    if (this.band) {
      const y0 = Y(this.band.high), y1 = Y(this.band.low);
      g.fillStyle = "rgba(11, 87, 164, 0.16)"; g.fillRect(L, y0, pw, y1 - y0);
      g.setLineDash([6, 4]); g.strokeStyle = "#0b57a4"; g.lineWidth = 1.5;
      g.beginPath(); g.moveTo(L, y0); g.lineTo(L + pw, y0); g.moveTo(L, y1); g.lineTo(L + pw, y1); g.stroke();
      g.setLineDash([]);
    }
    // series
    g.save(); g.beginPath(); g.rect(L, T, pw, ph); g.clip();
    this.series.forEach((s, k) => {
      const ys = ring.y[k];
      g.strokeStyle = s.color; g.lineWidth = s.width || 2.5; g.setLineDash(s.dash || []);
      g.beginPath();
      let pen = false;
      for (let j = 0; j < ring.len; j++) {
        const i = ring.at(j);
        const t = ring.t[i];
        if (t < tStart) continue;
        const v = ys[i];
        if (Number.isNaN(v)) { pen = false; continue; }
        const x = X(t), y = Y(v);
        if (pen) g.lineTo(x, y); else { g.moveTo(x, y); pen = true; }
      }
      g.stroke();
    });
    g.restore();
    g.setLineDash([]);
  }
}
