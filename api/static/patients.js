// Therapist page: the therapist's patients. List them (with what each is doing now, from the
// live overview), add one, rename one, disable or enable their sign-in, make a one-time login
// link for their display, and open their live view, program, history or printable report.
// Uses /api/patients (POST, PATCH, .../login-link) and /api/auth/me.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const E = LumboHistory.el;
  const params = new URLSearchParams(location.search);
  const chosen = params.get("patient_id");
  let patients = [];
  const state = { me: null };

  function msg(id, text, error = false) { const m = $(id); m.textContent = text; m.className = "msg" + (error ? " error" : ""); }
  const enc = encodeURIComponent;

  function liveWord(pid) {
    const last = window.lumboGlance && window.lumboGlance.last;
    const t = last && last.sessions.find((s) => s.patient_id === pid);
    return t ? `● ${t.state}${t.exercise ? ": " + t.exercise.name : ""}` : "○ not practising";
  }

  function render() {
    const tbody = $("patients-table").tBodies[0];
    tbody.textContent = "";
    if (!patients.length) {
      tbody.append(E("tr", {}, E("td", { colspan: 6, text: "No patients yet: add one below." })));
      return;
    }
    for (const p of patients) {
      const name = p.display_name || p.username;
      const open = E("div", { class: "dash-actions" },
        E("a", { href: `/therapist?patient_id=${enc(p.id)}#live-detail`, class: "btn small", text: "Live view", "aria-label": `Live view of ${name}` }),
        E("a", { href: `/therapist?patient_id=${enc(p.id)}#pt-program-panel`, class: "btn small", text: "Program", "aria-label": `Program of ${name}` }),
        E("a", { href: `/therapist?patient_id=${enc(p.id)}#history`, class: "btn small", text: "History", "aria-label": `History of ${name}` }),
        E("a", { href: `/therapist/report/${enc(p.id)}`, class: "btn small", text: "Report", "aria-label": `Printable report of ${name}` }));
      const rename = E("button", { type: "button", class: "btn small", text: "Rename", "aria-label": `Rename ${name}`, "data-action": "rename" });
      rename.addEventListener("click", () => startRename(p, tr));
      const link = E("button", { type: "button", class: "btn small", text: "Login link", "aria-label": `One-time login link for ${name}`, "data-action": "link", disabled: !p.active });
      link.addEventListener("click", () => makeLink(p));
      const toggle = E("button", { type: "button", class: "btn small", text: p.active ? "Disable sign-in" : "Enable sign-in", "aria-label": `${p.active ? "Disable" : "Enable"} sign-in of ${name}`, "data-action": "toggle" });
      toggle.addEventListener("click", () => setActive(p, !p.active));
      const tr = E("tr", { "data-patient": p.id, class: p.id === chosen ? "chosen" : null },
        E("td", { class: "p-name", text: name }), E("td", { text: p.username }),
        E("td", { class: "p-live", text: liveWord(p.id) }),
        E("td", { text: !p.active ? "✕ disabled" : p.has_password ? "password or links" : "links only" }),
        E("td", {}, open), E("td", {}, E("div", { class: "dash-actions" }, rename, link, toggle)));
      if (p.id === chosen) tr.setAttribute("aria-current", "true");
      tbody.append(tr);
    }
  }

  function startRename(p, tr) {
    const cell = tr.querySelector(".p-name");
    const input = E("input", { type: "text", value: p.display_name || p.username, maxlength: 100, "aria-label": `New name for ${p.username}`, class: "p-rename" });
    const save = E("button", { type: "submit", class: "btn small primary", text: "Save" });
    const cancel = E("button", { type: "button", class: "btn small", text: "Cancel" });
    const form = E("form", { class: "dash-inline" }, input, save, cancel);
    cell.textContent = ""; cell.append(form);
    input.focus(); input.select();
    cancel.addEventListener("click", render);
    input.addEventListener("keydown", (e) => { if (e.key === "Escape") render(); });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const updated = await Lumbo.api("PATCH", `/api/patients/${enc(p.id)}`, { display_name: input.value });
        Object.assign(p, updated);
        msg("patients-msg", `Renamed to ${updated.display_name}.`);
        render();
        notify();
      } catch (err) { msg("patients-msg", err.message, true); }
    });
  }

  async function makeLink(p) {
    try {
      const r = await Lumbo.api("POST", `/api/patients/${enc(p.id)}/login-link`, { next: "/" });
      const box = $("patients-link");
      const url = location.origin + r.url;
      const input = E("input", { type: "text", readonly: true, value: url, id: "patients-link-url", "aria-label": `Login link for ${p.display_name || p.username}` });
      const copy = E("button", { type: "button", class: "btn small", text: "Copy" });
      copy.addEventListener("click", async () => {
        input.select();
        try { await navigator.clipboard.writeText(url); copy.textContent = "Copied ✔"; } catch (e) { document.execCommand && document.execCommand("copy"); copy.textContent = "Selected: press Ctrl+C"; }
      });
      box.textContent = "";
      box.append(E("p", { text: `One-time login link for ${p.display_name || p.username}: open it on their display. It works once, until ${new Date(r.expires_at).toLocaleTimeString()}.` }), E("div", { class: "dash-inline" }, input, copy));
      box.hidden = false;
      input.focus(); input.select();
    } catch (err) { msg("patients-msg", err.message, true); }
  }

  async function setActive(p, active) {
    try {
      const updated = await Lumbo.api("PATCH", `/api/patients/${enc(p.id)}`, { active });
      Object.assign(p, updated);
      msg("patients-msg", `${updated.display_name}: sign-in ${active ? "enabled" : "disabled (their open pages are signed out)"}.`);
      render();
    } catch (err) { msg("patients-msg", err.message, true); }
  }

  $("patient-add").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { username: $("pa-username").value.trim() };
    if ($("pa-display").value.trim()) body.display_name = $("pa-display").value.trim();
    if ($("pa-password").value) body.password = $("pa-password").value;
    try {
      const p = await Lumbo.api("POST", "/api/patients", body);
      msg("patient-add-msg", `Added ${p.display_name} (${p.username}).${p.has_password ? "" : " Make a login link for their display."}`);
      $("patient-add").reset();
      await load();
      const row = document.querySelector(`#patients-table tr[data-patient="${CSS.escape(p.id)}"]`);
      if (row) row.classList.add("added");
      notify();
    } catch (err) { msg("patient-add-msg", err.message, true); }
  });

  /** no patient chosen: the detailed live view has no session to follow, so its connection
   *  (which would be refused: "choose a patient") stops, and its status pills say why */
  function quietDetail() {
    const conn = window.lumboConnection;
    if (conn) { conn.stopped = true; if (conn.ws) { const ws = conn.ws; conn.ws = null; try { ws.close(); } catch (e) { /* */ } } }
    setTimeout(() => {
      for (const id of ["stale", "session-error", "schema-error"]) if ($(id)) $(id).hidden = true;
      if ($("conn")) { $("conn").dataset.state = "idle"; $("conn-icon").textContent = "○"; $("conn-text").textContent = "Choose a patient"; }
    }, 0);
  }

  function notify() { document.dispatchEvent(new CustomEvent("lumbo-patients", { detail: { patients } })); }

  async function load() {
    patients = await Lumbo.api("GET", "/api/patients");
    render();
    // several patients and none chosen: the detailed parts wait for a choice
    const none = !chosen && patients.length !== 1;
    $("live-detail").hidden = none;
    $("choose-patient").hidden = !none || !patients.length;
    if (none) quietDetail();
    notify();
  }

  async function init() {
    try {
      state.me = await Lumbo.api("GET", "/api/auth/me");
    } catch (e) { return; }
    if (state.me.account.role !== "therapist") { // a patient on this page: nothing to manage
      for (const id of ["glance", "patients", "history"]) $(id).hidden = true;
      if (window.lumboGlance && window.lumboGlance.stop) window.lumboGlance.stop();
      return;
    }
    try { await load(); } catch (e) { msg("patients-msg", e.message, true); }
    setInterval(() => { // what each patient is doing now, from the live overview
      for (const tr of document.querySelectorAll("#patients-table tr[data-patient]")) {
        const cell = tr.querySelector(".p-live");
        const text = liveWord(tr.dataset.patient);
        if (cell && cell.textContent !== text) cell.textContent = text;
      }
    }, 1000);
  }
  window.lumboPatients = { list: () => patients, reload: load };
  init();
})();
