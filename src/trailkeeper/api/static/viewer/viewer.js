// trailkeeper event viewer: one script, no framework, no build. Event fields are written with
// textContent only (never as markup). docs/viewer.md describes what it does.
"use strict";

(() => {
  const API = "/viewer/api";
  const HEADERS = { "X-Trailkeeper-Viewer": "1" };
  const $ = (id) => document.getElementById(id);
  const state = { q: "", cursor: null, next: null, previous: null, rows: [], selected: -1, open: null };
  const config = readConfig();

  // ---- start: take the token out of the URL, trade it for the session cookie ----------------

  function readConfig() {
    // Not URLSearchParams: it reads "+" as a space, and a key's base64 holds "+".
    const fragment = new Map();
    for (const part of location.hash.slice(1).split("&")) {
      const at = part.indexOf("=");
      if (at > 0) fragment.set(part.slice(0, at), decodeURIComponent(part.slice(at + 1)));
    }
    const token = fragment.get("token");
    const pinnedKey = fragment.get("vkey");
    // The token must not stay in the address bar, history or a copied link.
    const keep = pinnedKey ? "#vkey=" + encodeURIComponent(pinnedKey) : "";
    history.replaceState(null, "", location.pathname + location.search + keep);
    return {
      token,
      vkey: pinnedKey || document.body.dataset.vkey,
      vkeySource: pinnedKey ? "pinned by the page that opened this viewer" : "configured on this server",
    };
  }

  async function api(path, options = {}) {
    const response = await fetch(API + path, { credentials: "same-origin", ...options, headers: { ...HEADERS, ...(options.headers || {}) } });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const error = new Error((body && body.error && body.error.message) || "HTTP " + response.status);
      error.status = response.status;
      error.code = body && body.error && body.error.code;
      throw error;
    }
    return body;
  }

  async function start() {
    try {
      const session = config.token
        ? await api("/session", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: config.token }) })
        : await api("/session");
      state.session = session;
    } catch (error) {
      return showAccessProblem(error);
    }
    $("scope").textContent = "Tenant " + state.session.tenant + " · link valid until " + new Date(state.session.expires_at).toLocaleString();
    if (state.session.pinned_query) {
      $("pinned").hidden = false;
      $("pinned").textContent = "This link shows only events matching: " + state.session.pinned_query;
    }
    $("app").hidden = false;
    bind();
    await load(null);
  }

  function showAccessProblem(error) {
    $("app").hidden = true;
    $("detail").hidden = true;
    $("notice").hidden = false;
    if (error.code === "viewer_session_expired") {
      $("notice-title").textContent = "This link has expired";
      $("notice-text").textContent = "Viewer links are short-lived. Go back to the application that opened this page and open the audit log again to get a fresh link.";
    } else if (error.status === 401) {
      $("notice-title").textContent = "No access";
      $("notice-text").textContent = "This page needs a valid viewer link. Open the audit log from your application again. (" + error.message + ")";
    } else {
      $("notice-title").textContent = "Something went wrong";
      $("notice-text").textContent = error.message;
    }
  }

  // ---- the query: search box + filter bar, sent as `q` ------------------------------------

  function quote(value) {
    return '"' + value.replace(/["\\*]/g, (c) => "\\" + c) + '"';
  }

  function buildQuery() {
    const terms = [$("search").value.trim()];
    for (const input of document.querySelectorAll("#filters input")) {
      const value = input.value.trim();
      if (value) terms.push(input.dataset.field + ":" + (input.type === "date" ? value : quote(value)));
    }
    return terms.filter(Boolean).join(" ");
  }

  function exportUrl(format) {
    return API + "/export?" + new URLSearchParams({ q: state.q, format }).toString();
  }

  async function load(cursor) {
    const params = new URLSearchParams({ limit: "20" });
    if (state.q) params.set("q", state.q);
    if (cursor) params.set("cursor", cursor);
    let page;
    try {
      page = await api("/events?" + params.toString());
    } catch (error) {
      if (error.status === 401) return showAccessProblem(error);
      const box = $("search-error");
      box.hidden = false;
      box.textContent = error.message;
      return;
    }
    $("search-error").hidden = true;
    state.next = page.next_cursor;
    state.previous = page.previous_cursor;
    render(page.items);
  }

  // ---- the table --------------------------------------------------------------------------

  function cell(text, title) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (title) td.title = title;
    return td;
  }

  function actorText(actor) {
    if (!actor) return "";
    return actor.name || actor.email ? (actor.name || actor.email) + " (" + actor.id + ")" : actor.id;
  }

  function targetText(target) {
    if (!target) return "";
    const kind = target.type ? target.type + " " : "";
    return kind + (target.name || target.id || target.email || "");
  }

  function outcomeOf(event) {
    if (event.outcome != null) return event.outcome;
    return event.metadata && typeof event.metadata.outcome === "string" ? event.metadata.outcome : "";
  }

  function render(items) {
    state.rows = items;
    const body = $("rows");
    body.replaceChildren();
    items.forEach((event, index) => {
      const tr = document.createElement("tr");
      tr.tabIndex = -1;
      tr.dataset.index = String(index);
      const when = new Date(event.occurred_at);
      tr.append(
        cell(when.toLocaleString(), "UTC: " + event.occurred_at),
        cell(actorText(event.actor)),
        cell(event.action),
        cell(targetText(event.target)),
        cell(event.source),
        cell(outcomeOf(event)),
      );
      const actions = document.createElement("td");
      const verify = document.createElement("button");
      verify.type = "button";
      verify.className = "verify-row";
      verify.textContent = "Verify";
      verify.addEventListener("click", (e) => { e.stopPropagation(); openDetail(index, true); });
      actions.append(verify);
      tr.append(actions);
      tr.addEventListener("click", () => openDetail(index, false));
      body.append(tr);
    });
    $("empty").hidden = items.length > 0;
    $("events").hidden = items.length === 0;
    $("newer").disabled = !state.previous;
    $("older").disabled = !state.next;
    $("export-csv").href = exportUrl("csv");
    $("export-jsonl").href = exportUrl("jsonl");
    select(items.length ? 0 : -1);
    if (!performance.getEntriesByName("rows-painted").length) {
      requestAnimationFrame(() => performance.mark("rows-painted"));
    }
  }

  function select(index) {
    const rows = $("rows").children;
    if (state.selected >= 0 && rows[state.selected]) rows[state.selected].classList.remove("selected");
    state.selected = index;
    if (index >= 0 && rows[index]) {
      rows[index].classList.add("selected");
      rows[index].scrollIntoView({ block: "nearest" });
    }
  }

  // ---- one event --------------------------------------------------------------------------

  function flatten(value, prefix, out) {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      for (const key of Object.keys(value)) flatten(value[key], prefix ? prefix + "." + key : key, out);
    } else {
      out.push([prefix, typeof value === "string" ? value : JSON.stringify(value)]);
    }
    return out;
  }

  function openDetail(index, verify) {
    const event = state.rows[index];
    if (!event) return;
    select(index);
    state.open = event;
    $("detail").hidden = false;
    $("detail-title").textContent = event.action + " · " + event.id;
    $("detail").scrollIntoView({ block: "start" });
    const list = $("fields");
    list.replaceChildren();
    for (const [name, value] of flatten(event, "", [])) {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = value;
      list.append(dt, dd);
    }
    $("json").textContent = JSON.stringify(event, null, 2);
    $("verify-result").hidden = true;
    $("copy-state").textContent = "";
    if (verify) verifyOpen();
  }

  async function copyJson() {
    const text = $("json").textContent;
    try {
      await navigator.clipboard.writeText(text);
      $("copy-state").textContent = "Copied.";
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents($("json"));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      $("copy-state").textContent = "Selected: press Ctrl+C to copy.";
    }
  }

  // ---- verification: RFC 8785 + RFC 9162 + C2SP signed note, in the page -------------------

  const utf8 = new TextEncoder();

  function jcs(value) {
    if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
    if (typeof value === "number") {
      if (!Number.isFinite(value)) throw new Error("a number is not finite");
      return JSON.stringify(value); // ES6 Number-to-string: what RFC 8785 prescribes
    }
    if (Array.isArray(value)) return "[" + value.map(jcs).join(",") + "]";
    if (typeof value === "object") {
      // Default sort compares UTF-16 code units, as RFC 8785 orders keys.
      const keys = Object.keys(value).sort();
      return "{" + keys.map((k) => JSON.stringify(k) + ":" + jcs(value[k])).join(",") + "}";
    }
    throw new Error("not JSON: " + typeof value);
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) { out.set(part, at); at += part.length; }
    return out;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }
  const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

  function fromB64(text) {
    const raw = atob(text);
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function equal(a, b) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }

  function bitLength(n) { let bits = 0n; while (n > 0n) { bits += 1n; n >>= 1n; } return bits; }
  function popCount(n) { let count = 0; while (n > 0n) { count += Number(n & 1n); n >>= 1n; } return count; }

  // RFC 9162 2.1.3.2: the root an inclusion proof leads to.
  async function rootFromInclusion(index, size, leaf, proof) {
    const i = BigInt(index), n = BigInt(size);
    if (i < 0n || i >= n) throw new Error("the event's index " + index + " is not in a tree of size " + size);
    const inner = bitLength(i ^ (n - 1n));
    const border = popCount(i >> inner);
    if (proof.length !== Number(inner) + border) throw new Error("the inclusion proof has the wrong length");
    let value = leaf;
    for (let k = 0; k < proof.length; k++) {
      if (BigInt(k) < inner && ((i >> BigInt(k)) & 1n) === 0n) value = await nodeHash(value, proof[k]);
      else value = await nodeHash(proof[k], value);
    }
    return value;
  }

  async function parseVkey(vkey) {
    const first = vkey.indexOf("+"), second = vkey.indexOf("+", first + 1);
    const [name, hexId, encoded] = [vkey.slice(0, first), vkey.slice(first + 1, second), vkey.slice(second + 1)];
    const raw = first > 0 && second > first ? fromB64(encoded) : new Uint8Array();
    if (!name || !hexId || raw.length !== 33 || raw[0] !== 1) throw new Error("the pinned log key is not an Ed25519 note key");
    const id = (await sha256(concat(utf8.encode(name + "\n"), raw))).slice(0, 4);
    const hex = Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("");
    if (hex !== hexId) throw new Error("the pinned log key's id does not match the key");
    return { name, id, publicKey: raw.slice(1) };
  }

  // C2SP signed note: the body must carry a valid signature by the pinned key.
  async function verifyCheckpoint(note, key) {
    const split = note.indexOf("\n\n");
    if (split < 0) throw new Error("the checkpoint is not a signed note");
    const body = note.slice(0, split + 1);
    let signature = null;
    for (const line of note.slice(split + 2).split("\n")) {
      const parts = line.split(" ");
      if (parts.length !== 3 || parts[0] !== "\u2014" || parts[1] !== key.name) continue;
      const raw = fromB64(parts[2]);
      if (equal(raw.slice(0, 4), key.id)) signature = raw.slice(4);
    }
    if (!signature) throw new Error("the checkpoint carries no signature by the pinned key");
    let publicKey;
    try {
      publicKey = await crypto.subtle.importKey("raw", key.publicKey, { name: "Ed25519" }, false, ["verify"]);
    } catch (_) {
      throw Object.assign(new Error("this browser's WebCrypto has no Ed25519, so the signature cannot be checked here"), { unsupported: true });
    }
    if (!(await crypto.subtle.verify({ name: "Ed25519" }, publicKey, signature, utf8.encode(body)))) {
      throw new Error("the checkpoint's signature is invalid");
    }
    const lines = body.slice(0, -1).split("\n");
    const size = Number(lines[1]);
    if (lines.length < 3 || !/^[0-9]+$/.test(lines[1])) throw new Error("the checkpoint is malformed");
    return { origin: lines[0], size, root: fromB64(lines[2]) };
  }

  async function verify(event) {
    if (!window.isSecureContext || !window.crypto || !crypto.subtle) {
      throw Object.assign(new Error("this page is not in a secure context (HTTPS or localhost), so the browser offers no WebCrypto to verify with"), { unsupported: true });
    }
    const key = await parseVkey(config.vkey);
    const answer = await api("/events/" + encodeURIComponent(event.id) + "/proof");
    const proof = answer.proof;
    const stated = fromB64(proof.leaf_hash);
    // 1. The event as shown is the event that was logged: its canonical JSON is the leaf.
    const body = {};
    for (const name of Object.keys(event)) if (name !== "leaf_hash") body[name] = event[name];
    const leaf = await leafHash(utf8.encode(jcs(body)));
    if (!equal(leaf, stated)) throw new Error("the event's content does not match the leaf recorded in the log: it was changed after it was logged");
    // 2. That leaf is in the tree the checkpoint signs, and the pinned key signed it.
    const checkpoint = await verifyCheckpoint(proof.checkpoint, key);
    if (checkpoint.origin !== key.name + "/" + event.tenant) throw new Error("the checkpoint is for another log (" + checkpoint.origin + ")");
    if (checkpoint.size !== proof.tree_size) throw new Error("the proof is for another tree size than the checkpoint");
    const root = await rootFromInclusion(proof.log_index, checkpoint.size, leaf, proof.proof.map(fromB64));
    if (!equal(root, checkpoint.root)) throw new Error("the inclusion proof does not lead to the signed root");
    return "Verified: this event is entry " + proof.log_index + " of the " + checkpoint.size + "-event log " + checkpoint.origin + ", signed by the key " + config.vkeySource + ".";
  }

  async function verifyOpen() {
    const box = $("verify-result");
    box.hidden = false;
    box.className = "verify";
    box.textContent = "Verifying…";
    try {
      box.textContent = await verify(state.open);
      box.classList.add("ok");
    } catch (error) {
      if (error.status === 401) return showAccessProblem(error);
      box.textContent = (error.unsupported ? "Cannot verify: " : "Not verified: ") + error.message;
      box.classList.add(error.unsupported ? "unsupported" : "bad");
    }
  }

  // ---- wiring -----------------------------------------------------------------------------

  function bind() {
    $("search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      state.q = buildQuery();
      load(null);
    });
    $("clear").addEventListener("click", () => {
      for (const input of document.querySelectorAll("#filters input")) input.value = "";
      $("search").value = "";
      state.q = "";
      load(null);
    });
    $("older").addEventListener("click", () => state.next && load(state.next));
    $("newer").addEventListener("click", () => state.previous && load(state.previous));
    $("close-detail").addEventListener("click", () => { $("detail").hidden = true; });
    $("copy").addEventListener("click", copyJson);
    $("detail-verify").addEventListener("click", verifyOpen);
    document.addEventListener("keydown", onKey);
  }

  function onKey(e) {
    const typing = e.target instanceof HTMLInputElement;
    if (e.key === "Escape") { $("detail").hidden = true; if (typing) e.target.blur(); return; }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    const actions = {
      j: () => select(Math.min(state.selected + 1, state.rows.length - 1)),
      ArrowDown: () => select(Math.min(state.selected + 1, state.rows.length - 1)),
      k: () => select(Math.max(state.selected - 1, 0)),
      ArrowUp: () => select(Math.max(state.selected - 1, 0)),
      Enter: () => openDetail(state.selected, false),
      n: () => state.next && load(state.next),
      ArrowRight: () => state.next && load(state.next),
      p: () => state.previous && load(state.previous),
      ArrowLeft: () => state.previous && load(state.previous),
      "/": () => $("search").focus(),
    };
    const action = actions[e.key];
    if (action && (state.rows.length || e.key === "/")) {
      e.preventDefault();
      action();
    }
  }

  start();
})();
