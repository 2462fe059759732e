// lightd dashboard: the coordinator's own page. No framework, no build step, no CDN.
// Data comes from the coordinator's API with the operator's token (kept in sessionStorage).
// Live updates come from the event stream (EventSource on /ws, resumed with Last-Event-ID).
"use strict";

const TOKEN_KEY = "lightd.token";
const PAGE = 100;            // rows per page in the fleet table
const FEED_MAX = 500;        // events kept by the feed
const LOG_MAX = 1000;        // log lines kept on the server page
const HISTORY_REFRESH = 5000; // the server page reads new history samples this often

const S = {
  token: sessionStorage.getItem(TOKEN_KEY),
  nodes: new Map(),          // id -> node record (from initial_state and node_* events)
  services: {},              // node id -> [service]
  feed: [],                  // newest last: {id, type, timestamp, data}
  results: new Map(),        // command id -> result (from command_result events)
  source: null,
  lastEventId: null,
  view: null,                // the current view's {render, onEvent, close}
  fleetPage: 0,
};

// ---- small helpers ------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $ = (sel) => document.querySelector(sel);
const badge = (word) => h("span", { class: `badge ${word}`, "data-state": word }, word);
const enc = encodeURIComponent;

function ago(ts) {
  if (!ts) return "-";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
function duration(fromTs) {
  if (!fromTs) return "-";
  let s = Math.max(0, Math.round((Date.now() - Date.parse(fromTs)) / 1000));
  const d = Math.floor(s / 86400); s %= 86400;
  const hr = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60); s %= 60;
  return (d ? `${d}d ` : "") + (d || hr ? `${hr}h ` : "") + `${m}m ${s}s`;
}
function bytes(n) {
  if (!n) return "0 B";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(n >= 100 || i === 0 ? 0 : 1)} ${u[i]}`;
}
function memoryLimit(value) {
  if (value === null || value === undefined) return 0;
  if (typeof value === "number") return value;
  const m = /^(\d+)([bkmg]?)$/i.exec(String(value).trim());
  if (!m) return 0;
  return Number(m[1]) * ({ "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 })[m[2].toLowerCase()];
}

// ---- the API --------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

async function api(path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (S.token) headers.Authorization = `Bearer ${S.token}`;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, { method: options.method || "GET", headers, body: options.body });
  let body = null;
  const text = await response.text();
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (response.status === 401) {
    signOut(tokenProblem(body));
    throw new ApiError(401, body && body.detail);
  }
  if (!response.ok) throw new ApiError(response.status, body && body.detail !== undefined ? body.detail : body);
  return body;
}

function tokenProblem(body) {
  const detail = body && typeof body.detail === "string" ? body.detail : "";
  if (/expired/i.test(detail)) return "Your token has expired: sign in again.";
  if (!S.token) return "This coordinator needs a token.";
  return `The coordinator refused this token (${detail || "unauthorized"}).`;
}

// The result of a container command: its output is the agent's JSON answer (or an error text).
function commandOutput(result) {
  if (!result || result.status !== "success") {
    throw new ApiError(409, (result && result.output) || "the command failed");
  }
  try { return JSON.parse(result.output); } catch { return result.output; }
}

// ---- sign in / out --------------------------------------------------------------------------
function showLogin(message) {
  $("#view").hidden = true;
  $("#nav").hidden = true;
  $("#signout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#token").focus();
}

function signOut(message) {
  S.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  stopStream();
  showLogin(message);
}

async function signIn(event) {
  event.preventDefault();
  const value = $("#token").value.trim();
  if (!value) return;
  $("#login-error").textContent = "";
  let token = value;
  if ($("#exchange").checked) {
    // a server token trades for a JWT; a JWT (or any other token) is refused there: keep it
    const r = await fetch("/api/v1/auth/token", { method: "POST", headers: { Authorization: `Bearer ${value}` } });
    if (r.ok) token = (await r.json()).access_token;
  }
  const check = await fetch("/api/v1/nodes?limit=1", { headers: { Authorization: `Bearer ${token}` } });
  if (check.status === 401 || check.status === 403) {
    let detail = "";
    try { detail = (await check.json()).detail; } catch { /* not JSON */ }
    $("#login-error").textContent = /expired/i.test(detail || "")
      ? "That token has expired: get a new one."
      : `Wrong token: the coordinator refused it (${detail || check.status}).`;
    return;
  }
  S.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#token").value = "";
  start();
}

// ---- the live stream ------------------------------------------------------------------------
function startStream() {
  stopStream();
  // EventSource cannot send headers: the event stream (only it) takes ?token=
  const url = S.token ? `/ws?token=${enc(S.token)}` : "/ws";
  const source = new EventSource(url);
  S.source = source;
  source.onopen = () => { $("#live").textContent = "live"; $("#live").classList.add("on"); };
  source.onerror = async () => {
    $("#live").textContent = "reconnecting";
    $("#live").classList.remove("on");
    if (source.readyState === EventSource.CLOSED) {
      // refused (401 after a token expired, or an error page): find out why, then retry
      try { await api("/api/v1/nodes?limit=1"); setTimeout(startStream, 2000); } catch { /* signed out */ }
    }
  };
  source.onmessage = (message) => {
    let envelope;
    try { envelope = JSON.parse(message.data); } catch { return; }
    S.lastEventId = message.lastEventId;
    handleEvent(Object.assign({ id: message.lastEventId }, envelope));
  };
}

function stopStream() {
  if (S.source) S.source.close();
  S.source = null;
  $("#live").textContent = "offline";
  $("#live").classList.remove("on");
}

function handleEvent(event) {
  const data = event.data || {};
  switch (event.type) {
    case "initial_state":
      S.nodes = new Map((data.nodes || []).map((n) => [n.id, n]));
      S.services = data.services || {};
      break;
    case "node_registered":
    case "node_updated":
    case "node_inactive":
      if (data.id) S.nodes.set(data.id, data);
      break;
    case "node_unregistered":
      S.nodes.delete(data.id);
      delete S.services[data.id];
      break;
    case "command_result":
      S.results.set(data.id, data);
      break;
    default:
      break;
  }
  if (event.type !== "initial_state") {
    S.feed.push(event);
    if (S.feed.length > FEED_MAX) S.feed.splice(0, S.feed.length - FEED_MAX);
  }
  if (S.view && S.view.onEvent) S.view.onEvent(event);
}

// Services come with initial_state; later changes are re-read from /api/v1/services (one
// fleet-wide request, debounced), never per node.

// ---- router -----------------------------------------------------------------------------------
const VIEWS = {};

function route() {
  if (S.view && S.view.close) S.view.close();
  const parts = (location.hash.replace(/^#\/?/, "") || "fleet").split("/").map(decodeURIComponent);
  const name = VIEWS[parts[0]] ? parts[0] : "fleet";
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.view === name || (name === "node" || name === "server") && a.dataset.view === "fleet");
  }
  const main = $("#view");
  main.replaceChildren();
  S.view = VIEWS[name](main, ...parts.slice(1)) || {};
}

function start() {
  $("#login").hidden = true;
  $("#view").hidden = false;
  $("#nav").hidden = false;
  $("#signout").hidden = !S.token;
  startStream();
  route();
}

// ---- Fleet ------------------------------------------------------------------------------------
VIEWS.fleet = (main) => {
  const status = h("select", { id: "filter-status", "aria-label": "status" },
    h("option", { value: "" }, "any status"), h("option", { value: "active" }, "active"),
    h("option", { value: "inactive" }, "inactive"));
  const label = h("input", { id: "filter-label", placeholder: "label key=value", "aria-label": "label" });
  const text = h("input", { id: "filter-text", placeholder: "search id, name, address", "aria-label": "search" });
  const count = h("span", { class: "muted", id: "fleet-count" });
  const body = h("tbody", { id: "fleet-rows" });
  const pager = h("div", { class: "pager" });
  main.append(h("section", { class: "card" },
    h("h1", {}, "Fleet"),
    h("div", { class: "toolbar" }, status, label, text, h("span", { class: "grow" }), count),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Node"), h("th", {}, "Status"), h("th", { class: "hide-narrow" }, "Provider"),
        h("th", {}, "Labels"), h("th", { class: "hide-narrow" }, "Address"), h("th", {}, "Last seen"),
        h("th", { title: "running servers reported by the node" }, "Servers"))),
      body)),
    pager));

  function matching() {
    const want = status.value;
    const [lk, lv] = label.value.includes("=") ? label.value.split("=", 2).map((s) => s.trim()) : [label.value.trim(), null];
    const q = text.value.trim().toLowerCase();
    const out = [];
    for (const n of S.nodes.values()) {
      if (want && n.status !== want) continue;
      if (lk && (lv === null ? !(lk in (n.labels || {})) : (n.labels || {})[lk] !== lv)) continue;
      if (q && !`${n.id} ${n.name} ${n.address}`.toLowerCase().includes(q)) continue;
      out.push(n);
    }
    out.sort((a, b) => a.id.localeCompare(b.id));
    return out;
  }
  function servers(id) {
    return new Set((S.services[id] || []).map((s) => s.name || s.id)).size;
  }
  let pending = false;
  function render() {
    pending = false;
    const rows = matching();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    S.fleetPage = Math.min(S.fleetPage, pages - 1);
    const slice = rows.slice(S.fleetPage * PAGE, (S.fleetPage + 1) * PAGE);
    count.textContent = `${rows.length} of ${S.nodes.size} nodes`;
    body.replaceChildren(...slice.map((n) => h("tr", { "data-node": n.id },
      h("td", {}, h("a", { href: `#/node/${enc(n.id)}` }, n.name && n.name !== n.id ? `${n.name} (${n.id})` : n.id)),
      h("td", {}, badge(n.status)),
      h("td", { class: "hide-narrow" }, n.provider),
      h("td", {}, Object.entries(n.labels || {}).map(([k, v]) => h("span", { class: "label" }, `${k}=${v}`))),
      h("td", { class: "hide-narrow mono" }, `${n.address}:${n.port}`),
      h("td", { title: n.last_seen }, ago(n.last_seen)),
      h("td", {}, servers(n.id)))));
    if (!slice.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, S.nodes.size ? "no node matches" : "no node registered yet")));
    pager.replaceChildren(
      h("button", { class: "secondary", disabled: S.fleetPage === 0, onclick: () => { S.fleetPage--; render(); } }, "‹ prev"),
      h("span", { class: "muted" }, `page ${S.fleetPage + 1} of ${pages}`),
      h("button", { class: "secondary", disabled: S.fleetPage >= pages - 1, onclick: () => { S.fleetPage++; render(); } }, "next ›"));
  }
  // at 10,000 nodes events can come fast: one render per animation frame at most
  const soon = () => { if (!pending) { pending = true; requestAnimationFrame(render); } };
  for (const el of [status, label, text]) el.addEventListener("input", () => { S.fleetPage = 0; render(); });
  render();
  const tick = setInterval(soon, 5000); // "last seen" ages; no request
  // services (the servers' count) change with heartbeats: one fleet-wide read, at most every 5 s
  let servicesTimer = null;
  let servicesRead = 0;
  const readServices = () => {
    if (servicesTimer) return;
    servicesTimer = setTimeout(async () => {
      servicesRead = Date.now();
      try { S.services = (await api("/api/v1/services")).services || {}; soon(); } catch { /* signed out */ }
      servicesTimer = null;
    }, Math.max(300, 5000 - (Date.now() - servicesRead)));
  };
  return {
    onEvent: (e) => {
      if (e.type.startsWith("node_") || e.type === "initial_state") soon();
      if (e.type === "node_updated") readServices();
    },
    close: () => { clearInterval(tick); clearTimeout(servicesTimer); },
  };
};

// ---- Node -----------------------------------------------------------------------------------
const ALLOWED = {
  start: ["ready", "stopped", "crashed"],
  stop: ["running"],
  restart: ["running", "stopped", "crashed"],
  kill: ["running", "stopping"],
  reinstall: ["ready", "running", "stopped", "crashed", "failed"],
  delete: ["ready", "running", "stopped", "crashed", "failed"],
};
const PROGRESS = { start: "starting…", stop: "stopping…", restart: "restarting…", kill: "killing…", reinstall: "reinstalling…", delete: "deleting…" };

function confirmAction(text) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

async function power(nodeId, server, action) {
  if (action === "delete") {
    return api(`/api/v1/nodes/${enc(nodeId)}/containers/${enc(server)}`, { method: "DELETE" });
  }
  return api(`/api/v1/nodes/${enc(nodeId)}/containers/${enc(server)}/${action}`, { method: "POST" });
}

function actionButtons(nodeId, container, busy, onDone, reload) {
  const wrap = h("div", { class: "actions" });
  const state = container.state;
  for (const action of Object.keys(ALLOWED)) {
    const running = busy.get(container.id);
    const button = h("button", {
      type: "button", "data-action": action, class: action === "delete" || action === "kill" ? "danger" : "secondary",
      disabled: !!running || !ALLOWED[action].includes(state),
      title: ALLOWED[action].includes(state) ? "" : `not while ${state}`,
    }, running === action ? PROGRESS[action] : action);
    button.addEventListener("click", async () => {
      if (["delete", "kill", "reinstall", "stop", "restart"].includes(action)) {
        if (!(await confirmAction(`${action} server ${container.id} on ${nodeId}?`))) return;
      }
      busy.set(container.id, action);
      onDone();
      try {
        const result = await power(nodeId, container.id, action);
        if (result.status !== "success") alertBox(`${action} ${container.id}: ${result.output}`);
      } catch (error) {
        alertBox(`${action} ${container.id}: ${error.message}`);
      }
      // the button stays busy until the lifecycle event for this server (or a refresh) arrives
      busy.set(container.id, `${action}:sent`);
      onDone();
      if (reload) reload();
    });
    wrap.append(button);
  }
  return wrap;
}

function alertBox(text) {
  const box = $("#notice") || h("p", { id: "notice", class: "error", role: "alert" });
  box.textContent = text;
  $("#view").prepend(box);
}

function portsText(ports) {
  return (ports || []).map((p) => p.host ? `${p.host}→${p.container}/${p.protocol}` : `${p.container}/${p.protocol}`).join(", ");
}

VIEWS.node = (main, nodeId) => {
  const node = S.nodes.get(nodeId);
  const head = h("section", { class: "card" });
  const list = h("tbody", { id: "servers" });
  const note = h("p", { class: "muted", id: "servers-note" }, "loading servers…");
  const busy = new Map(); // server -> action while it runs
  const now = new Map(); // server -> newest stats sample
  let containers = [];
  function header() {
    const n = S.nodes.get(nodeId) || node;
    head.replaceChildren(h("h1", {}, `Node ${nodeId} `, n ? badge(n.status) : badge("unknown")),
      n ? h("p", { class: "muted" }, `${n.provider} · ${n.address}:${n.port} · last seen ${ago(n.last_seen)} · version ${n.version || "-"} · `,
        Object.entries(n.labels || {}).map(([k, v]) => h("span", { class: "label" }, `${k}=${v}`))) : h("p", { class: "error" }, "this node is not registered"));
  }
  function renderList() {
    list.replaceChildren(...containers.map((c) => {
      const sample = now.get(c.id);
      return h("tr", { "data-server": c.id },
        h("td", {}, h("a", { href: `#/server/${enc(nodeId)}/${enc(c.id)}` }, c.id)),
        h("td", {}, badge(c.state)),
        h("td", { class: "mono hide-narrow" }, c.spec.image),
        h("td", { class: "mono" }, portsText(c.ports && c.ports.length ? c.ports : c.spec.ports)),
        h("td", {}, sample && c.state === "running" ? `${sample.cpu_percent.toFixed(1)}%` : "-"),
        h("td", {}, sample && c.state === "running" ? bytes(sample.memory_usage) : "-"),
        h("td", {}, actionButtons(nodeId, c, busy, renderList, load)));
    }));
    note.textContent = containers.length ? "" : "no server on this node yet";
  }
  async function readStats() {
    const since = new Date(Date.now() - 60000).toISOString();
    await Promise.all(containers.filter((c) => c.state === "running").map(async (c) => {
      try {
        const page = await api(`/api/v1/nodes/${enc(nodeId)}/containers/${enc(c.id)}/stats/history?since=${enc(since)}`);
        if (page.samples.length) now.set(c.id, page.samples[page.samples.length - 1]);
      } catch { /* no history yet */ }
    }));
  }
  let loading = null;
  async function load() {
    if (loading) return loading;
    loading = (async () => {
      try {
        const result = await api(`/api/v1/nodes/${enc(nodeId)}/containers`);
        containers = commandOutput(result).containers || [];
        for (const [id, action] of busy) if (String(action).endsWith(":sent")) busy.delete(id);
        renderList();
        await readStats();
        renderList();
      } catch (error) {
        if (error.status !== 401) note.textContent = `cannot list the servers: ${error.message}`;
      } finally {
        loading = null;
      }
    })();
    return loading;
  }
  main.append(head,
    h("section", { class: "card" }, h("h2", {}, "Servers"), note,
      h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Server"), h("th", {}, "State"),
        h("th", { class: "hide-narrow" }, "Image"), h("th", {}, "Ports"), h("th", {}, "CPU"), h("th", {}, "Memory"), h("th", {}, "Actions"))), list))),
    createForm(nodeId, load));
  header();
  load();
  let timer = null;
  // CPU and memory now: the newest history sample of this node's running servers, every 5 s
  const statsTimer = setInterval(() => { if (!loading) readStats().then(renderList); }, HISTORY_REFRESH);
  return {
    onEvent: (e) => {
      if (e.type.startsWith("node_") && e.data && e.data.id === nodeId) header();
      // server_update only: command_result follows every command, this page's own list too
      const about = e.data && (e.data.node === nodeId || e.data.node_id === nodeId);
      if (e.type === "server_update" && about) {
        clearTimeout(timer);
        timer = setTimeout(load, 150); // a burst of events, one list request
      }
    },
    close: () => { clearTimeout(timer); clearInterval(statsTimer); },
  };
};

function createForm(nodeId, reload) {
  const fields = {
    id: { label: "Server id", placeholder: "web-1", required: true },
    image: { label: "Image", placeholder: "lightd-test-busybox", required: true },
    startup_command: { label: "Startup command", placeholder: "httpd -f -p 8080" },
    ports: { label: "Ports (container[:host], comma-separated)", placeholder: "8080:18080" },
    memory: { label: "Memory limit", placeholder: "256m" },
    cpu: { label: "CPU cores", placeholder: "0.5" },
    env: { label: "Environment (KEY=value per line)", wide: true, area: true },
    install_script: { label: "Install script (/bin/sh)", wide: true, area: true },
  };
  const inputs = {};
  const errors = {};
  const form = h("form", { class: "spec", id: "create-form", novalidate: true });
  for (const [name, f] of Object.entries(fields)) {
    inputs[name] = h(f.area ? "textarea" : "input", { name, id: `spec-${name}`, placeholder: f.placeholder || "", spellcheck: "false" });
    errors[name] = h("span", { class: "field-error", id: `error-${name}`, role: "alert" });
    form.append(h("label", { class: f.wide ? "wide" : "" }, f.label, inputs[name], errors[name]));
  }
  const general = h("p", { class: "error wide", id: "create-error", role: "alert" });
  const submit = h("button", { type: "submit", id: "create-submit" }, "Create server");
  form.append(h("div", { class: "wide" }, submit), general);

  function spec() {
    const body = { id: inputs.id.value.trim(), image: inputs.image.value.trim() };
    const cmd = inputs.startup_command.value.trim();
    if (cmd) body.startup_command = cmd;
    const ports = inputs.ports.value.split(",").map((p) => p.trim()).filter(Boolean);
    if (ports.length) {
      body.ports = ports.map((p) => {
        const [container, host] = p.split(":");
        const out = { container: Number(container) };
        if (host) out.host = Number(host);
        return out;
      });
    }
    const limits = {};
    if (inputs.memory.value.trim()) limits.memory = inputs.memory.value.trim();
    if (inputs.cpu.value.trim()) limits.cpu = Number(inputs.cpu.value.trim());
    if (Object.keys(limits).length) body.limits = limits;
    const env = {};
    for (const line of inputs.env.value.split("\n")) {
      const i = line.indexOf("=");
      if (line.trim() && i > 0) env[line.slice(0, i).trim()] = line.slice(i + 1);
    }
    if (Object.keys(env).length) body.env = env;
    if (inputs.install_script.value.trim()) body.install_script = inputs.install_script.value;
    return body;
  }
  function fieldOf(loc) {
    const parts = (loc || []).filter((p) => p !== "body");
    const top = parts[0];
    if (top === "limits") return parts[1] === "cpu" ? "cpu" : "memory";
    return fields[top] ? top : null;
  }
  function showErrors(detail) {
    if (typeof detail === "string") {
      // the agent's refusals name their field first ("ports: host port 8080/tcp is ...")
      const named = /^([a-z_]+)(?:\.([a-z_]+))?: /.exec(detail);
      let field = named ? fieldOf([named[1], named[2]]) : null;
      if (!field && /server with id/.test(detail)) field = "id";
      if (!field && /\bimage\b/i.test(detail)) field = "image";
      (field ? errors[field] : general).textContent = detail;
      return;
    }
    for (const e of detail || []) {
      const f = fieldOf(e.loc);
      const msg = String(e.msg || "invalid").replace(/^Value error, /, "");
      if (f) errors[f].textContent = errors[f].textContent ? `${errors[f].textContent}; ${msg}` : msg;
      else general.textContent = `${(e.loc || []).join(".")}: ${msg}`;
    }
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const e of Object.values(errors)) e.textContent = "";
    general.textContent = "";
    submit.disabled = true;
    submit.textContent = "creating…";
    try {
      const result = await api(`/api/v1/nodes/${enc(nodeId)}/containers`, { method: "POST", json: spec() });
      if (result.status !== "success") {
        // the agent refused it (policy, port in use): its message, at the field it names
        let message = result.output;
        try { message = JSON.parse(result.output).detail || message; } catch { /* plain text */ }
        showErrors(message);
      } else {
        form.reset();
        reload();
      }
    } catch (error) {
      if (error.status === 422) showErrors(error.detail);
      else if (error.status !== 401) general.textContent = error.message;
    } finally {
      submit.disabled = false;
      submit.textContent = "Create server";
    }
  });
  return h("section", { class: "card" }, h("h2", {}, "Create a server"), form);
}

// ---- Server ---------------------------------------------------------------------------------
function chart(title, samples, value, format, max) {
  const W = 600, H = 140;
  const pts = samples.map((s) => [Date.parse(s.timestamp), value(s)]);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  const ns = (tag, attrs) => { const el = document.createElementNS("http://www.w3.org/2000/svg", tag); for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v); return el; };
  for (const y of [0.25, 0.5, 0.75]) svg.append(ns("line", { x1: 0, x2: W, y1: H * y, y2: H * y }));
  let last = "-";
  if (pts.length) {
    const t0 = pts[0][0], t1 = Math.max(pts[pts.length - 1][0], t0 + 1);
    const top = Math.max(max || 0, ...pts.map((p) => p[1]), 1e-9);
    const xy = pts.map(([t, v]) => `${(((t - t0) / (t1 - t0)) * W).toFixed(1)},${(H - (v / top) * (H - 4)).toFixed(1)}`);
    if (pts.length === 1) xy.push(`${W},${xy[0].split(",")[1]}`);
    svg.append(ns("polygon", { class: "area", points: `0,${H} ${xy.join(" ")} ${W},${H}` }));
    svg.append(ns("polyline", { points: xy.join(" "), "data-points": pts.length }));
    last = format(pts[pts.length - 1][1]);
  }
  return h("div", { class: "stat chart", "data-chart": title },
    h("div", { class: "l" }, `${title} · ${pts.length} samples · now ${last}`), svg);
}

VIEWS.server = (main, nodeId, serverId) => {
  const base = `/api/v1/nodes/${enc(nodeId)}/containers/${enc(serverId)}`;
  const head = h("section", { class: "card" }, h("h1", {}, `Server ${serverId}`));
  const stats = h("div", { class: "grid", id: "stat-blocks" });
  const charts = h("div", { class: "charts", id: "charts" });
  const logTitle = h("h2", { id: "log-title" }, "Live log");
  const log = h("pre", { class: "log", id: "log" });
  const busy = new Map();
  let view = null;
  let samples = [];
  let stream = null;
  let closed = false;
  let historyTimer = null;
  let reloadTimer = null;

  function renderHead() {
    if (!view) return;
    const limits = view.spec.limits || {};
    head.replaceChildren(
      h("h1", {}, `Server ${serverId} `, badge(view.state)),
      h("p", { class: "muted" }, `on `, h("a", { href: `#/node/${enc(nodeId)}` }, nodeId),
        ` · ${view.spec.image} · ports ${portsText(view.ports && view.ports.length ? view.ports : view.spec.ports) || "none"}`,
        view.error ? h("span", { class: "error" }, ` · ${view.error}`) : ""),
      actionButtons(nodeId, view, busy, renderHead, loadView));
    const s = samples[samples.length - 1];
    const running = view.state === "running";
    const memLimit = memoryLimit(limits.memory) || (s && s.memory_limit) || 0;
    stats.replaceChildren(
      h("div", { class: "stat" }, h("div", { class: "l" }, "State"), h("div", { class: "v", id: "state" }, view.state)),
      h("div", { class: "stat" }, h("div", { class: "l" }, "Uptime"), h("div", { class: "v" }, running ? duration(view.started_at) : "-")),
      h("div", { class: "stat" }, h("div", { class: "l" }, `CPU${limits.cpu ? ` (limit ${limits.cpu} cores)` : ""}`), h("div", { class: "v" }, s && running ? `${s.cpu_percent.toFixed(1)}%` : "-")),
      h("div", { class: "stat" }, h("div", { class: "l" }, `Memory${memLimit ? ` (limit ${bytes(memLimit)})` : ""}`), h("div", { class: "v" }, s && running ? bytes(s.memory_usage) : "-")),
      h("div", { class: "stat" }, h("div", { class: "l" }, "Network rx / tx"), h("div", { class: "v" }, s ? `${bytes(s.network_rx_bytes)} / ${bytes(s.network_tx_bytes)}` : "-")),
      h("div", { class: "stat" }, h("div", { class: "l" }, "Block read / write"), h("div", { class: "v" }, s ? `${bytes(s.block_read_bytes)} / ${bytes(s.block_write_bytes)}` : "-")),
      h("div", { class: "stat" }, h("div", { class: "l" }, "Restarts"), h("div", { class: "v" }, view.restarts || 0)));
  }
  function renderCharts() {
    const limits = (view && view.spec.limits) || {};
    const memLimit = memoryLimit(limits.memory);
    charts.replaceChildren(
      chart("CPU %", samples, (s) => s.cpu_percent, (v) => `${v.toFixed(1)}%`, limits.cpu ? limits.cpu * 100 : 0),
      chart("Memory", samples, (s) => s.memory_usage, bytes, memLimit),
      chart("Network rx", samples, (s) => s.network_rx_bytes, bytes, 0),
      chart("Block write", samples, (s) => s.block_write_bytes, bytes, 0));
  }
  async function loadView() {
    try {
      // the list holds each server's spec and published ports (the status answer does not)
      const list = commandOutput(await api(`/api/v1/nodes/${enc(nodeId)}/containers`));
      const found = (list.containers || []).find((c) => c.id === serverId);
      if (!found) throw new ApiError(404, `node ${nodeId} has no server ${serverId}`);
      view = found;
      busy.clear();
      renderHead();
      if (!stream) follow();
    } catch (error) {
      if (error.status !== 401) head.replaceChildren(h("h1", {}, `Server ${serverId}`), h("p", { class: "error" }, error.message));
    }
  }
  async function loadHistory() {
    if (closed) return;
    try {
      // page through: ?since= the newest sample we have
      for (;;) {
        const since = samples.length ? `&since=${enc(samples[samples.length - 1].timestamp)}` : "";
        const page = await api(`${base}/stats/history?limit=1000${since}`);
        samples = samples.concat(page.samples).slice(-2000);
        if (page.samples.length < 1000) break;
      }
      renderCharts();
      renderHead();
    } catch { /* not yet */ }
    historyTimer = setTimeout(loadHistory, HISTORY_REFRESH);
  }
  function appendLog(line, cls) {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(h("span", { class: cls || "" }, `${line}\n`));
    while (log.childNodes.length > LOG_MAX) log.firstChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  }
  let lastKind = null;
  async function follow() {
    if (closed || !view) return;
    const kind = view.state === "installing" ? "install" : "server";
    logTitle.textContent = kind === "install" ? "Install output" : "Live log";
    // following the same container again (after a restart) re-reads its tail: start afresh
    if (kind === lastKind) log.replaceChildren();
    lastKind = kind;
    const controller = new AbortController();
    stream = controller;
    try {
      const headers = { Accept: "text/event-stream" };
      if (S.token) headers.Authorization = `Bearer ${S.token}`;
      const response = await fetch(`${base}/logs?follow=true&tail=200`, { headers, signal: controller.signal });
      if (!response.ok) {
        let detail = response.statusText;
        try { detail = (await response.json()).detail; } catch { /* not JSON */ }
        appendLog(`[log not available: ${detail}]`, "muted");
        throw new Error("refused");
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let event = "";
      let data = [];
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let i;
        while ((i = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, i).replace(/\r$/, "");
          buffer = buffer.slice(i + 1);
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          else if (line === "") {
            if (event === "log") appendLog(data.join("\n"));
            else if (event === "skipped") appendLog(`[${JSON.parse(data.join("")).lines} lines skipped: too fast]`, "muted");
            else if (event === "end") appendLog("[stream ended]", "muted");
            event = ""; data = [];
          }
        }
      }
    } catch { /* aborted or refused */ }
    if (stream === controller) stream = null;
    // the stream ends when the server stops or the install ends: follow again after a moment
    if (!closed) setTimeout(() => { if (!stream && !closed) loadView(); }, 3000);
  }
  main.append(head, h("section", { class: "card" }, stats),
    h("section", { class: "card" }, h("h2", {}, "History"), charts),
    h("section", { class: "card" }, logTitle, log));
  loadView().then(loadHistory);
  const tick = setInterval(renderHead, 1000);
  return {
    onEvent: (e) => {
      const d = e.data || {};
      if (e.type === "server_update" && (d.node === nodeId || d.node_id === nodeId) && d.server === serverId) {
        clearTimeout(reloadTimer);
        reloadTimer = setTimeout(async () => {
          const before = view && view.state;
          await loadView();
          if (stream && view && before === "installing" && view.state !== "installing") stream.abort();
        }, 150);
      }
    },
    close: () => { closed = true; clearInterval(tick); clearTimeout(historyTimer); clearTimeout(reloadTimer); if (stream) stream.abort(); },
  };
};

// ---- Events ---------------------------------------------------------------------------------
VIEWS.events = (main) => {
  const type = h("select", { id: "events-type", "aria-label": "event type" }, h("option", { value: "" }, "every type"),
    ["node_registered", "node_updated", "node_inactive", "node_unregistered", "server_update", "command_result"].map((t) => h("option", { value: t }, t)));
  const node = h("input", { id: "events-node", placeholder: "node id", "aria-label": "node" });
  const list = h("ul", { class: "feed", id: "feed" });
  main.append(h("section", { class: "card" }, h("h1", {}, "Events"), h("div", { class: "toolbar" }, type, node,
    h("span", { class: "muted" }, "newest first; the stream resumes after a disconnect (Last-Event-ID)")), list));
  function nodeOf(e) { const d = e.data || {}; return d.node_id || d.node || d.id || ""; }
  function summary(e) {
    const d = e.data || {};
    if (e.type === "server_update") {
      const u = d.update || {};
      return `${d.server}: ${u.status || ""}${u.error ? ` error ${u.error}` : ""}${u.data ? ` (${u.data})` : ""}`;
    }
    if (e.type === "command_result") return `${d.command ? `${d.command.type} ${d.command.action}` : d.id}: ${d.status}`;
    if (e.type.startsWith("node_")) return `${d.id} ${d.status || ""} ${d.address ? `at ${d.address}:${d.port}` : ""}`;
    return JSON.stringify(d).slice(0, 200);
  }
  function row(e) {
    return h("li", { "data-type": e.type }, h("span", { class: "t" }, `#${e.id}`), h("span", { class: "t" }, new Date(e.timestamp).toLocaleTimeString()),
      h("span", {}, badge(e.type)), h("span", {}, h("b", {}, nodeOf(e)), " ", summary(e)));
  }
  function wanted(e) { return (!type.value || e.type === type.value) && (!node.value.trim() || nodeOf(e) === node.value.trim()); }
  function render() { list.replaceChildren(...S.feed.filter(wanted).reverse().slice(0, 300).map(row)); }
  type.addEventListener("input", render);
  node.addEventListener("input", render);
  render();
  return { onEvent: (e) => { if (e.type !== "initial_state" && wanted(e)) { list.prepend(row(e)); while (list.childNodes.length > 300) list.lastChild.remove(); } } };
};

// ---- Commands -------------------------------------------------------------------------------
VIEWS.commands = (main) => {
  const target = h("select", { id: "cmd-target", "aria-label": "target" }, h("option", { value: "node" }, "one node"), h("option", { value: "selector" }, "label selector"));
  const where = h("input", { id: "cmd-where", placeholder: "node id, or key=value,key=value", list: "node-ids" });
  const datalist = h("datalist", { id: "node-ids" }, [...S.nodes.keys()].slice(0, 500).map((id) => h("option", { value: id })));
  const ctype = h("select", { id: "cmd-type", "aria-label": "type" }, h("option", { value: "exec" }, "exec (host shell)"), h("option", { value: "container" }, "container (agent API)"));
  const action = h("input", { id: "cmd-action", placeholder: "echo hello  /  list" });
  const timeout = h("input", { id: "cmd-timeout", value: "30s", size: 5, "aria-label": "timeout" });
  const error = h("p", { class: "error", id: "cmd-error", role: "alert" });
  const results = h("tbody", { id: "cmd-results" });
  const sent = new Map(); // command id -> row
  const form = h("form", { class: "toolbar" }, target, where, datalist, ctype, action, timeout, h("button", { type: "submit", id: "cmd-send" }, "Send"));
  main.append(h("section", { class: "card" }, h("h1", {}, "Commands"), form, error,
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Node"), h("th", {}, "Command"), h("th", {}, "Status"), h("th", {}, "Output"))), results))));
  function show(result) {
    const row = h("tr", { "data-command": result.id, "data-node": result.node_id },
      h("td", {}, result.node_id), h("td", { class: "mono" }, result.command ? `${result.command.type}: ${result.command.action}` : result.id),
      h("td", {}, badge(result.status)), h("td", {}, h("pre", { class: "result-out mono" }, result.output || "")));
    const old = sent.get(result.id);
    if (old) old.replaceWith(row); else results.prepend(row);
    sent.set(result.id, row);
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const command = { type: ctype.value, action: action.value.trim(), params: { timeout: timeout.value.trim() || "30s" } };
    try {
      let answer;
      if (target.value === "node") {
        answer = { results: [await api(`/api/v1/nodes/${enc(where.value.trim())}/commands?async=true`, { method: "POST", json: command })] };
      } else {
        const selector = {};
        for (const part of where.value.split(",").map((p) => p.trim()).filter(Boolean)) {
          const [k, v] = part.split("=", 2);
          selector[k.trim()] = (v || "").trim();
        }
        answer = await api("/api/v1/commands?async=true", { method: "POST", json: { selector, command } });
        if (!answer.results.length) error.textContent = "no active node matches that selector";
      }
      for (const r of answer.results) show(S.results.get(r.id) || r);
    } catch (e) {
      if (e.status !== 401) error.textContent = typeof e.detail === "object" ? (e.detail || []).map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ") : e.message;
    }
  });
  return { onEvent: (e) => { if (e.type === "command_result" && sent.has(e.data.id)) show(e.data); } };
};

// ---- Services -------------------------------------------------------------------------------
function link(endpoint) {
  const m = /^(?:tcp|http|https):\/\/(.+)$/.exec(endpoint || "");
  if (!m) return h("span", { class: "mono" }, endpoint || "-");
  const href = endpoint.startsWith("https://") ? endpoint : `http://${m[1]}/`;
  return h("a", { href, target: "_blank", rel: "noopener noreferrer", class: "mono" }, endpoint);
}

VIEWS.services = (main) => {
  const body = h("tbody", { id: "services" });
  const count = h("span", { class: "muted" });
  main.append(h("section", { class: "card" }, h("h1", {}, "Services"), h("div", { class: "toolbar" }, count),
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Node"), h("th", {}, "Service"), h("th", {}, "Type"), h("th", {}, "Status"), h("th", {}, "Endpoint"))), body))));
  async function load() {
    try {
      const listing = await api("/api/v1/services");
      S.services = listing.services || {};
      const rows = [];
      for (const [nodeId, services] of Object.entries(S.services).sort()) {
        for (const s of services) {
          rows.push(h("tr", { "data-service": s.id }, h("td", {}, h("a", { href: `#/node/${enc(nodeId)}` }, nodeId)),
            h("td", {}, s.name && s.name !== s.id ? `${s.name} (${s.id})` : s.id), h("td", {}, s.type), h("td", {}, badge(s.status)), h("td", {}, link(s.endpoint))));
        }
      }
      body.replaceChildren(...rows);
      count.textContent = `${rows.length} services on ${Object.keys(S.services).length} of ${listing.nodes} nodes`;
      if (!rows.length) body.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "no service reported yet")));
    } catch { /* signed out */ }
  }
  load();
  let timer = null;
  return {
    onEvent: (e) => { if (e.type.startsWith("node_")) { clearTimeout(timer); timer = setTimeout(load, 300); } },
    close: () => clearTimeout(timer),
  };
};

// ---- boot -------------------------------------------------------------------------------------
window.addEventListener("hashchange", () => { if (!$("#view").hidden) route(); });
document.addEventListener("DOMContentLoaded", async () => {
  $("#login-form").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", () => signOut("Signed out."));
  // with auth off the API answers without a token: open straight away
  const headers = S.token ? { Authorization: `Bearer ${S.token}` } : {};
  const probe = await fetch("/api/v1/nodes?limit=1", { headers });
  if (probe.status === 401 || probe.status === 403) {
    let detail = "";
    try { detail = (await probe.json()).detail || ""; } catch { /* not JSON */ }
    if (S.token) signOut(/expired/i.test(detail) ? "Your token has expired: sign in again." : `The coordinator refused the saved token (${detail}).`);
    else showLogin("");
    return;
  }
  start();
});
