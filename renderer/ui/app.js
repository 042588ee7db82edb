// The page: what is shown (view, its options, the selected node, the mode, the searches and
// the moment) lives in the URL's hash, so a link reproduces it and the back button undoes a click. Every change goes through the hash:
// a click sets it, `show` reads it.

import { renderDetails, renderDetailsError } from "./details.js";
import { GraphView } from "./graph.js";
import { parseSearches } from "./search.js";
import { SqlConsole } from "./sql.js";
import { NodeTable } from "./table.js";

const $ = (id) => document.getElementById(id);
const elements = {
  topologies: $("topologies"),
  options: $("options"),
  pause: $("pause"),
  mode: $("mode"),
  sqlMode: $("sql-mode"),
  table: $("table"),
  sql: $("sql"),
  when: $("when"),
  whenLabel: $("when-label"),
  live: $("live"),
  search: $("search"),
  pin: $("pin"),
  pins: $("pins"),
  status: $("status"),
  group: $("group"),
  graph: $("graph"),
  list: $("node-list"),
  details: $("details"),
};

/** The views `GET /api/topology` lists, sub-views flattened after their parent, by id. */
let topologies = new Map();
/** What is on screen: the view's id, its options as asked for, and the moment (null: live). */
let shown = { view: null, query: null, time: null };
let socket = null;
let graph = null;
/** The view's nodes as a table, drawn while the table mode is on. */
let table = null;
let paused = false;
const sql = new SqlConsole({ form: $("sql-form"), query: $("sql-query"), status: $("sql-status"), result: $("sql-result") });
/** Details and past moments already asked for, so an answer overtaken by another is dropped. */
let detailsRequest = 0;
let momentRequest = 0;

/** The hash's state: `view`, the view's option values, `node`, `mode` (graph, table or sql),
 * `time` (an RFC 3339 moment to show instead of the live view), `q` (the search being typed),
 * `pin` (a pinned search; repeated, kept across views). */
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const view = topologies.has(params.get("view")) ? params.get("view") : topologies.keys().next().value;
  const options = {};
  for (const group of topologies.get(view).options) {
    options[group.id] = params.get(group.id) ?? group.defaultValue;
  }
  const mode = MODES.includes(params.get("mode")) ? params.get("mode") : "graph";
  const pins = params.getAll("pin");
  return { view, options, node: params.get("node"), mode, time: params.get("time"), q: params.get("q") ?? "", pins };
}

/** The modes besides the graph, each with its button. */
const MODES = ["table", "sql"];

function hashFor({ view, options, node, mode, time, q, pins = [] }) {
  const params = new URLSearchParams({ view, ...options });
  if (node) params.set("node", node);
  if (mode !== "graph") params.set("mode", mode);
  if (time) params.set("time", time);
  if (q) params.set("q", q);
  for (const pin of pins) params.append("pin", pin);
  return `#${params}`;
}

/** Goes to a new state; the hashchange shows it. `replace`: without a step in the history
 * (a search typed letter by letter). */
function go(state, { replace = false } = {}) {
  if (!replace) {
    location.hash = hashFor(state);
    return;
  }
  history.replaceState(null, "", hashFor(state));
  show();
}

/** The href that selects `node` in `view` with that view's default options, at the same moment
 * and with the same pinned searches. */
function link(view, node) {
  const { mode, time, pins } = readHash();
  if (!topologies.has(view)) return hashFor({ view: shown.view, options: {}, node, mode, time, pins });
  return hashFor({ view, options: defaults(view), node, mode, time, pins });
}

function defaults(view) {
  return Object.fromEntries(topologies.get(view).options.map((g) => [g.id, g.defaultValue]));
}

async function fetchJson(path) {
  const response = await fetch(path);
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error ?? `${response.status} ${response.statusText}`);
  }
  return response.json();
}

async function loadTopologies() {
  const list = await fetchJson("/api/topology");
  topologies = new Map();
  const nav = [];
  for (const topology of list) {
    const group = document.createElement("div");
    group.className = "topology";
    for (const [index, entry] of [topology, ...(topology.sub_topologies ?? [])].entries()) {
      const id = entry.url.replace("/api/topology/", "");
      topologies.set(id, entry);
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.view = id;
      button.className = index ? "sub" : "";
      button.textContent = entry.name;
      button.title = `${entry.stats.node_count} nodes, ${entry.stats.edge_count} edges`;
      // As Scope: a view that is empty here (no Kubernetes, say) is not offered, unless shown.
      button.hidden = entry.hide_if_empty && entry.stats.node_count === 0 && id !== shown.view;
      button.setAttribute("aria-current", String(id === shown.view));
      button.addEventListener("click", () => go({ ...readHash(), view: id, options: defaults(id), node: null }));
      group.append(button);
    }
    nav.push(group);
  }
  elements.topologies.replaceChildren(...nav);
}

/** The views again, for their counts and which are empty. */
const TOPOLOGIES_EVERY_MS = 10_000;

/** The option groups of the current view: a select each, or checkboxes for a union. */
function renderOptions(state) {
  const groups = topologies.get(state.view).options.map((group) => {
    const field = document.createElement("label");
    field.className = "option";
    if (group.selectType === "union") {
      const picked = new Set((state.options[group.id] ?? "").split(",").filter(Boolean));
      field.append(`${group.noneLabel ?? group.id}:`);
      for (const option of group.options) {
        const box = document.createElement("input");
        box.type = "checkbox";
        box.checked = picked.has(option.value);
        box.addEventListener("change", () => {
          if (box.checked) picked.add(option.value);
          else picked.delete(option.value);
          setOption(group.id, [...picked].join(","));
        });
        const item = document.createElement("span");
        item.append(box, option.label);
        field.append(item);
      }
      return field;
    }
    const select = document.createElement("select");
    select.name = group.id;
    for (const option of group.options) {
      select.append(new Option(option.label, option.value, false, option.value === state.options[group.id]));
    }
    select.addEventListener("change", () => setOption(group.id, select.value));
    field.append(select);
    return field;
  });
  elements.options.replaceChildren(...groups);
  for (const button of elements.topologies.querySelectorAll("button")) {
    const current = button.dataset.view === state.view;
    button.setAttribute("aria-current", String(current));
    if (current) button.hidden = false;
  }
}

/** Goes to the current state with one option changed. */
function setOption(id, value) {
  const state = readHash();
  go({ ...state, options: { ...state.options, [id]: value } });
}

/** The query the view's listing, websocket and details are asked with: every option spelled out, as Scope's UI does. */
function queryOf(options) {
  return new URLSearchParams(Object.entries(options).filter(([, value]) => value !== "")).toString();
}

function setStatus(text) {
  elements.status.textContent = text;
}

/** Opens the view's websocket: a reset first, then deltas, until closed or paused. */
function connect() {
  const url = new URL(`/api/topology/${shown.view}/ws`, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.search = `t=1s&${shown.query}`;
  const current = new WebSocket(url);
  socket = current;
  setStatus("Connecting…");
  current.addEventListener("message", (message) => {
    if (current !== socket) return;
    let delta;
    try {
      delta = JSON.parse(message.data);
    } catch (error) {
      setStatus(`Skipped a message the server garbled: ${error.message}`);
      return;
    }
    if (delta.reset) graph.reset(delta.add ?? []);
    else graph.apply(delta);
    drawn("");
    refreshDetails(delta);
  });
  current.addEventListener("close", () => {
    if (current !== socket) return;
    // The renderer restarting, or the network: try again, the reset will resync.
    socket = null;
    setStatus("Disconnected, retrying…");
    setTimeout(() => {
      if (socket === null && !paused && shown.time === null) connect();
    }, 2000);
  });
}

function disconnect() {
  const old = socket;
  socket = null;
  old?.close();
}

/** After the graph changed: the status line, the coarser view's offer and, when shown, the table. */
function drawn(prefix) {
  setStatus(`${prefix}${graph.graph.order} nodes, ${graph.graph.size} edges`);
  offerCoarser();
  if (!elements.table.hidden) table.render(graph.visible());
}

/** Nodes above which the view's coarser one is offered: a graph that large is a texture more
 * than a map, and redraws slowly without a GPU. */
const GROUP_ABOVE = 2000;

/** Offers the coarser view of a large one: its first sub-view (processes by name, containers
 * by image), as Scope grouped them. */
function offerCoarser() {
  const coarser = topologies.get(shown.view)?.sub_topologies?.[0];
  const id = coarser?.url.replace("/api/topology/", "");
  elements.group.hidden = !(graph.graph.order > GROUP_ABOVE && topologies.has(id));
  if (elements.group.hidden) return;
  elements.group.textContent = `${graph.graph.order} nodes: group by ${coarser.name.replace(/^by /, "")}`;
  elements.group.dataset.view = id;
}

elements.group.addEventListener("click", () => {
  const view = elements.group.dataset.view;
  go({ ...readHash(), view, options: defaults(view), node: null });
});

/** The view as it was at `shown.time`, from the listing (the websocket only plays forward). */
async function showMoment() {
  const request = ++momentRequest;
  const { time } = shown;
  setStatus(`Loading ${time}…`);
  try {
    const { nodes } = await fetchJson(`/api/topology/${shown.view}?${shown.query}&timestamp=${encodeURIComponent(time)}`);
    if (request !== momentRequest) return;
    graph.reset(Object.values(nodes));
    drawn(`At ${new Date(time).toLocaleString()}: `);
  } catch (error) {
    if (request === momentRequest) setStatus(`Cannot show ${time}: ${error.message}`);
  }
}

/** Shows the state in the hash: a new view starts a graph, new options or moment ask again
 * (places kept), a new node opens its details. */
async function show() {
  const state = readHash();
  const query = queryOf(state.options);
  const time = state.time || null;
  if (state.view !== shown.view) {
    graph?.kill();
    const select = (node) => go({ ...readHash(), node });
    graph = new GraphView(elements.graph, elements.list, select);
    table = new NodeTable(elements.table, select);
    // For the browser's console and the browser tests: the graph as drawn.
    window.scopeGraph = graph;
  }
  const changed = state.view !== shown.view || query !== shown.query || time !== shown.time;
  if (changed) {
    disconnect();
    momentRequest += 1;
    shown = { view: state.view, query, time };
    renderOptions(state);
    renderTimeline();
    if (time) await showMoment();
    else if (!paused) connect();
  }
  applySearch(state.q, state.pins);
  elements.mode.setAttribute("aria-pressed", String(state.mode === "table"));
  elements.sqlMode.setAttribute("aria-pressed", String(state.mode === "sql"));
  if (state.mode === "table") table.render(graph.visible());
  elements.table.hidden = state.mode !== "table";
  if (state.mode === "sql") sql.example(state.view);
  elements.sql.hidden = state.mode !== "sql";
  // Other options or another moment change a node's details too.
  if (changed || state.node !== (elements.details.hidden ? null : elements.details.dataset.node)) {
    await openDetails(state.node);
  }
}

async function openDetails(node) {
  const request = ++detailsRequest;
  if (node === null) {
    elements.details.hidden = true;
    delete elements.details.dataset.node;
    return;
  }
  const at = shown.time ? `&timestamp=${encodeURIComponent(shown.time)}` : "";
  const path = `/api/topology/${shown.view}/${encodeURIComponent(node)}?${shown.query}${at}`;
  try {
    const { node: details } = await fetchJson(path);
    if (request === detailsRequest) renderDetails(elements.details, details, link);
  } catch (error) {
    if (request === detailsRequest) renderDetailsError(elements.details, node, error.message);
  }
}

/** Reloads the open details when a delta touched their node. */
function refreshDetails(delta) {
  const node = elements.details.hidden ? null : elements.details.dataset.node;
  if (node === undefined || node === null) return;
  const touched = [...(delta.add ?? []), ...(delta.update ?? [])].some((s) => s.id === node) || (delta.remove ?? []).includes(node);
  if (touched) openDetails(node);
}

elements.pause.addEventListener("click", () => {
  paused = !paused;
  elements.pause.textContent = paused ? "Resume" : "Pause";
  elements.pause.setAttribute("aria-pressed", String(paused));
  if (paused) {
    disconnect();
    setStatus("Paused");
  } else {
    // The reset that opens the socket brings the graph up to date, places kept.
    connect();
  }
});

/** Filters the graph and the table by the pinned searches and the one typed, all together; a
 * query that cannot be read says why and filters nothing. */
function applySearch(query, pins) {
  if (document.activeElement !== elements.search) elements.search.value = query;
  const { matches, errors } = parseSearches([query, ...pins]);
  const [error, ...pinErrors] = errors;
  elements.search.setCustomValidity(error ?? "");
  elements.search.title = error ?? "";
  elements.pin.disabled = query.trim() === "" || error !== null || pins.includes(query);
  elements.pins.replaceChildren(
    ...pins.map((pin, index) => {
      const chip = document.createElement("span");
      chip.className = "pinned";
      chip.textContent = pin;
      chip.title = pinErrors[index] ?? "Pinned: filters every view";
      chip.classList.toggle("invalid", pinErrors[index] !== null);
      const unpin = document.createElement("button");
      unpin.type = "button";
      unpin.textContent = "×";
      unpin.setAttribute("aria-label", `Unpin ${pin}`);
      unpin.addEventListener("click", () => {
        const state = readHash();
        go({ ...state, pins: state.pins.filter((p) => p !== pin) });
      });
      chip.append(unpin);
      return chip;
    }),
  );
  graph.setFilter(matches);
}

elements.search.addEventListener("input", () => go({ ...readHash(), q: elements.search.value }, { replace: true }));
elements.pin.addEventListener("click", () => {
  const state = readHash();
  go({ ...state, q: "", pins: [...state.pins, state.q] });
});

/** How far back the timeline reaches: the default `--retention`. A moment before the oldest
 * snapshot kept shows an empty graph, as the API answers it. */
const TIMELINE_SPAN_S = 3600;

/** The timeline ends now. */
function timelineToNow() {
  const now = Math.floor(Date.now() / 1000);
  elements.when.min = String(now - TIMELINE_SPAN_S);
  elements.when.max = String(now);
  renderTimeline();
}

function renderTimeline() {
  const live = shown.time === null;
  elements.live.setAttribute("aria-pressed", String(live));
  elements.pause.disabled = !live;
  const seconds = live ? Number(elements.when.max) : Math.floor(Date.parse(shown.time) / 1000);
  elements.when.value = String(seconds);
  elements.whenLabel.textContent = live ? "Live" : new Date(shown.time).toLocaleString();
}

elements.when.addEventListener("pointerdown", timelineToNow);
elements.when.addEventListener("focus", timelineToNow);
elements.when.addEventListener("input", () => {
  elements.whenLabel.textContent = new Date(Number(elements.when.value) * 1000).toLocaleString();
});
elements.when.addEventListener("change", () => {
  const time = new Date(Number(elements.when.value) * 1000).toISOString().replace(".000Z", "Z");
  go({ ...readHash(), time });
});
elements.live.addEventListener("click", () => go({ ...readHash(), time: null }));

for (const [button, mode] of [
  [elements.mode, "table"],
  [elements.sqlMode, "sql"],
]) {
  button.addEventListener("click", () => {
    const state = readHash();
    go({ ...state, mode: state.mode === mode ? "graph" : mode });
  });
}
elements.details.addEventListener("close-details", () => go({ ...readHash(), node: null }));
window.addEventListener("hashchange", show);

try {
  await loadTopologies();
  timelineToNow();
  await show();
  setInterval(() => loadTopologies().catch((error) => console.warn("reloading the views failed:", error.message)), TOPOLOGIES_EVERY_MS);
} catch (error) {
  setStatus(`Cannot load the views: ${error.message}`);
}
