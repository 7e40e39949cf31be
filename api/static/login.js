// The login page: username + password -> POST /api/auth/login (sets the HttpOnly session
// cookie), then on to `?next=` (a path on this site only). Errors are said in words next to the
// field and in an alert, and focus goes to them.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);

  /** a path on this site, else "/" (the server sanitises `next` as well) */
  function safeNext(p) {
    if (!p || p[0] !== "/" || p.startsWith("//") || p.startsWith("/\\") || p.startsWith("/login")) return "/";
    return p;
  }
  const next = safeNext(params.get("next"));

  function show(el, text) { el.textContent = text; el.hidden = !text; }

  function fieldError(id, text) {
    const input = $(id);
    show($(id + "-error"), text);
    if (text) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
  }

  function formError(text) {
    const box = $("login-error");
    show(box, text);
    if (text) box.focus();
  }

  if (params.get("link") === "invalid") {
    show($("login-note"), "That sign-in link has been used or has expired. Sign in with your " +
      "password, or ask for a new link.");
  } else if (params.has("next")) {
    show($("login-note"), "Please sign in to continue.");
  }

  // Already signed in? Arriving with `next` (e.g. after a login link opened from another site,
  // where SameSite=Strict kept the cookie back): go on at once. Otherwise offer to continue.
  fetch("/api/auth/me", { credentials: "same-origin" }).then(async (res) => {
    if (!res.ok) return;
    const me = await res.json();
    if (params.has("next")) { location.replace(next); return; }
    const home = me.account.role === "therapist" ? "/therapist" : "/";
    $("signed-in-name").textContent = me.account.display_name || me.account.username;
    $("continue").setAttribute("href", home);
    $("signed-in").hidden = false;
  }).catch(() => {});

  $("show-password").addEventListener("change", (ev) => {
    $("password").type = ev.target.checked ? "text" : "password";
  });

  let busy = false;
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (busy) return;
    const username = $("username").value.trim();
    const password = $("password").value;
    fieldError("username", username ? "" : "Enter your username.");
    fieldError("password", password ? "" : "Enter your password.");
    if (!username || !password) {
      formError("");
      $(username ? "password" : "username").focus();
      return;
    }
    busy = true;
    $("submit").disabled = true;
    $("submit").textContent = "Signing in…";
    try {
      const res = await fetch("/api/auth/login", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username, password, next }),
      });
      let data = null;
      try { data = await res.json(); } catch (e) { data = null; }
      if (res.ok) {
        location.replace(safeNext(data && data.next));
        return;
      }
      let msg = data && typeof data.detail === "string" ? data.detail : null;
      if (res.status === 401) msg = "Wrong username or password. Check both and try again.";
      else if (res.status === 422) msg = (data && data.message) || "Check the username and password.";
      formError(msg || `Signing in failed (${res.status}).`);
      $("password").value = "";
    } catch (e) {
      formError("Cannot reach Lumbo. Check the network connection and try again.");
    } finally {
      busy = false;
      $("submit").disabled = false;
      $("submit").textContent = "Sign in";
    }
  });
})();
