// Therapist page: the History panel of the chosen patient (?patient_id=, or the only patient):
// progress plots over sessions (range of motion, target error with and without feedback,
// smoothness, pain, RMDQ), the sessions and weeks tables, CSV downloads and the printable
// report, for a period (from/to). Data: GET /api/patients/{id}/history (history-view.js).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const H = LumboHistory;
  const enc = encodeURIComponent;
  let pid = new URLSearchParams(location.search).get("patient_id");
  const state = { history: null, loads: 0 };
  window.lumboHistory = state;

  function query() {
    const q = new URLSearchParams();
    if ($("history-from").value) q.set("from", $("history-from").value);
    if ($("history-to").value) q.set("to", $("history-to").value);
    const s = q.toString();
    return s ? "?" + s : "";
  }
  function msg(text, error = false) { const m = $("history-msg"); m.textContent = text; m.className = "msg" + (error ? " error" : ""); }

  function links() {
    const q = query();
    const base = `/api/patients/${enc(pid)}/history.csv`;
    $("history-csv").href = base + q;
    $("history-csv-weeks").href = base + (q ? q + "&" : "?") + "table=weeks";
    $("history-report").href = `/therapist/report/${enc(pid)}${q}`;
  }

  function render(h) {
    state.history = h;
    $("history-patient").textContent = h.patient.display_name;
    const summary = $("history-summary");
    summary.textContent = "";
    for (const line of H.sentences(h)) summary.append(H.el("li", { text: line }));
    if (h.recordings && h.recordings.note) summary.append(H.el("li", { class: "dash-muted", text: h.recordings.note }));
    const plots = $("history-plots");
    plots.textContent = "";
    for (const fig of H.sessionFigures(h)) plots.append(fig);
    $("history-sessions").textContent = "";
    $("history-sessions").append(H.sessionTable(h));
    $("history-weeks").textContent = "";
    $("history-weeks").append(H.weekTable(h));
    state.loads += 1;
    $("history").dataset.loaded = String(state.loads);
  }

  async function load() {
    if (!pid) return;
    links();
    msg("Loading…");
    try {
      render(await Lumbo.api("GET", `/api/patients/${enc(pid)}/history${query()}`));
      msg("");
    } catch (e) { msg(e.message, true); }
  }

  $("history-period").addEventListener("submit", (e) => { e.preventDefault(); load(); });
  for (const id of ["history-csv", "history-csv-weeks", "history-report"]) {
    $(id).addEventListener("click", (e) => { if (!pid) e.preventDefault(); });
  }
  document.addEventListener("lumbo-patients", (e) => {
    const list = e.detail.patients;
    if (!pid && list.length === 1) pid = list[0].id;
    if (!pid) {
      $("history-patient").textContent = list.length ? "choose a patient" : "no patients yet";
      msg(list.length ? "Choose a patient in the list above to see their history." : "");
      return;
    }
    if (!state.history) load();
  });
  // a session of this patient ended: its results are part of the history now
  let wasLive = false;
  setInterval(() => {
    const last = window.lumboGlance && window.lumboGlance.last;
    if (!pid || !last) return;
    const live = last.sessions.some((t) => t.patient_id === pid);
    if (wasLive && !live) setTimeout(load, 1500); // the recording closes within a second
    wasLive = live;
  }, 1000);
  window.lumboHistory.reload = load;
})();
