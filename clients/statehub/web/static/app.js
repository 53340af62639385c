// statehub web: the live table, the connection truth, per-key history, compare-and-set edits and trends.
// Plain JS, no build step. Values only ever reach the page through textContent, never as HTML.

const $ = (id) => document.getElementById(id);
const HISTORY_LIMIT = 5000;   // versions fetched for a key: its history list and its trend
const HISTORY_SHOWN = 200;    // rows of that list drawn

const state = {
  rows: new Map(),     // key -> {item, tr}
  sorted: [],          // keys in order, for inserting new rows
  epoch: "", rev: 0, lastId: "",
  status: null,        // the last status event
  heard: 0,            // performance.now() of the last message on the stream
  heartbeat: 5,
  source: null,        // the EventSource
  streamOpen: false,
  selected: null,      // the key shown in the detail panel
  edit: null,          // {key, baseRev} while an edit is open
  widget: null,        // {kind, rule, ruleText}: how the open editor edits its key (widgetFor)
  pending: null,       // the write a conflict holds back: {key, value, kind}
  trend: null,         // {plot, xs, ys, key}
  role: "write",
  firstPaint: null,    // ms from navigation start to the first table paint
  rules: { exact: new Map(), patterns: [] },  // the hub's schema (/api/schema), for types and ttl
  living: new Set(),   // keys whose rule has a ttl: their countdown is redrawn each second
};

// --- the schema ---------------------------------------------------------------------------
// The hub judges every write; the page only reads the rules to pick the editor's widget, show what a
// key allows, and count down a key's ttl. A key's rule: an exact key first, then the pattern of as
// many segments with the most literal ones (the hub refuses schemas where that could tie).

async function loadSchema() {
  try {
    const response = await fetch("/api/schema", { headers: authHeaders() });
    if (!response.ok) return;
    const body = await response.json();
    const exact = new Map(), patterns = [];
    for (const rule of body.rules) {
      if (rule.name.split(".").includes("*")) patterns.push({ rule, segments: rule.name.split(".") });
      else exact.set(rule.name, rule);
    }
    patterns.sort((a, b) => b.segments.filter((s) => s !== "*").length - a.segments.filter((s) => s !== "*").length);
    state.rules = { exact, patterns };
    for (const { item, tr } of state.rows.values()) fillRow(tr, item);
    // An editor opened before the rules came (or under other rules) switches to its key's widget.
    if (state.selected && state.widget && JSON.stringify(ruleFor(state.selected)) !== state.widget.ruleText) openEditor(state.selected);
  } catch { /* the page works without it: the hub still judges each write */ }
}

function ruleFor(key) {
  const exact = state.rules.exact.get(key);
  if (exact) return exact;
  const segments = key.split(".");
  for (const { rule, segments: pattern } of state.rules.patterns) {
    if (pattern.length === segments.length && pattern.every((s, i) => s === "*" || s === segments[i])) return rule;
  }
  return null;
}

// A key's lifetime: the item's own ttl (its write's, else its rule's, as the hub says), else its rule's
// here (an item from an older hub or the mirror carries none).
function ttlOf(item) {
  if (item.ttl != null) return item.ttl;
  const rule = ruleFor(item.key);
  return rule && rule.ttl != null ? rule.ttl : null;
}

// "expires in 12 s" while a key with a ttl lives; the last quarter is marked; "" without a ttl.
function expiryOf(item) {
  const ttl = ttlOf(item);
  if (ttl == null) return null;
  const left = item.time + ttl - Date.now() / 1000;
  return { text: left <= 0 ? "expiring" : `expires in ${Math.max(1, Math.round(left))} s`, soon: left <= ttl / 4 };
}

// The text editor's type for the rules edited as text (list and table as JSON); "any" and no rule
// start at the value's own type.
const EDITOR_TYPES = { string: "string", list: "json", table: "json" };

// The widget that edits a key, as the GUI picks it (gui/typed.py widget_for): a drop-down of an
// enum's values, a checkbox for a boolean, a number input over an integer's or number's range,
// text fixed to string for a string, and the type list with text for everything else.
function widgetFor(rule) {
  if (!rule) return "text";
  switch (rule.type) {
    case "enum": return "choice";
    case "boolean": return "check";
    case "integer": case "number": return "number";
    case "string": return "string";
    default: return "text";
  }
}

// "0..500 m3/h", ">= 0.5", "" : a number rule's range and unit, shown beside its input.
function rangeText(rule) {
  const { min, max } = rule;
  const range = min != null && max != null ? `${min}..${max}` : min != null ? `>= ${min}` : max != null ? `<= ${max}` : "";
  return [range, rule.unit].filter(Boolean).join(" ");
}

// --- formatting ---------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");
// One formatter for every cell: making an Intl.DateTimeFormat costs more than a whole row.
const zoneFormat = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" });
const zoneCache = new Map();  // the zone's short name per hour (it changes only at DST)
function zoneAt(d) {
  const hour = Math.floor(d.getTime() / 3600000);
  let zone = zoneCache.get(hour);
  if (zone === undefined) {
    const part = zoneFormat.formatToParts(d).find((p) => p.type === "timeZoneName");
    zone = part ? part.value : "local";
    if (zoneCache.size > 1000) zoneCache.clear();
    zoneCache.set(hour, zone);
  }
  return zone;
}

function formatTime(seconds) {
  if (!seconds) return "";
  const d = new Date(seconds * 1000);
  if ($("utc").checked) {
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}Z`;
  }
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${zoneAt(d)}`;
}

function zoneName() {
  return zoneAt(new Date());
}

function ago(seconds) {
  const s = Math.max(0, Date.now() / 1000 - seconds);
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} days`;
}

// Strings as they are, unless they would read as another type: then quoted, so "30" and 30 differ.
function showValue(value) {
  if (typeof value === "string") {
    try { JSON.parse(value); return JSON.stringify(value); } catch { return value; }
  }
  return JSON.stringify(value);
}

function typeOf(value) {
  if (value === null) return "null";
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") return typeof value;
  return "json";
}

// --- the table ----------------------------------------------------------------------------

function fillRow(tr, item) {
  const cells = tr.children;
  cells[0].textContent = item.key;
  const value = cells[1];
  if (item.secret) {
    value.textContent = "•••••• secret";
    value.className = "value secret";
  } else {
    value.textContent = showValue(item.value);
    value.className = `value t-${typeOf(item.value)}`;
  }
  value.title = item.secret ? "a secret: its value never leaves the hub" : value.textContent;
  cells[2].textContent = item.rev;
  timeCell(tr, item);
  cells[4].textContent = item.user || "";
  cells[5].textContent = item.source || "";
  tr.dataset.rev = item.rev;
}

// The "changed" cell; a key with a ttl also counts down (and is kept in state.living to be redrawn).
function timeCell(tr, item) {
  const expiry = expiryOf(item);
  tr.children[3].textContent = expiry ? `${formatTime(item.time)} · ${expiry.text}` : formatTime(item.time);
  tr.classList.toggle("expiring", Boolean(expiry && expiry.soon));
  if (expiry) state.living.add(item.key); else state.living.delete(item.key);
}

function redrawExpiries() {
  for (const key of state.living) {
    const row = state.rows.get(key);
    if (!row || row.item.expired) state.living.delete(key); else timeCell(row.tr, row.item);
  }
}

function makeRow(item) {
  const tr = document.createElement("tr");
  tr.dataset.key = item.key;
  for (const cls of ["key", "value", "num", "when", "who", "source"]) {
    const td = document.createElement("td");
    td.className = cls;
    tr.appendChild(td);
  }
  fillRow(tr, item);
  applyFilter(tr, item);
  return tr;
}

function flash(tr) {
  tr.classList.remove("flash");
  void tr.offsetWidth;  // restart the animation
  tr.classList.add("flash");
}

function replaceAll(items) {
  const body = document.querySelector("#keys tbody");
  const fragment = document.createDocumentFragment();
  state.rows = new Map();
  state.sorted = [];
  for (const item of items) {  // the server sends them sorted by key
    const tr = makeRow(item);
    state.rows.set(item.key, { item, tr });
    state.sorted.push(item.key);
    fragment.appendChild(tr);
  }
  body.replaceChildren(fragment);
  updateCount();
  if (state.firstPaint === null) {
    requestAnimationFrame(() => {
      state.firstPaint = performance.now();
      document.body.dataset.firstPaint = state.firstPaint.toFixed(1);
    });
  }
  if (state.selected) refreshDetail(false);
}

function insertIndex(key) {
  let low = 0, high = state.sorted.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (state.sorted[mid] < key) low = mid + 1; else high = mid;
  }
  return low;
}

function applyChange(change) {
  const row = state.rows.get(change.key);
  if (row && row.item.rev >= change.rev) return;  // already in the state (a resync can be newer)
  if (change.op === "unset" && change.source === "ttl" && row) {
    expired(row, change);
    return;
  }
  if (change.key.startsWith("statehub.schema")) setTimeout(loadSchema, 0);
  if (change.op === "unset" || change.value_omitted) {
    if (row) {
      row.tr.remove();
      state.rows.delete(change.key);
      state.sorted.splice(insertIndex(change.key), 1);
    }
    return;
  }
  const item = {
    key: change.key, value: change.value, rev: change.rev, time: change.time,
    source: change.source, user: change.user, secret: change.secret,
    created_rev: row ? row.item.created_rev : change.rev,
  };
  if (change.ttl != null) item.ttl = change.ttl;
  if (row) {
    row.item = item;
    fillRow(row.tr, item);
    applyFilter(row.tr, item);
    flash(row.tr);
  } else {
    const at = insertIndex(change.key);
    const tr = makeRow(item);
    const before = at < state.sorted.length ? state.rows.get(state.sorted[at]).tr : null;
    document.querySelector("#keys tbody").insertBefore(tr, before);
    state.sorted.splice(at, 0, change.key);
    state.rows.set(change.key, { item, tr });
    flash(tr);
  }
  if (change.key === state.selected) onSelectedChanged(item);
}

// A key the hub removed because its ttl ran out stays a few seconds, marked, so the page shows it went.
function expired(row, change) {
  row.tr.classList.add("expired");
  row.tr.children[3].textContent = `expired ${formatTime(change.time)} (not written within its ttl)`;
  row.item = { ...row.item, rev: change.rev, expired: true };
  setTimeout(() => {
    if (state.rows.get(change.key) !== row) return;  // written again meanwhile: a new row stands
    row.tr.remove();
    state.rows.delete(change.key);
    state.sorted.splice(insertIndex(change.key), 1);
    updateCount();
  }, 5000);
}

function applyFilter(tr, item) {
  const prefix = $("prefix").value;
  const search = $("search").value.toLowerCase();
  let shown = item.key.startsWith(prefix);
  if (shown && search) {
    shown = item.key.toLowerCase().includes(search)
      || (!item.secret && showValue(item.value).toLowerCase().includes(search));
  }
  tr.hidden = !shown;
}

function refilter() {
  for (const { item, tr } of state.rows.values()) applyFilter(tr, item);
  updateCount();
  const params = new URLSearchParams(location.search);
  for (const name of ["prefix", "search"]) {
    if ($(name).value) params.set(name, $(name).value); else params.delete(name);
  }
  history.replaceState(null, "", params.toString() ? `?${params}` : location.pathname);
}

function updateCount() {
  let shown = 0;
  for (const { tr } of state.rows.values()) if (!tr.hidden) shown += 1;
  $("count").textContent = `${shown} of ${state.rows.size} keys`;
  $("empty").hidden = state.rows.size > 0;
}

function redrawTimes() {
  for (const { item, tr } of state.rows.values()) if (!item.expired) timeCell(tr, item);
  if (state.selected) refreshDetail(true);
}

// --- the connection truth -----------------------------------------------------------------

function showConnection() {
  const badge = $("conn");
  const st = state.status;
  const silent = (performance.now() - state.heard) / 1000;
  let kind, text;
  if (!state.streamOpen || silent > 2.5 * state.heartbeat) {
    kind = "reconnecting";
    text = state.rev ? `reconnecting to the web server… (showing revision ${state.rev}, not live)` : "connecting to the web server…";
  } else if (!st || st.state === "connecting") {
    kind = "connecting"; text = "waiting for the hub…";
  } else if (st.state === "live") {
    kind = "live"; text = `live at revision ${st.rev}`;
  } else {
    kind = "down";
    const mirror = st.mirror_written ? `; showing the mirror (revision ${st.mirror_rev}) from ${ago(st.mirror_written)} ago` : "; the mirror cannot be read";
    text = `hub down for ${ago(st.since)}${mirror}`;
  }
  badge.className = `conn ${kind}`;
  badge.textContent = text;
  badge.title = st && st.reason ? st.reason : "";
  document.body.classList.toggle("stale", kind !== "live");
  document.body.dataset.conn = kind;
}

function streamUrl() {
  const params = new URLSearchParams();
  if (state.lastId) params.set("last_event_id", state.lastId);
  return `/api/events?${params}`;
}

function connect() {
  if (state.source) state.source.close();
  const source = new EventSource(streamUrl());
  state.source = source;
  state.heard = performance.now();
  source.onopen = () => { state.streamOpen = true; state.heard = performance.now(); showConnection(); };
  source.onerror = () => {
    state.streamOpen = false;
    showConnection();
    if (source.readyState === EventSource.CLOSED) setTimeout(() => { if (state.source === source) connect(); }, 2000);
  };
  source.addEventListener("resync", (event) => {
    const data = JSON.parse(event.data);
    heard(event);
    state.epoch = data.epoch; state.rev = data.rev;
    replaceAll(data.items);
    showConnection();
  });
  source.addEventListener("change", (event) => {
    const data = JSON.parse(event.data);
    heard(event);
    for (const change of data.changes) applyChange(change);
    state.rev = data.rev;
    if (state.status && state.status.state === "live") state.status.rev = data.rev;
    updateCount();
    showConnection();
  });
  source.addEventListener("status", (event) => {
    state.status = JSON.parse(event.data);
    state.heartbeat = state.status.heartbeat || state.heartbeat;
    heard(event);
    showConnection();
  });
}

function heard(event) {
  state.streamOpen = true;
  state.heard = performance.now();
  if (event.lastEventId) state.lastId = event.lastEventId;
}

// A stream that went silent (a proxy holding it, a sleeping laptop) is not trusted: open a new one,
// carrying the last id ourselves, since a new EventSource does not send Last-Event-ID.
function watchdog() {
  showConnection();
  if (state.source && (performance.now() - state.heard) / 1000 > 3 * state.heartbeat) connect();
}

// --- writes ------------------------------------------------------------------------------

function authHeaders() {
  const token = sessionStorage.getItem("statehub-token");
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function write(key, value, expect) {
  const headers = { "Content-Type": "application/json", ...authHeaders() };
  if (expect === 0) headers["If-None-Match"] = "*"; else if (expect) headers["If-Match"] = `"${expect}"`;
  const response = await fetch(`/api/keys/${encodeURIComponent(key)}`, { method: "PUT", headers, body: JSON.stringify({ value }) });
  const body = await response.json();
  return { response, body };
}

function parseTyped(kind, text) {
  switch (kind) {
    case "string": return text;
    case "number": {
      const n = Number(text.trim());
      if (text.trim() === "" || !Number.isFinite(n)) throw new Error(`'${text}' is not a number; choose the type string to store text`);
      return n;
    }
    case "boolean": {
      const t = text.trim().toLowerCase();
      if (t !== "true" && t !== "false") throw new Error(`'${text}' is not a boolean: true or false`);
      return t === "true";
    }
    case "null": return null;
    default:
      try { return JSON.parse(text); } catch (e) { throw new Error(`not JSON: ${e.message}`); }
  }
}

// The value the open editor holds, read by its widget; an Error saying why when it cannot be.
function editorValue(key) {
  const { kind, rule } = state.widget || { kind: "text" };
  switch (kind) {
    case "choice": {
      const choice = $("e-choice");
      if (choice.selectedIndex < 0) throw new Error(`choose a value for '${key}': ${rule.allows} (schema: ${rule.name})`);
      return choice.value;
    }
    case "check": return $("e-check").checked;
    case "number": return numberValue(key, rule);
    default: return parseTyped($("e-type").value, $("e-value").value);
  }
}

// The number input's value once the browser finds it valid for the rule's range and step. The
// refusal is worded as the hub words it; the hub checks again (its rules may have changed since).
function numberValue(key, rule) {
  const input = $("e-number");
  const validity = input.validity;
  let got = null;
  if (validity.badInput || validity.valueMissing) got = "no number";
  else if (!validity.valid) got = input.value;
  if (got !== null) throw new Error(`invalid value for '${key}': expected ${rule.allows} (schema: ${rule.name}), got ${got}; nothing was sent`);
  return Number(input.value);
}

async function save(event) {
  event.preventDefault();
  const key = state.selected;
  if (!key || !state.edit) return;
  let value;
  try {
    value = editorValue(key);
  } catch (e) {
    showError(e.message); return;
  }
  await submit({ key, value, kind: "edit" }, state.edit.baseRev);  // 0: the key must still not exist
}

async function submit(pending, expect) {
  showError("");
  $("conflict").hidden = true;
  let result;
  try {
    result = await write(pending.key, pending.value, expect);
  } catch (e) {
    showError(`the web server did not answer: ${e.message}`); return;
  }
  const { response, body } = result;
  if (response.status === 412 || response.status === 409) {
    showConflict(pending, body.current);
  } else if (!response.ok) {
    showError(`${body.error.message}${body.error.hint ? ` (${body.error.hint})` : ""}`);
  } else {
    state.edit = { key: pending.key, baseRev: body.rev };
    $("e-note").hidden = true;
    loadHistory(pending.key);
  }
}

function showConflict(pending, current) {
  state.pending = { ...pending, theirs: current };
  const box = $("conflict");
  if (current) {
    $("c-text").textContent = `While you were editing, ${current.user || "someone"} (${current.source || "?"}) changed it at ${formatTime(current.time)} to revision ${current.rev}:`;
    $("c-value").textContent = showValue(current.value);
  } else {
    $("c-text").textContent = "While you were editing, the key was deleted.";
    $("c-value").textContent = "";
  }
  box.hidden = false;
}

async function keepMine() {
  const pending = state.pending;
  if (!pending) return;
  state.pending = null;
  await submit(pending, pending.theirs ? pending.theirs.rev : 0);
}

function takeTheirs() {
  const pending = state.pending;
  state.pending = null;
  $("conflict").hidden = true;
  if (pending && pending.theirs) {
    state.edit = { key: pending.key, baseRev: pending.theirs.rev };
    setEditor(pending.theirs.value);
  }
  $("e-note").hidden = true;
}

function showError(text) {
  $("e-error").textContent = text;
  $("e-error").hidden = !text;
}

// --- the detail panel ----------------------------------------------------------------------

function select(key) {
  if (state.selected) state.rows.get(state.selected)?.tr.classList.remove("selected");
  state.selected = key;
  state.rows.get(key)?.tr.classList.add("selected");
  $("detail").hidden = false;
  $("d-key").textContent = key;
  $("conflict").hidden = true;
  showError("");
  const row = state.rows.get(key);
  state.edit = { key, baseRev: row ? row.item.rev : 0 };
  openEditor(key);
  $("e-note").hidden = true;
  refreshDetail(true);
}

// The editor for KEY's rule, holding its current value, with the rule's words under it.
function openEditor(key) {
  const row = state.rows.get(key);
  const rule = ruleFor(key);
  state.widget = { kind: widgetFor(rule), rule, ruleText: JSON.stringify(rule) };
  if (row) setEditor(row.item.value, rule && EDITOR_TYPES[rule.type] ? EDITOR_TYPES[rule.type] : typeOf(row.item.value));
  $("e-rule").textContent = rule ? `schema: ${rule.allows}${rule.unit ? `, ${rule.unit}` : ""}${rule.description ? ` (${rule.description})` : ""}` : "";
  $("e-rule").hidden = !rule;
}

// Shows the open editor's widget holding VALUE; KIND is the text editor's type (kept when absent).
function setEditor(value, kind) {
  const { kind: widget, rule } = state.widget || { kind: "text" };
  $("edit").dataset.widget = widget;
  $("e-type").hidden = widget !== "text";
  $("e-value").hidden = widget !== "text" && widget !== "string";
  $("e-choice").hidden = widget !== "choice";
  $("e-check-label").hidden = widget !== "check";
  $("e-number-wrap").hidden = widget !== "number";
  if (widget === "choice") {
    const options = rule.values.map((choice) => new Option(choice, choice, false, choice === value));
    $("e-choice").replaceChildren(...options);
    // A stored value the rule does not allow selects nothing: saving then asks for a choice.
    if (!rule.values.includes(value)) $("e-choice").selectedIndex = -1;
  } else if (widget === "check") {
    $("e-check").checked = value === true;
    $("e-check-text").textContent = String(value === true);
  } else if (widget === "number") {
    const input = $("e-number");
    const integer = rule.type === "integer";
    // An integer's bounds are whole so the step (counted from min) stays on whole numbers.
    if (rule.min != null) input.min = integer ? Math.ceil(rule.min) : rule.min; else input.removeAttribute("min");
    if (rule.max != null) input.max = integer ? Math.floor(rule.max) : rule.max; else input.removeAttribute("max");
    input.step = integer ? "1" : "any";
    input.title = rule.allows;
    input.value = typeof value === "number" ? String(value) : "";
    $("e-range").textContent = rangeText(rule);
  } else {
    $("e-type").value = widget === "string" ? "string" : kind || $("e-type").value;
    $("e-value").value = typeof value === "string" ? value : value === null ? "" : JSON.stringify(value);
  }
}

function refreshDetail(reload) {
  const key = state.selected;
  const row = state.rows.get(key);
  const dl = $("d-current");
  dl.replaceChildren();
  const add = (term, text, cls) => {
    const dt = document.createElement("dt"); dt.textContent = term;
    const dd = document.createElement("dd"); dd.textContent = text; if (cls) dd.className = cls;
    dl.append(dt, dd);
  };
  if (row) {
    const item = row.item;
    add("value", item.secret ? "•••••• secret" : showValue(item.value), item.secret ? "secret" : "");
    add("type", item.secret ? "secret" : typeOf(item.value));
    add("revision", `${item.rev} (created at ${item.created_rev})`);
    add("when", formatTime(item.time));
    add("who", `${item.user || "?"} via ${item.source || "?"}`);
  } else {
    add("value", "(not set)");
  }
  const secret = row && row.item.secret;
  $("edit").hidden = secret || state.role !== "write";
  if (reload) loadHistory(key);
}

function onSelectedChanged(item) {
  refreshDetail(false);
  if (state.edit && item.rev !== state.edit.baseRev) {
    $("e-note").textContent = `changed by ${item.user || "someone"} (${item.source}) at ${formatTime(item.time)} while you look at it: saving will show you both`;
    $("e-note").hidden = false;
  }
  extendTrend(item);
  loadHistorySoon(item.key);
}

let historyTimer = null;
function loadHistorySoon(key) {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(() => { if (state.selected === key) loadHistory(key, true); }, 300);
}

async function loadHistory(key, keepTrend = false) {
  const response = await fetch(`/api/keys/${encodeURIComponent(key)}/history?limit=${HISTORY_LIMIT}`, { headers: authHeaders() });
  if (state.selected !== key) return;
  const body = await response.json();
  if (!response.ok) {
    drawHistory(key, []);
    $("h-more").textContent = response.status === 503 ? "history needs the hub, which is down" : body.error.message;
    $("h-more").hidden = false;
    return;
  }
  drawHistory(key, body.versions);
  if (!keepTrend || !state.trend || state.trend.key !== key) drawTrend(key, body.versions);
}

function drawHistory(key, versions) {
  const body = document.querySelector("#history tbody");
  const fragment = document.createDocumentFragment();
  const current = state.rows.get(key);
  for (const version of versions.slice(0, HISTORY_SHOWN)) {
    const tr = document.createElement("tr");
    const change = version.op === "unset"
      ? `${showValue(version.prev_value)} → (deleted)`
      : `${version.prev_rev ? showValue(version.prev_value) : "(new)"} → ${showValue(version.value)}`;
    for (const [text, cls] of [[version.rev, "num"], [formatTime(version.time), "when"], [`${version.user || "?"} via ${version.source || "?"}`, ""], [version.secret ? "(secret changed)" : change, "change"]]) {
      const td = document.createElement("td");
      td.textContent = text; td.className = cls;
      tr.appendChild(td);
    }
    const action = document.createElement("td");
    const isCurrent = current && current.item.rev === version.rev;
    if (version.op === "set" && !version.secret && !isCurrent && state.role === "write") {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "revert";
      button.dataset.rev = version.rev;
      button.textContent = "revert to this";
      button.addEventListener("click", () => revert(key, version));
      action.appendChild(button);
    }
    tr.appendChild(action);
    fragment.appendChild(tr);
  }
  body.replaceChildren(fragment);
  $("h-more").hidden = versions.length <= HISTORY_SHOWN;
  $("h-more").textContent = `${versions.length - HISTORY_SHOWN} older versions not shown (GET /api/keys/${key}/history?limit=N)`;
}

async function revert(key, version) {
  const row = state.rows.get(key);
  state.edit = { key, baseRev: row ? row.item.rev : 0 };
  await submit({ key, value: version.value, kind: "revert" }, row ? row.item.rev : 0);
}

// --- trends ---------------------------------------------------------------------------------

// The chart library is loaded the first time a trend is drawn, not with the page.
let uplotLoading = null;
function loadUplot() {
  if (!uplotLoading) {
    uplotLoading = new Promise((resolve, reject) => {
      const css = document.createElement("link");
      css.rel = "stylesheet"; css.href = "/static/vendor/uplot/uPlot.min.css";
      const script = document.createElement("script");
      script.src = "/static/vendor/uplot/uPlot.iife.min.js";
      script.onload = resolve;
      script.onerror = () => { uplotLoading = null; reject(new Error("the chart library did not load")); };
      document.head.append(css, script);
    });
  }
  return uplotLoading;
}

// A value's point on the trend: a number at the time it was written, or a reading record such as
// `statehub ingest-eds` stores ({value: number, time: ISO}) at the time it was read, so a replayed
// year of history charts as that year, not as the seconds the replay took.
function trendPoint(value, writtenAt) {
  if (typeof value === "number") return { time: writtenAt, value };
  if (value && typeof value === "object" && typeof value.value === "number" && typeof value.time === "string") {
    const readAt = Date.parse(value.time) / 1000;
    if (Number.isFinite(readAt)) return { time: readAt, value: value.value };
  }
  return null;
}

async function drawTrend(key, versions) {
  if (state.trend) { state.trend.plot.destroy(); state.trend = null; }
  const points = versions
    .filter((v) => v.op === "set" && !v.secret)
    .reverse()  // oldest first, so equal times keep their order through the stable sort
    .map((v) => trendPoint(v.value, v.time))
    .filter((point) => point !== null)
    .sort((a, b) => a.time - b.time);
  const section = $("trend");
  const chart = $("chart");
  chart.dataset.points = 0;
  if (!points.length) { section.hidden = true; return; }
  try { await loadUplot(); } catch { section.hidden = true; return; }
  if (state.selected !== key || state.trend) return;  // another key was chosen meanwhile
  section.hidden = false;
  const xs = points.map((v) => v.time);
  const ys = points.map((v) => v.value);
  const width = Math.max(240, chart.parentElement.clientWidth - 8);
  const plot = new window.uPlot({
    width, height: 220,
    scales: { x: { time: true } },
    fmtDate: (tpl) => window.uPlot.fmtDate(tpl.replace("{M}/{D}/{YY}", "{YYYY}-{MM}-{DD}").replace("{h}", "{HH}").replace("{aa}", "")),
    tzDate: (ts) => ($("utc").checked ? window.uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC") : new Date(ts * 1e3)),
    series: [{ label: $("utc").checked ? "time (UTC)" : `time (${zoneName()})` }, { label: key, stroke: "#0b5cad", width: 1.5, points: { show: xs.length < 60 } }],
    axes: [{}, { size: 60 }],
    legend: { show: true },
  }, [xs, ys], chart);
  state.trend = { plot, xs, ys, key, range: 0 };
  chart.dataset.points = xs.length;
  setRange(currentRange());
}

function extendTrend(item) {
  const trend = state.trend;
  const point = trend && trend.key === item.key && !item.secret ? trendPoint(item.value, item.time) : null;
  if (!point) return;
  let at = trend.xs.length;  // a late reading (a correction, a backfill) goes where its time is
  while (at > 0 && trend.xs[at - 1] > point.time) at -= 1;
  trend.xs.splice(at, 0, point.time);
  trend.ys.splice(at, 0, point.value);
  trend.plot.setData([trend.xs, trend.ys], trend.range === 0);
  if (trend.range) setRange(trend.range);
  $("chart").dataset.points = trend.xs.length;
}

function currentRange() {
  const on = document.querySelector(".ranges button.on");
  return on ? Number(on.dataset.range) : 0;
}

function setRange(seconds) {
  for (const b of document.querySelectorAll(".ranges button")) b.classList.toggle("on", Number(b.dataset.range) === seconds);
  const trend = state.trend;
  if (!trend) return;
  trend.range = seconds;
  if (!trend.xs.length) return;
  const max = Math.max(trend.xs[trend.xs.length - 1], Date.now() / 1000);
  const min = seconds ? max - seconds : trend.xs[0];
  trend.plot.setScale("x", { min, max: seconds ? max : trend.xs[trend.xs.length - 1] });
}

// --- access --------------------------------------------------------------------------------

async function whoAmI() {
  const response = await fetch("/api/whoami", { headers: authHeaders() });
  const body = await response.json();
  if (!response.ok || body.role === null) {
    $("token-button").hidden = false;
    $("token-dialog").showModal();
    return false;
  }
  state.role = body.role;
  $("who").textContent = body.role === "write" ? (body.name ? `${body.name} (read-write)` : "") : `${body.name || "anonymous"} (read-only)`;
  $("token-button").hidden = !body.name && body.role === "write";
  return true;
}

async function useToken(event) {
  event.preventDefault();
  const token = $("token-input").value.trim();
  const response = await fetch("/api/session", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) {
    const body = await response.json();
    $("token-error").textContent = body.error.message;
    $("token-error").hidden = false;
    return;
  }
  sessionStorage.setItem("statehub-token", token);
  $("token-dialog").close();
  $("token-error").hidden = true;
  if (await whoAmI()) connect();
}

// --- start -----------------------------------------------------------------------------------

async function start() {
  const params = new URLSearchParams(location.search);
  $("prefix").value = params.get("prefix") || "";
  $("search").value = params.get("search") || "";
  $("prefix").addEventListener("input", refilter);
  $("search").addEventListener("input", refilter);
  $("utc").addEventListener("change", redrawTimes);
  document.querySelector("#keys tbody").addEventListener("click", (event) => {
    const tr = event.target.closest("tr");
    if (tr) select(tr.dataset.key);
  });
  $("d-close").addEventListener("click", () => {
    state.rows.get(state.selected)?.tr.classList.remove("selected");
    state.selected = null; state.edit = null;
    $("detail").hidden = true;
    if (state.trend) { state.trend.plot.destroy(); state.trend = null; }
  });
  $("edit").addEventListener("submit", save);
  $("e-check").addEventListener("change", () => { $("e-check-text").textContent = String($("e-check").checked); });
  $("c-keep").addEventListener("click", keepMine);
  $("c-take").addEventListener("click", takeTheirs);
  $("token-form").addEventListener("submit", useToken);
  $("token-button").addEventListener("click", () => $("token-dialog").showModal());
  for (const b of document.querySelectorAll(".ranges button")) b.addEventListener("click", () => setRange(Number(b.dataset.range)));
  setInterval(watchdog, 1000);
  setInterval(redrawExpiries, 1000);
  loadSchema();
  // Open the stream at once; a server that wants a token answers 401 and the token dialog follows.
  connect();
  showConnection();
  if (!(await whoAmI()) && state.source) { state.source.close(); state.source = null; }
}

start();
