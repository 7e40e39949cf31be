// The printable report of a patient's history (/therapist/report/{patient_id}?from=&to=):
// patient, period, program and levels, progress plots, the sessions with pain and decisions,
// the weeks, every decision. "Print / Save as PDF" opens the browser's print dialog (choose
// "Save as PDF" as the printer); the print stylesheet (dashboard.css) hides the controls.
// When everything is drawn, <body data-ready="true">.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const H = LumboHistory, E = H.el, f = H.fmt;
  const enc = encodeURIComponent;
  const pid = decodeURIComponent(location.pathname.split("/").pop());
  const params = new URLSearchParams(location.search);
  $("report-from").value = params.get("from") || "";
  $("report-to").value = params.get("to") || "";

  $("report-period").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if ($("report-from").value) q.set("from", $("report-from").value);
    if ($("report-to").value) q.set("to", $("report-to").value);
    location.search = q.toString();
  });
  $("report-print").addEventListener("click", () => window.print());
  $("report-back").href = `/therapist?patient_id=${enc(pid)}#history`;

  function fail(text) { const b = $("report-error"); b.textContent = text; b.hidden = false; document.body.dataset.ready = "error"; }

  function program(view) {
    const tbody = $("r-program").tBodies[0];
    tbody.textContent = "";
    const levels = Object.fromEntries((view.levels || []).map((l) => [l.exercise_id, l]));
    for (const it of view.program.items || []) {
      const lv = levels[it.exercise_id] || {};
      const changed = lv.changed_parameter ? `${lv.changed_parameter.replace(/_/g, " ")} = ${(lv.parameters || {})[lv.changed_parameter]}` : "first level";
      tbody.append(E("tr", {}, E("td", { text: it.name }), E("td", { text: `${it.level} of ${it.levels}` }),
        E("td", { text: changed }), E("td", { text: String(it.sets ?? (it.parameters || {}).sets ?? "–") }),
        E("td", { text: it.retention === false ? "no" : "yes" }), E("td", { text: lv.locked ? "🔒 locked" : "no" })));
    }
    if (!(view.program.items || []).length) tbody.append(E("tr", {}, E("td", { colspan: 6, text: "No program." })));
    const b = view.baseline;
    $("r-baseline").textContent = b
      ? `Baseline (${H.day(b.taken_on)}): ` + Object.entries(b.directions).map(([k, m]) => `${H.DIRECTION_WORDS[k] || k} ${f(m.range_deg, 0, "°")}`).join(", ") + (b.repositioning ? `; repositioning error ${f(b.repositioning.mean_abs_error_deg, 1, "°")}` : "") + "."
      : "No baseline assessment: targets come from each session's calibration (forward bend).";
  }

  function decisions(list) {
    const tbody = $("r-decisions").tBodies[0];
    tbody.textContent = "";
    if (!list.length) tbody.append(E("tr", {}, E("td", { colspan: 7, text: "No decisions in this period." })));
    for (const d of list) {
      tbody.append(E("tr", {}, E("td", { text: (d.at || "").replace("T", " ").slice(0, 16) }), E("td", { text: d.exercise_id || "–" }),
        E("td", { text: d.rule_id || "–" }), E("td", { text: d.outcome || "–" }),
        E("td", { text: d.from_level === null || d.from_level === undefined ? "–" : `${d.from_level} → ${d.to_level}` }),
        E("td", { text: d.actor || "–" }), E("td", { text: d.reason || "" })));
    }
  }

  async function load() {
    const q = new URLSearchParams();
    for (const k of ["from", "to"]) if (params.get(k)) q.set(k, params.get(k));
    const qs = q.toString() ? "?" + q.toString() : "";
    let h, view, me;
    try {
      [h, view, me] = await Promise.all([
        Lumbo.api("GET", `/api/patients/${enc(pid)}/history${qs}`),
        Lumbo.api("GET", `/api/practice/patients/${enc(pid)}`),
        Lumbo.api("GET", "/api/auth/me"),
      ]);
    } catch (e) { fail(`The report could not be made: ${e.message}`); return; }
    document.title = `Lumbo – progress report – ${h.patient.display_name}`;
    $("r-name").textContent = h.patient.display_name;
    $("r-patient").textContent = `${h.patient.display_name} (${h.patient.username})`;
    $("r-period").textContent = h.period.from ? `${H.day(h.period.from)} – ${H.day(h.period.to)}` : "no sessions yet";
    $("r-start").textContent = H.day(h.programme_start);
    $("r-therapist").textContent = me.account.display_name || me.account.username;
    $("r-made").textContent = new Date().toLocaleString("en-GB");
    const sum = $("r-summary");
    for (const line of H.sentences(h)) sum.append(E("li", { text: line }));
    if (h.recordings && h.recordings.note) sum.append(E("li", { text: h.recordings.note }));
    program(view);
    for (const fig of H.sessionFigures(h, { fontSize: 19 })) $("r-plots").append(fig);
    $("r-sessions").append(H.sessionTable(h));
    $("r-weeks").append(H.weekTable(h));
    decisions(h.decisions || []);
    document.body.dataset.ready = "true";
  }
  load();
})();
