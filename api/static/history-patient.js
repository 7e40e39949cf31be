// Patient page: "Your progress over the weeks": how far the patient bends forward, how close
// they get to the target on their own and their pain, one point per programme week, in large
// text and plain words (GET /api/patients/{own id}/history; a patient sees only their own).
// Refreshed when a session ends.
"use strict";

(function () {
  const H = LumboHistory, E = H.el;
  const card = E("details", { class: "pp-card ph-card", id: "ph-progress" },
    E("summary", { text: "Your progress over the weeks" }),
    E("ul", { class: "ph-lines", id: "ph-lines" }),
    E("div", { class: "plots", id: "ph-plots" }));
  const host = document.getElementById("pp-more");
  if (host) host.append(card); else document.querySelector("main").after(card);
  const state = { history: null, loads: 0 };
  window.lumboProgress = state;
  let pid = null;

  async function load() {
    if (!pid) return;
    let h;
    try { h = await Lumbo.api("GET", `/api/patients/${encodeURIComponent(pid)}/history`); } catch (e) { return; }
    state.history = h;
    const lines = document.getElementById("ph-lines");
    lines.textContent = "";
    for (const line of H.sentences(h, "patient")) lines.append(E("li", { text: line }));
    const plots = document.getElementById("ph-plots");
    plots.textContent = "";
    if ((h.weeks || []).length) for (const fig of H.weekFigures(h)) plots.append(fig);
    state.loads += 1;
    card.dataset.loaded = String(state.loads);
  }

  async function init() {
    try {
      const me = await Lumbo.api("GET", "/api/auth/me");
      pid = me.account.role === "patient" ? me.account.id : new URLSearchParams(location.search).get("patient_id");
    } catch (e) { return; }
    if (!pid) { card.hidden = true; return; }
    await load();
  }
  if (window.lumboConnection && window.lumboConnection.addListener) {
    window.lumboConnection.addListener((m) => {
      if (m.type === "status" && m.session && ["ended", "stopped"].includes(m.session.state)) setTimeout(load, 1500);
    });
  }
  init();
})();
