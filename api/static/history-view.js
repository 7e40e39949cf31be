// A patient's history (GET /api/patients/{id}/history) as plots and tables: shared by the
// therapist page's History panel (history.js), the printable report (report.js) and the
// patient's own progress (history-patient.js). Plots: plot.js.
"use strict";

const LumboHistory = {
  DIRECTION_WORDS: {
    flexion: "forward bend", extension: "backward bend", lateral_bend_left: "side bend left",
    lateral_bend_right: "side bend right", axial_rotation_left: "turn left",
    axial_rotation_right: "turn right", pelvic_tilt_anterior: "pelvic tilt forward",
    pelvic_tilt_posterior: "pelvic tilt back",
  },
  KIND_WORDS: { program: "day's program", baseline: "baseline assessment", flexion: "single exercise", recording: "recording" },

  fmt(x, d = 1, unit = "") {
    return x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(d) + unit;
  },

  /** "25 Nov 2026" from an ISO date */
  day(iso) {
    if (!iso) return "–";
    const d = new Date(iso.length <= 10 ? iso + "T12:00:00Z" : iso);
    return d.toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
  },

  el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  },

  /** the plots of a history, per session (therapist, report) */
  sessionFigures(h, { fontSize = 14 } = {}) {
    const S = h.sessions || [];
    const xLabels = S.map((s) => String(s.number));
    const xNames = S.map((s) => `session ${s.number} (${LumboHistory.day(s.date)})`);
    const base = { xLabels, xNames, xTitle: "session", fontSize };
    const pick = (f) => S.map(f);
    const practised = (key) => (s) => (s.practised || []).includes(key) ? (s.peak_deg || {})[key] ?? null : null;
    const figs = [];
    figs.push(LumboPlot.figure({ ...base, id: "hp-rom", title: "Range of motion: forward bend", yLabel: "degrees", unit: "°", zero: true,
      series: [
        { name: "furthest forward in the session", values: pick(practised("flexion")) },
        { name: "comfortable bend at calibration", values: pick((s) => s.comfortable_flexion_deg) },
        { name: "baseline assessment", values: pick((s) => (s.baseline_ranges_deg || {}).flexion ?? null) },
      ] }));
    const others = (h.directions_practised || []).filter((k) => k !== "flexion");
    for (let i = 0; i < others.length; i += 4) {
      const group = others.slice(i, i + 4);
      figs.push(LumboPlot.figure({ ...base, id: i ? `hp-rom-other-${i}` : "hp-rom-other", title: "Range of motion: other directions practised", yLabel: "degrees", unit: "°", zero: true,
        series: group.map((k) => ({ name: `furthest ${LumboHistory.DIRECTION_WORDS[k] || k}`, values: pick((s) => practised(k)(s) ?? (s.baseline_ranges_deg || {})[k] ?? null) })) }));
    }
    figs.push(LumboPlot.figure({ ...base, id: "hp-error", title: "Target and repositioning error", note: "mean distance from the target per repetition: lower is better", yLabel: "degrees", unit: "°", zero: true,
      series: [
        { name: "all repetitions", values: pick((s) => s.mean_abs_error_deg) },
        { name: "without feedback (test blocks)", values: pick((s) => s.retention_mean_abs_error_deg) },
      ] }));
    figs.push(LumboPlot.figure({ ...base, id: "hp-sparc", title: "Smoothness: SPARC", note: "median of the repetitions; closer to 0 is smoother", yLabel: "SPARC", digits: 2,
      series: [{ name: "SPARC", values: pick((s) => s.sparc) }] }));
    figs.push(LumboPlot.figure({ ...base, id: "hp-ldlj", title: "Smoothness: log dimensionless jerk", note: "median of the repetitions; closer to 0 is smoother", yLabel: "LDLJ", digits: 1,
      series: [{ name: "LDLJ", values: pick((s) => s.ldlj), marker: "square", color: "#2b2b2b" }] }));
    figs.push(LumboPlot.figure({ ...base, id: "hp-pain", title: "Pain before and after", note: "0 = no pain, 10 = worst imaginable", yLabel: "pain 0–10", digits: 0, yMin: 0, yMax: 10,
      series: [
        { name: "before", values: pick((s) => s.pain_before) },
        { name: "after", values: pick((s) => s.pain_after) },
      ] }));
    if ((h.rmdq || []).length) {
      figs.push(LumboPlot.figure({ id: "hp-rmdq", title: "Roland-Morris disability (RMDQ)", note: "0–24: lower is better", yLabel: "RMDQ", digits: 0, yMin: 0, yMax: 24, fontSize,
        xLabels: h.rmdq.map((r) => `wk ${r.week}`), xNames: h.rmdq.map((r) => `week ${r.week} (${LumboHistory.day(r.date)})`), xTitle: "programme week",
        series: [{ name: "RMDQ score", values: h.rmdq.map((r) => r.score) }] }));
    }
    return figs;
  },

  /** the patient's own plots, per programme week, in plain words */
  weekFigures(h, { fontSize = 22 } = {}) {
    const W = h.weeks || [];
    const base = { xLabels: W.map((w) => `wk ${w.week}`), xNames: W.map((w) => `week ${w.week}`), xTitle: "week", fontSize, height: 300 };
    return [
      LumboPlot.figure({ ...base, id: "ph-rom", title: "How far you bend forward", note: "your furthest forward bend each week", yLabel: "degrees", unit: "°", digits: 0, zero: true,
        series: [{ name: "furthest forward bend", values: W.map((w) => (w.peak_deg || {}).flexion ?? null) }] }),
      LumboPlot.figure({ ...base, id: "ph-error", title: "How close you get to the target on your own", note: "distance from the target without feedback: lower is better", yLabel: "degrees", unit: "°", digits: 1, zero: true,
        series: [{ name: "distance from the target", values: W.map((w) => w.retention_mean_abs_error_deg ?? w.mean_abs_error_deg) }] }),
      LumboPlot.figure({ ...base, id: "ph-pain", title: "Your pain", note: "0 = no pain, 10 = worst", yLabel: "pain", digits: 1, yMin: 0, yMax: 10,
        series: [{ name: "before practice", values: W.map((w) => w.pain_before) }, { name: "after practice", values: W.map((w) => w.pain_after) }] }),
    ];
  },

  /** headline sentences from the summary */
  sentences(h, who = "therapist") {
    const s = h.summary || {}, f = LumboHistory.fmt;
    const out = [];
    if (!s.sessions) return [who === "patient" ? "No sessions yet: your progress appears here after your first session." : "No sessions in this period."];
    out.push(`${s.sessions} session${s.sessions === 1 ? "" : "s"} over ${s.weeks} programme week${s.weeks === 1 ? "" : "s"}, ${s.repetitions} repetitions (${LumboHistory.day(s.first_date)} – ${LumboHistory.day(s.last_date)}).`);
    // first and last week with a value; a single value is said as it is
    const span = (c, d, u, patientWords) => c.values < 2 ? `${f(c.last, d, u)}` : patientWords
      ? `${f(c.first, d, u)} at first, ${f(c.last, d, u)} now` : `${f(c.first, d, u)} → ${f(c.last, d, u)} (${c.change >= 0 ? "+" : ""}${f(c.change, d, u)})`;
    const c = s.peak_flexion_deg;
    if (c) out.push(who === "patient" ? `Your forward bend: ${span(c, 0, "°", true)}.` : `Furthest forward bend per week: ${span(c, 1, "°")}.`);
    const e = s.retention_mean_abs_error_deg || s.mean_abs_error_deg;
    if (e) out.push(who === "patient" ? `Distance from the target: ${span(e, 1, "°", true)}.` : `Error ${s.retention_mean_abs_error_deg ? "without feedback" : "(all repetitions)"}: ${span(e, 1, "°")}.`);
    const p = s.pain_before;
    if (p) out.push(`${who === "patient" ? "Your pain" : "Pain"} before practice: ${span(p, 1, "", who === "patient")} (0–10).`);
    const r = s.rmdq_score;
    if (r) out.push(`RMDQ: ${span(r, 0, "")} (0–24).`);
    return out;
  },

  /** the sessions table */
  sessionTable(h, { decisions = true } = {}) {
    const E = LumboHistory.el, f = LumboHistory.fmt;
    const cols = ["#", "Date", "Kind", "Exercises (level)", "Reps", "Furthest forward", "Error", "Error without feedback", "SPARC", "Pain before / after"];
    if (decisions) cols.push("Decisions");
    const table = E("table", { class: "hp-table", id: "hp-sessions" });
    const hr = table.createTHead().insertRow();
    for (const c of cols) hr.append(E("th", { scope: "col", text: c }));
    const body = table.createTBody();
    const S = h.sessions || [];
    if (!S.length) body.append(E("tr", {}, E("td", { colspan: cols.length, text: "No sessions in this period." })));
    for (const s of S) {
      const names = (s.exercises || []).map((x) => `${x.name} (${x.level ?? "–"})`).join("; ") || "–";
      const tr = E("tr", { "data-session": s.session_id },
        E("td", { text: String(s.number) }), E("td", { text: LumboHistory.day(s.date) }),
        E("td", { text: (LumboHistory.KIND_WORDS[s.kind] || s.kind) + (s.recorded ? "" : " (not recorded)") + (s.status === "live" ? " · in progress" : s.status === "interrupted" ? " · interrupted" : "") }),
        E("td", { text: names }), E("td", { text: String(s.repetitions) }),
        E("td", { text: (s.practised || []).includes("flexion") ? f((s.peak_deg || {}).flexion, 1, "°") : "–" }),
        E("td", { text: f(s.mean_abs_error_deg, 1, "°") }), E("td", { text: f(s.retention_mean_abs_error_deg, 1, "°") }),
        E("td", { text: f(s.sparc, 2) }),
        E("td", { text: `${s.pain_before ?? "–"} / ${s.pain_after ?? "–"}` }));
      if (decisions) tr.append(E("td", { text: (s.decisions || []).map((d) => `${d.exercise_id}: ${d.outcome} ${d.from_level ?? "–"}→${d.to_level ?? "–"}`).join("; ") || "–" }));
      body.append(tr);
    }
    return table;
  },

  /** the weeks table */
  weekTable(h) {
    const E = LumboHistory.el, f = LumboHistory.fmt;
    const cols = ["Week", "From", "Sessions", "Reps", "Furthest forward", "Error", "Error without feedback", "Pain before / after", "RMDQ"];
    const table = E("table", { class: "hp-table", id: "hp-weeks" });
    const hr = table.createTHead().insertRow();
    for (const c of cols) hr.append(E("th", { scope: "col", text: c }));
    const body = table.createTBody();
    for (const w of h.weeks || []) {
      body.append(E("tr", {}, E("td", { text: String(w.week) }), E("td", { text: LumboHistory.day(w.from) }),
        E("td", { text: String(w.sessions) }), E("td", { text: String(w.repetitions) }),
        E("td", { text: f((w.peak_deg || {}).flexion, 1, "°") }), E("td", { text: f(w.mean_abs_error_deg, 1, "°") }),
        E("td", { text: f(w.retention_mean_abs_error_deg, 1, "°") }),
        E("td", { text: `${f(w.pain_before, 1)} / ${f(w.pain_after, 1)}` }), E("td", { text: w.rmdq_score ?? "–" })));
    }
    return table;
  },
};
