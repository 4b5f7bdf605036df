// The recipient viewer: move the secret out of the URL, peek, and redeem only on a tap.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {};
  for (const id of ["app", "title", "status", "notice", "stage", "media", "caption", "timer",
    "view", "retry", "close", "report"]) ui[id] = $(id);
  const KINDS = { image: "Photo", video: "Video", audio: "Voice note" };
  const GONE = {
    viewed: ["Viewed", "This has already been viewed. It's gone now."],
    closed: ["Closed", "You can replay it once more: open the original link again."],
    expired: ["Expired", "This link expired before it was opened."],
    revoked: ["Unsent", "The sender took this back."],
    failed: ["Unavailable", "This media could not be prepared. Ask the sender to send it again."],
  };
  const CODES = { "already-viewed": "viewed", expired: "expired", revoked: "revoked",
    "media-failed": "failed" };
  const match = /^\/v\/([A-Za-z0-9_-]{22})\/?$/.exec(location.pathname);
  const lookup = match ? match[1] : "";
  const KEY = "eph:" + lookup; // the token
  const RID = "eph:rid:" + lookup; // a redeem id whose answer never arrived
  const DONE = "eph:done:" + lookup; // how this link ended here; never a secret
  const store = { // sessionStorage can throw (storage off): the token then lives in this page only
    get: (k) => { try { return sessionStorage.getItem(k); } catch { return null; } },
    set: (k, v) => { try { sessionStorage.setItem(k, v); } catch { /* memory only */ } },
    del: (k) => { try { sessionStorage.removeItem(k); } catch { /* nothing stored */ } },
  };

  // First of all, before any request: the secret moves from the fragment to sessionStorage and
  // leaves the address bar and the history entry.
  let token = "";
  function takeFragment() {
    const secret = location.hash.slice(1);
    const fresh = lookup && /^[A-Za-z0-9_-]{43}$/.test(secret);
    if (fresh) { token = lookup + "." + secret; store.set(KEY, token); store.del(DONE); }
    if (location.hash) history.replaceState(history.state, "", location.pathname);
    return fresh;
  }
  takeFragment();
  if (lookup && !token) token = store.get(KEY) || "";

  // The open view (id, lease, timers, blob URL), what "Try again" does, and retry pacing.
  let view = null, again = null, backoff = 1000, peekTimer = 0, lastShot = 0;

  function show(state, heading, message, buttons = [], focus = false) {
    ui.app.dataset.state = state;
    ui.app.setAttribute("aria-busy", String(state === "loading"));
    ui.title.textContent = heading;
    ui.status.textContent = message;
    for (const b of ["view", "retry", "close", "report"]) ui[b].hidden = !buttons.includes(b);
    ui.stage.hidden = ui.timer.hidden = state !== "open";
    if (state !== "open") ui.notice.hidden = true;
    if (focus) ui.title.focus();
  }

  async function call(method, url, body, lease) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (lease) headers.Authorization = "Lease " + lease;
    const r = await fetch(url, { method, headers, cache: "no-store",
      credentials: "same-origin", referrerPolicy: "no-referrer",
      body: body === undefined ? undefined : JSON.stringify(body) });
    const json = (r.headers.get("Content-Type") || "").includes("json");
    const data = json ? await r.json().catch(() => ({})) : {};
    return { status: r.status, data: data || {}, after: Number(r.headers.get("Retry-After")) || 0 };
  }

  function newId() { // 128 random bits, base64url
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
      .replace(/=+$/, "");
  }

  function until(seconds) {
    const units = [[86400, "day"], [3600, "hour"], [60, "minute"]];
    for (const [size, name] of units) {
      const n = Math.floor((seconds + 60) / size); // 1,209,599 s reads "14 days"
      if (n >= 2 || (n === 1 && size === 60)) return `${n} ${name}${n > 1 ? "s" : ""}`;
    }
    return "less than a minute";
  }

  async function peek() {
    clearTimeout(peekTimer);
    if (!token) return unknown();
    let res;
    try { res = await call("POST", "/v1/views/peek", { token }); } catch { return failed(peek); }
    if (res.status !== 200) return refused(res, peek);
    const p = res.data;
    if (p.state === "ready") return ready(p);
    if (p.state === "processing") return processing(0);
    if (p.state === "viewed" && store.get(RID)) return open(); // our redeem's answer was lost
    return gone(p.state);
  }

  function ready(p) {
    backoff = 1000;
    const n = p.views_left;
    const left = n > 1 ? `${n - 1} replay${n > 2 ? "s" : ""} left` : "view once";
    const when = p.expires_in ? ` The link expires in ${until(p.expires_in)}.` : "";
    show("ready", `${KINDS[p.kind] || "Message"} — ${left}`,
      `Tap View when you're ready. It disappears when you close it.${when}`, ["view"]);
  }

  function processing(after) {
    show("processing", "Almost ready",
      "The sender's media is still being prepared. This page checks again by itself.");
    const wait = Math.max(backoff, after * 1000);
    backoff = Math.min(backoff * 1.5, 15000);
    peekTimer = setTimeout(peek, wait);
  }

  function gone(state, focus = false) {
    const [heading, message] = GONE[state] || GONE.expired;
    token = "";
    store.del(KEY);
    store.set(DONE, state in GONE ? state : "expired");
    show("gone", heading, message, [], focus);
  }

  const unknown = () => dead("unknown", "Invalid link",
    "This link is unknown or incomplete. Check that you opened the whole link.");
  const inApp = () => dead("app-only", "Open this in the app",
    "This message can only be opened in the app, signed in as its recipient.");
  function dead(state, heading, message) { // the token can never work in this browser
    store.del(KEY);
    show(state, heading, message);
  }

  function failed(retry) {
    again = retry;
    show("error", "Can't reach the server", "Check your connection, then try again.", ["retry"]);
  }

  function refused(res, retry) {
    const s = res.status;
    if (s === 404) return unknown();
    if (s === 401 || s === 403) return inApp();
    if (s === 409) return processing(res.after);
    if (s === 410) return gone(CODES[res.data.code] || "expired", true);
    if (s === 429 || s === 503) {
      show("loading", "Just a moment", "The server is busy. Trying again shortly.");
      peekTimer = setTimeout(retry, Math.max(1, res.after) * 1000);
      return;
    }
    failed(retry);
  }

  async function open() {
    if (!token || view) return;
    ui.view.disabled = true;
    ui.status.textContent = "Opening…";
    // One redeem id per tap, kept until an answer arrives: a lost response is not a lost view.
    let rid = store.get(RID);
    if (!rid) store.set(RID, (rid = newId()));
    let res = null;
    for (let i = 0; i < 3 && !res; i++) {
      try { res = await call("POST", "/v1/views", { token, redeem_id: rid }); }
      catch { if (i < 2) await new Promise((resolve) => setTimeout(resolve, 400 * (i + 1))); }
    }
    ui.view.disabled = false;
    if (!res) return failed(open);
    if (res.status !== 429 && res.status < 500) store.del(RID);
    if (res.status === 200 || res.status === 201) return display(res.data);
    return refused(res, open);
  }

  function contentPath(v) { // same origin always: the page is served on viewer_url
    const path = new URL(v.content_url, location.href).pathname;
    return path.startsWith("/v1/views/") ? path : `/v1/views/${v.view_id}/content`;
  }

  async function display(v) {
    view = { id: v.view_id, lease: v.lease, left: v.views_left, blob: "", tick: 0, beat: 0,
      ends: Date.now() + v.lease_expires_in * 1000 };
    let el;
    if (v.kind === "image") {
      let r = null;
      try {
        r = await fetch(contentPath(v), { headers: { Authorization: "Lease " + v.lease },
          cache: "no-store", credentials: "same-origin", referrerPolicy: "no-referrer" });
      } catch { /* handled below */ }
      if (!r || !r.ok) {
        if (r && r.status === 410) return close();
        view = null;
        return failed(() => display(v));
      }
      view.blob = URL.createObjectURL(await r.blob());
      el = new Image();
      el.alt = "Photo from the sender";
      el.draggable = false;
      el.src = view.blob;
    } else {
      el = document.createElement(v.kind === "video" ? "video" : "audio");
      el.controls = true;
      el.preload = "auto";
      el.setAttribute("controlslist", "nodownload noplaybackrate noremoteplayback");
      el.disableRemotePlayback = true;
      if (v.kind === "video") {
        el.playsInline = el.disablePictureInPicture = true;
        for (const name of ["playsinline", "disablepictureinpicture"]) el.setAttribute(name, "");
      }
      el.src = contentPath(v); // the path-scoped lease cookie authorises these requests
    }
    if (v.width && v.height && v.kind !== "audio") [el.width, el.height] = [v.width, v.height];
    el.addEventListener("contextmenu", (e) => e.preventDefault());
    ui.media.replaceChildren(el);
    ui.caption.textContent = v.caption || ""; // text only, never markup
    ui.caption.hidden = !v.caption;
    ui.notice.hidden = v.capture !== "block";
    const more = v.views_left > 0 ? " You can replay it once more later." : "";
    show("open", KINDS[v.kind] || "Message", `It disappears when you close it.${more}`,
      ["close", "report"], true);
    view.tick = setInterval(tick, 1000);
    // The lease ends after lease_idle seconds without a request: beat at half that, so a
    // paused video (or a photo being looked at) keeps it until the user closes.
    view.beat = setInterval(keepalive, Math.max(1, (v.lease_idle || 60) / 2) * 1000);
    tick();
  }

  function tick() {
    if (!view) return;
    const s = Math.max(0, Math.round((view.ends - Date.now()) / 1000));
    ui.timer.textContent = `Closes in ${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
    if (s === 0) close();
  }

  async function keepalive() {
    const v = view;
    if (!v) return;
    try {
      const r = await call("POST", `/v1/views/${v.id}/keepalive`, undefined, v.lease);
      if (r.status === 410 || r.status === 404) return close();
      if (r.status === 200 && view === v) v.ends = Date.now() + r.data.lease_expires_in * 1000;
    } catch { /* offline for a moment: the next beat tries again */ }
  }

  function close() {
    const v = view;
    if (!v) return;
    view = null;
    [v.tick, v.beat].forEach(clearInterval);
    // keepalive: the request outlives the page when this runs from pagehide.
    fetch(`/v1/views/${v.id}`, { method: "DELETE", headers: { Authorization: "Lease " + v.lease },
      keepalive: true, cache: "no-store", credentials: "same-origin",
      referrerPolicy: "no-referrer" }).catch(() => {});
    const el = ui.media.firstElementChild;
    if (el && el.pause) {
      el.pause();
      el.removeAttribute("src");
      el.load(); // drops the buffered media
    }
    ui.media.replaceChildren();
    ui.caption.textContent = "";
    if (v.blob) URL.revokeObjectURL(v.blob);
    gone(v.left > 0 ? "closed" : "viewed", true);
  }

  async function report() {
    const v = view;
    if (!v) return;
    ui.report.disabled = true;
    let res = null;
    try { res = await call("POST", `/v1/views/${v.id}/report`, {}, v.lease); } catch { /* below */ }
    const ok = res && res.status < 300;
    ui.status.textContent = ok ? "Reported. Thank you."
      : res && (res.status === 404 || res.status === 405) ? "Reporting isn't available here."
        : "The report could not be sent. Try again.";
    ui.report.disabled = !!ok;
  }

  function screenshot() { // best effort, at most every 10 s: the web can't detect most captures
    const v = view;
    if (!v || Date.now() - lastShot < 10000) return;
    lastShot = Date.now();
    call("POST", `/v1/views/${v.id}/screenshot`, { kind: "screenshot" }, v.lease).catch(() => {});
  }

  ui.view.addEventListener("click", open);
  ui.retry.addEventListener("click", () => again && again());
  ui.close.addEventListener("click", close);
  ui.report.addEventListener("click", report);
  addEventListener("pagehide", close);
  document.addEventListener("keyup", (e) => { if (e.key === "PrintScreen") screenshot(); });
  document.addEventListener("keydown", (e) => {
    if (e.metaKey && e.shiftKey && /^Digit[345]$/.test(e.code)) screenshot();
  });
  // The link opened again in this tab only changes the fragment: the page does not reload.
  addEventListener("hashchange", () => { if (takeFragment() && !view) peek(); });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && ui.app.dataset.state === "processing") { backoff = 1000; peek(); }
  });

  const done = store.get(DONE);
  if (token) peek();
  else if (done) gone(done);
  else unknown();
})();
