// app.js -- the pairing page: sign in with the Matrix account, generate a pair code, watch it
// connect, list and revoke connections. The access token lives in sessionStorage only (gone
// with the tab), never in persistent storage or a cookie.

const API = "/v1/local-mindroom";
const TOKEN_KEY = "mindroom.matrix_token";
const USER_KEY = "mindroom.matrix_user";

const $ = (id) => document.getElementById(id);
let homeserver = "";
let pairTimer = null;
let pollTimer = null;

function show(id, visible) {
  $(id).hidden = !visible;
}

function showError(message) {
  $("error").textContent = message;
  show("error", Boolean(message));
}

// Every answer of the service carries {"detail": ...} when it is an error.
async function readError(resp) {
  try {
    const body = await resp.json();
    if (body && typeof body.detail === "string") return `${resp.status}: ${body.detail}`;
    if (body && typeof body.error === "string") return `${resp.status}: ${body.error}`;
  } catch (e) {
    // not JSON: the status says enough
  }
  return `HTTP ${resp.status}`;
}

async function api(method, path, extraHeaders) {
  const headers = Object.assign({ Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` }, extraHeaders || {});
  const resp = await fetch(API + path, { method, headers, cache: "no-store" });
  if (resp.status === 401) {
    signOut();
    throw new Error("Your Matrix session is no longer valid: sign in again.");
  }
  if (!resp.ok) throw new Error(await readError(resp));
  return resp.json();
}

function formatTime(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

async function loadConnections() {
  const body = await api("GET", "/connections");
  const list = body.connections || [];
  const tbody = $("connections-body");
  tbody.replaceChildren();
  for (const c of list) {
    const tr = document.createElement("tr");
    tr.dataset.id = c.id;
    if (c.revoked_at) tr.className = "revoked";
    cell(tr, c.client_name);
    cell(tr, c.namespace);
    cell(tr, formatTime(c.created_at));
    cell(tr, formatTime(c.last_seen_at));
    cell(tr, c.revoked_at ? `revoked ${formatTime(c.revoked_at)}` : "active");
    const action = cell(tr, "");
    if (!c.revoked_at) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "revoke";
      b.textContent = "Revoke";
      b.addEventListener("click", () => revoke(c.id, c.client_name));
      action.appendChild(b);
    }
    tbody.appendChild(tr);
  }
  show("connections", list.length > 0);
  show("no-connections", list.length === 0);
}

async function revoke(id, name) {
  if (!window.confirm(`Revoke ${name}? Its agents can no longer register accounts.`)) return;
  try {
    await api("DELETE", `/connections/${encodeURIComponent(id)}`);
    await loadConnections();
    showError("");
  } catch (e) {
    showError(e.message);
  }
}

function stopPairing() {
  clearInterval(pairTimer);
  clearTimeout(pollTimer);
  pairTimer = pollTimer = null;
}

function setStatus(word) {
  const s = $("pair-status");
  s.textContent = word;
  s.className = `status ${word}`;
}

async function generate() {
  stopPairing();
  showError("");
  let started;
  try {
    started = await api("POST", "/pair/start");
  } catch (e) {
    showError(e.message);
    return;
  }
  $("pair-code").textContent = started.pair_code;
  $("pair-command").textContent = `mindroom connect --pair-code ${started.pair_code}`;
  setStatus("pending");
  show("code-box", true);
  const expires = Date.parse(started.expires_at);
  const tick = () => {
    const left = Math.max(0, Math.round((expires - Date.now()) / 1000));
    $("countdown").textContent = left > 0 ? `expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}` : "expired";
  };
  tick();
  pairTimer = setInterval(tick, 1000);
  const interval = Math.max(1, started.poll_interval_seconds || 3) * 1000;
  const poll = async () => {
    try {
      const st = await api("GET", "/pair/status", { "X-Local-MindRoom-Pair-Session-Id": started.pair_session_id });
      setStatus(st.status);
      if (st.status === "connected") {
        stopPairing();
        $("countdown").textContent = st.connection ? `paired with ${st.connection.client_name}` : "paired";
        await loadConnections();
        return;
      }
      if (st.status === "expired") {
        stopPairing();
        $("countdown").textContent = "expired: generate a new code";
        return;
      }
    } catch (e) {
      showError(e.message);
    }
    pollTimer = setTimeout(poll, interval);
  };
  pollTimer = setTimeout(poll, interval);
}

function signedIn(userId) {
  $("who-id").textContent = userId;
  show("who", true);
  show("sign-in", false);
  show("pairing", true);
  show("connections-box", true);
  loadConnections().catch((e) => showError(e.message));
}

function signOut() {
  stopPairing();
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
  show("who", false);
  show("pairing", false);
  show("code-box", false);
  show("connections-box", false);
  show("sign-in", true);
}

// Password login against the homeserver itself (Matrix client-server API); only the token is kept.
async function passwordLogin(ev) {
  ev.preventDefault();
  showError("");
  const body = {
    type: "m.login.password",
    identifier: { type: "m.id.user", user: $("username").value.trim() },
    password: $("password").value,
    initial_device_display_name: "MindRoom pairing page",
  };
  try {
    const resp = await fetch(`${homeserver}/_matrix/client/v3/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!resp.ok) throw new Error(`Sign-in failed (${await readError(resp)})`);
    const got = await resp.json();
    sessionStorage.setItem(TOKEN_KEY, got.access_token);
    sessionStorage.setItem(USER_KEY, got.user_id);
    $("password").value = "";
    signedIn(got.user_id);
  } catch (e) {
    showError(e.message);
  }
}

async function tokenLogin(ev) {
  ev.preventDefault();
  showError("");
  const token = $("token").value.trim();
  try {
    const resp = await fetch(`${homeserver}/_matrix/client/v3/account/whoami`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    if (!resp.ok) throw new Error(`The homeserver does not accept this token (${await readError(resp)})`);
    const got = await resp.json();
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(USER_KEY, got.user_id);
    $("token").value = "";
    signedIn(got.user_id);
  } catch (e) {
    showError(e.message);
  }
}

async function main() {
  $("password-form").addEventListener("submit", passwordLogin);
  $("token-form").addEventListener("submit", tokenLogin);
  $("sign-out").addEventListener("click", signOut);
  $("generate").addEventListener("click", generate);
  try {
    const resp = await fetch("config.json", { cache: "no-store" });
    homeserver = (await resp.json()).homeserver;
  } catch (e) {
    showError("The page could not read its settings (config.json); reload it.");
    return;
  }
  const user = sessionStorage.getItem(USER_KEY);
  if (sessionStorage.getItem(TOKEN_KEY) && user) signedIn(user);
  else signOut();
}

main();
