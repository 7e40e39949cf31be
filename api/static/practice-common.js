// Graded practice: helpers shared by the patient and therapist pages (no build step, no CDN).
"use strict";

const LumboPractice = {
  /** the page's `?patient_id=` (a therapist with several patients), or null */
  pagePatient() {
    return new URLSearchParams(location.search).get("patient_id");
  },

  /** `path` with the page's patient_id (per-patient routes take it in the path instead) */
  url(path) {
    const pid = LumboPractice.pagePatient();
    if (!pid || path.includes("patient_id=") || path.includes("/patients/")) return path;
    return path + (path.includes("?") ? "&" : "?") + "patient_id=" + encodeURIComponent(pid);
  },

  api(method, path, body) {
    return Lumbo.api(method, LumboPractice.url(path), body);
  },

  /** speak, honouring the page's mute switch (the same setting as the page's Voice) */
  say(text, interrupt = false) {
    if (!text || !("speechSynthesis" in window) || localStorage.getItem("lumbo.muted") === "1") return;
    if (interrupt) speechSynthesis.cancel();
    const u = new SpeechSynthesisUtterance(text);
    u.rate = 1.0;
    speechSynthesis.speak(u);
  },

  ESTIMATES: {
    short: ["◀", "Short of it"], on_target: ["●", "On target"], past: ["▶", "Past it"],
    within: ["●", "Within the limit"], over: ["▲", "Over the limit"],
  },

  ANGLE_WORDS: {
    flexion_deg: "Lower-back bend", lateral_bend_deg: "Side bend", axial_rotation_deg: "Turn",
    pelvic_tilt_deg: "Pelvic tilt", upper_inclination_deg: "Chest lean",
  },

  /** task zone -> page kind (neutral | below | in | above) */
  zoneKind(zone) {
    return { rest: "neutral", towards: "below", below: "below", in: "in", over: "above",
      above: "above", wrong_direction: "above", no_signal: "neutral" }[zone] || "neutral";
  },

  ZONE_WORDS: {
    in: ["●", "In the zone – hold"], below: ["▶", "A little further"],
    above: ["◀", "Too far – come back a little"], neutral: ["■", "Ready"],
  },

  /** the live view for this exercise: the gauge for forward bending, a scale otherwise */
  usesGauge(ex) {
    return !!ex && ex.angle === "flexion_deg" && ex.direction === "forward" &&
      ["to_target", "dissociate", "reproduce"].includes(ex.pattern);
  },

  el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  },

  /**
   * A small line chart on a canvas: series [{label, color, dash, marker ("circle" | "triangle"),
   * values: [number|null]}], x = index (sessions), y from 0 to yMax. Points are drawn with a
   * marker shape per series, so the series differ by shape and line style, not colour alone.
   */
  drawChart(canvas, { series, yMax, yLabel = "", xLabels = [] }) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 600, h = canvas.clientHeight || 240;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const L = 52, R = 16, T = 14, B = 34;
    const n = Math.max(1, ...series.map((s) => s.values.length));
    const x = (i) => L + (n === 1 ? (w - L - R) / 2 : (i * (w - L - R)) / (n - 1));
    const y = (v) => T + (1 - v / yMax) * (h - T - B);
    g.font = "14px system-ui, sans-serif";
    g.fillStyle = "#4a4a4a"; g.strokeStyle = "#c9c6bb"; g.lineWidth = 1;
    const step = yMax > 12 ? 4 : 2;
    for (let v = 0; v <= yMax; v += step) {
      g.beginPath(); g.moveTo(L, y(v)); g.lineTo(w - R, y(v)); g.stroke();
      g.fillText(String(v), 8, y(v) + 5);
    }
    if (yLabel) { g.save(); g.fillText(yLabel, L, 12); g.restore(); }
    xLabels.forEach((t, i) => { if (t) g.fillText(t, x(i) - 8, h - 10); });
    for (const s of series) {
      g.strokeStyle = s.color; g.fillStyle = s.color; g.lineWidth = 3;
      g.setLineDash(s.dash || []);
      g.beginPath();
      let pen = false;
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) { pen = false; return; }
        if (pen) g.lineTo(x(i), y(v)); else { g.moveTo(x(i), y(v)); pen = true; }
      });
      g.stroke(); g.setLineDash([]);
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) return;
        g.beginPath();
        if (s.marker === "triangle") {
          g.moveTo(x(i), y(v) - 8); g.lineTo(x(i) + 7, y(v) + 5); g.lineTo(x(i) - 7, y(v) + 5); g.closePath();
        } else {
          g.arc(x(i), y(v), 6, 0, 2 * Math.PI);
        }
        g.fill();
      });
    }
  },

  /** pain per session and RMDQ from /trends into two canvases (either may be null) */
  drawTrends(t, painCanvas, rmdqCanvas) {
    const pain = t.pain || [];
    if (painCanvas) {
      LumboPractice.drawChart(painCanvas, {
        yMax: 10, yLabel: "pain 0–10",
        xLabels: pain.map((p, i) => (pain.length <= 12 || i % 2 === 0 ? String(i + 1) : "")),
        series: [
          { label: "before", color: "#0b57a4", marker: "circle", values: pain.map((p) => p.before) },
          { label: "after", color: "#a04400", dash: [8, 6], marker: "triangle", values: pain.map((p) => p.after) },
        ],
      });
      painCanvas.setAttribute("aria-label", pain.length
        ? "Pain per session, before and after: " + pain.map((p, i) => `session ${i + 1}: ${p.before ?? "not entered"} before, ${p.after ?? "not entered"} after`).join("; ")
        : "No pain ratings yet");
    }
    const rmdq = t.rmdq || [];
    if (rmdqCanvas) {
      LumboPractice.drawChart(rmdqCanvas, {
        yMax: 24, yLabel: "RMDQ 0–24", xLabels: rmdq.map((r) => `wk ${r.week}`),
        series: [{ label: "RMDQ", color: "#0b57a4", marker: "circle", values: rmdq.map((r) => r.score) }],
      });
      rmdqCanvas.setAttribute("aria-label", rmdq.length
        ? "RMDQ score by week: " + rmdq.map((r) => `week ${r.week}: ${r.score}`).join("; ")
        : "No questionnaire answered yet");
    }
  },
};
