// Small SVG line plots for the history (therapist page, report, patient page). No library, no
// build step. SVG rather than canvas: it prints sharply (the report, "Save as PDF"), scales with
// the page, and every point carries its value (a <title>, read on hover and by screen readers).
// Series differ by line style and marker shape as well as colour (blue / orange / near-black:
// safe for colour-blind readers), and every plot comes with its numbers in a table.
"use strict";

const LumboPlot = {
  COLORS: ["#0b57a4", "#a04400", "#2b2b2b", "#5b3a8c"],
  DASHES: ["", "8 6", "2 5", "12 4 2 4"],
  MARKERS: ["circle", "triangle", "square", "diamond"],
  NS: "http://www.w3.org/2000/svg",

  _el(tag, attrs = {}, text) {
    const e = document.createElementNS(LumboPlot.NS, tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  },

  /** "nice" tick step for a span (1, 2, 2.5, 5 × 10^n) */
  _step(span, count) {
    const raw = span / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
    return 10 * mag;
  },

  _marker(shape, x, y, r, color) {
    const E = LumboPlot._el;
    if (shape === "triangle") return E("path", { d: `M${x} ${y - r * 1.25}L${x + r * 1.1} ${y + r * 0.8}L${x - r * 1.1} ${y + r * 0.8}Z`, fill: color });
    if (shape === "square") return E("rect", { x: x - r * 0.9, y: y - r * 0.9, width: r * 1.8, height: r * 1.8, fill: color });
    if (shape === "diamond") return E("path", { d: `M${x} ${y - r * 1.3}L${x + r * 1.1} ${y}L${x} ${y + r * 1.3}L${x - r * 1.1} ${y}Z`, fill: color });
    return E("circle", { cx: x, cy: y, r, fill: color });
  },

  /**
   * A line plot. opts: {title, yLabel (with its unit), unit (after values, e.g. "°"), digits,
   * xLabels (one per point: shown thinned), xNames (one per point: in titles and the table,
   * default xLabels), xTitle, series: [{name, values: [number|null]}], yMin, yMax (forced
   * bounds; otherwise from the data, 0 included when `zero`), zero, note (a line under the
   * title, e.g. "lower is better"), fontSize}. Returns a <figure> with the SVG, a legend and
   * a <details> table of the numbers.
   */
  figure(opts) {
    const E = LumboPlot._el;
    const fs = opts.fontSize || 14;
    const W = 640, H = Math.round(opts.height || 260 + 10 * (fs - 14));
    const L = 14 + fs * 3.6, R = 10 + fs * 1.4, T = fs * 1.9, B = fs * 2.8;
    const pw = W - L - R, ph = H - T - B;
    const series = (opts.series || []).filter((s) => s && s.values);
    const n = Math.max(0, ...series.map((s) => s.values.length));
    const names = opts.xNames || opts.xLabels || [];
    const unit = opts.unit || "", digits = opts.digits ?? 1;
    const fmt = (v) => (v === null || v === undefined || Number.isNaN(v)) ? "–" : Number(v).toFixed(digits) + unit;
    const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined && !Number.isNaN(v));

    const fig = document.createElement("figure");
    fig.className = "lplot";
    if (opts.id) fig.id = opts.id;
    const cap = document.createElement("figcaption");
    cap.className = "lplot-title";
    cap.textContent = opts.title || "";
    fig.append(cap);
    if (opts.note) { const p = document.createElement("p"); p.className = "lplot-note"; p.textContent = opts.note; fig.append(p); }

    const uid = "lp" + Math.random().toString(36).slice(2, 9);
    const svg = E("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${uid}-t ${uid}-d`, class: "lplot-svg", "font-size": fs, "font-family": "system-ui, sans-serif" });
    svg.append(E("title", { id: `${uid}-t` }, opts.title || "plot"));
    const desc = all.length
      ? series.map((s) => `${s.name}: ` + s.values.map((v, i) => `${names[i] ?? i + 1} ${fmt(v)}`).join(", ")).join(". ")
      : "No data yet.";
    svg.append(E("desc", { id: `${uid}-d` }, desc));
    svg.append(E("rect", { x: 0, y: 0, width: W, height: H, fill: "#ffffff" }));
    fig.append(svg);
    if (!all.length) {
      svg.append(E("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#4a4a4a" }, opts.empty || "No data yet"));
      fig.dataset.points = "0";
      return fig;
    }
    // y range
    let lo = opts.yMin ?? Math.min(...all), hi = opts.yMax ?? Math.max(...all);
    if (opts.zero && opts.yMin === undefined) lo = Math.min(lo, 0);
    if (opts.zero && opts.yMax === undefined) hi = Math.max(hi, 0);
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    const step = LumboPlot._step(hi - lo, 5);
    if (opts.yMin === undefined) lo = Math.floor(lo / step) * step;
    if (opts.yMax === undefined) hi = Math.ceil(hi / step) * step;
    const X = (i) => L + (n <= 1 ? pw / 2 : (i * pw) / (n - 1));
    const Y = (v) => T + (1 - (v - lo) / (hi - lo)) * ph;
    // grid and axes
    const grid = E("g", { stroke: "#dcd9cf", "stroke-width": 1 });
    const ylab = E("g", { fill: "#4a4a4a", "text-anchor": "end" });
    for (let v = lo; v <= hi + step * 1e-6; v += step) {
      grid.append(E("line", { x1: L, x2: L + pw, y1: Y(v), y2: Y(v) }));
      ylab.append(E("text", { x: L - 6, y: Y(v) + fs * 0.35 }, String(Math.round(v * 100) / 100)));
    }
    svg.append(grid, ylab);
    if (lo < 0 && hi > 0) svg.append(E("line", { x1: L, x2: L + pw, y1: Y(0), y2: Y(0), stroke: "#141414", "stroke-width": 1.2 }));
    svg.append(E("line", { x1: L, x2: L, y1: T, y2: T + ph, stroke: "#141414", "stroke-width": 1.2 }));
    const labels = opts.xLabels || [];
    const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(pw / (fs * 5.5)))));
    const xl = E("g", { fill: "#4a4a4a", "text-anchor": "middle" });
    for (let i = 0; i < n; i++) {
      if (i % every && i !== n - 1) continue;
      xl.append(E("text", { x: X(i), y: T + ph + fs * 1.3 }, labels[i] ?? String(i + 1)));
    }
    svg.append(xl);
    if (opts.xTitle) svg.append(E("text", { x: L + pw / 2, y: H - 4, "text-anchor": "middle", fill: "#4a4a4a" }, opts.xTitle));
    if (opts.yLabel) svg.append(E("text", { x: 4, y: fs * 1.0, fill: "#4a4a4a", "font-weight": 700 }, opts.yLabel));
    // series
    let points = 0;
    series.forEach((s, k) => {
      const color = s.color || LumboPlot.COLORS[k % 4], dash = s.dash ?? LumboPlot.DASHES[k % 4];
      const shape = s.marker || LumboPlot.MARKERS[k % 4];
      let d = "", pen = false;
      s.values.forEach((v, i) => {
        if (v === null || v === undefined || Number.isNaN(v)) { pen = false; return; }
        d += `${pen ? "L" : "M"}${X(i).toFixed(1)} ${Y(v).toFixed(1)}`;
        pen = true;
      });
      const g = E("g", { class: "lplot-series", "data-series": s.name });
      if (d) g.append(E("path", { d, fill: "none", stroke: color, "stroke-width": 3, "stroke-dasharray": dash || null, "stroke-linejoin": "round" }));
      s.values.forEach((v, i) => {
        if (v === null || v === undefined || Number.isNaN(v)) return;
        const m = LumboPlot._marker(shape, X(i), Y(v), fs * 0.42, color);
        m.setAttribute("class", "lplot-point");
        m.append(E("title", {}, `${s.name}, ${names[i] ?? i + 1}: ${fmt(v)}`));
        g.append(m);
        points += 1;
      });
      svg.append(g);
    });
    fig.dataset.points = String(points);
    // legend (shape and line, not colour alone)
    const legend = document.createElement("div");
    legend.className = "lplot-legend";
    series.forEach((s, k) => {
      const item = document.createElement("span");
      const key = E("svg", { viewBox: "0 0 44 16", width: 44, height: 16, "aria-hidden": "true" });
      const color = s.color || LumboPlot.COLORS[k % 4];
      key.append(E("line", { x1: 2, x2: 42, y1: 8, y2: 8, stroke: color, "stroke-width": 3, "stroke-dasharray": (s.dash ?? LumboPlot.DASHES[k % 4]) || null }));
      key.append(LumboPlot._marker(s.marker || LumboPlot.MARKERS[k % 4], 22, 8, 5, color));
      item.append(key, document.createTextNode(s.name));
      legend.append(item);
    });
    fig.append(legend);
    // the numbers
    const det = document.createElement("details");
    det.className = "lplot-data";
    const sum = document.createElement("summary");
    sum.textContent = "The numbers";
    const table = document.createElement("table");
    const hr = table.createTHead().insertRow();
    for (const h of [opts.xTitle || "", ...series.map((s) => s.name)]) { const th = document.createElement("th"); th.scope = "col"; th.textContent = h; hr.append(th); }
    const body = table.createTBody();
    for (let i = 0; i < n; i++) {
      const tr = body.insertRow();
      const th = document.createElement("th"); th.scope = "row"; th.textContent = names[i] ?? String(i + 1); tr.append(th);
      for (const s of series) tr.insertCell().textContent = fmt(s.values[i]);
    }
    det.append(sum, table);
    fig.append(det);
    return fig;
  },
};
