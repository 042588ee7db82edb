// The page: what is shown (view, its options, the selected node) lives in the URL's hash, so a
// link reproduces it and the back button undoes a click. Every change goes through the hash:
// a click sets it, `show` reads it.

import { renderDetails, renderDetailsError } from "./details.js";
import { GraphView } from "./graph.js";
import { NodeTable } from "./table.js";

const $ = (id) => document.getElementById(id);
const elements = {
  topologies: $("topologies"),
  options: $("options"),
  pause: $("pause"),
  mode: $("mode"),
  table: $("table"),
  status: $("status"),
  graph: $("graph"),
  list: $("node-list"),
  details: $("details"),
};

/** The views `GET /api/topology` lists, sub-views flattened after their parent, by id. */
let topologies = new Map();
/** What is on screen: the view's id and its options as the websocket was opened with them. */
let shown = { view: null, query: null };
let socket = null;
let graph = null;
/** The view's nodes as a table, drawn while the table mode is on. */
let table = null;
let paused = false;
/** Details already asked for, so a later answer for another node is dropped. */
let detailsRequest = 0;

/** The hash's state: `view`, the view's option values, `node`, `mode` (graph or table). */
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const view = topologies.has(params.get("view")) ? params.get("view") : topologies.keys().next().value;
  const options = {};
  for (const group of topologies.get(view).options) {
    options[group.id] = params.get(group.id) ?? group.defaultValue;
  }
  return { view, options, node: params.get("node"), mode: params.get("mode") === "table" ? "table" : "graph" };
}

function hashFor({ view, options, node, mode }) {
  const params = new URLSearchParams({ view, ...options });
  if (node) params.set("node", node);
  if (mode === "table") params.set("mode", mode);
  return `#${params}`;
}

/** Goes to a new state; the hashchange shows it. */
function go(state) {
  location.hash = hashFor(state);
}

/** The href that selects `node` in `view` with that view's default options. */
function link(view, node) {
  const { mode } = readHash();
  if (!topologies.has(view)) return hashFor({ view: shown.view, options: {}, node, mode });
  return hashFor({ view, options: defaults(view), node, mode });
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
      button.addEventListener("click", () => go({ ...readHash(), view: id, options: defaults(id), node: null }));
      group.append(button);
    }
    nav.push(group);
  }
  elements.topologies.replaceChildren(...nav);
}

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
          go({ ...state, options: { ...state.options, [group.id]: [...picked].join(",") } });
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
    select.addEventListener("change", () => go({ ...state, options: { ...state.options, [group.id]: select.value } }));
    field.append(select);
    return field;
  });
  elements.options.replaceChildren(...groups);
  for (const button of elements.topologies.querySelectorAll("button")) {
    button.setAttribute("aria-current", String(button.dataset.view === state.view));
  }
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
    const delta = JSON.parse(message.data);
    if (delta.reset) graph.reset(delta.add ?? []);
    else graph.apply(delta);
    setStatus(`${graph.graph.order} nodes, ${graph.graph.size} edges`);
    refreshDetails(delta);
    if (!elements.table.hidden) table.render([...graph.summaries.values()]);
  });
  current.addEventListener("close", () => {
    if (current !== socket) return;
    // The renderer restarting, or the network: try again, the reset will resync.
    socket = null;
    setStatus("Disconnected, retrying…");
    setTimeout(() => {
      if (socket === null && !paused) connect();
    }, 2000);
  });
}

function disconnect() {
  const old = socket;
  socket = null;
  old?.close();
}

/** Shows the state in the hash: a new view or options reconnect, a new node opens its details. */
async function show() {
  const state = readHash();
  const query = queryOf(state.options);
  if (state.view !== shown.view || query !== shown.query) {
    disconnect();
    graph?.kill();
    shown = { view: state.view, query };
    const select = (node) => go({ ...readHash(), node });
    graph = new GraphView(elements.graph, elements.list, select);
    table = new NodeTable(elements.table, select);
    // For the browser's console and the browser tests: the graph as drawn.
    window.scopeGraph = graph;
    renderOptions(state);
    if (!paused) connect();
  }
  const tableMode = state.mode === "table";
  elements.mode.setAttribute("aria-pressed", String(tableMode));
  if (tableMode) table.render([...graph.summaries.values()]);
  elements.table.hidden = !tableMode;
  if (state.node !== (elements.details.hidden ? null : elements.details.dataset.node)) {
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
  const path = `/api/topology/${shown.view}/${encodeURIComponent(node)}?${shown.query}`;
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

elements.mode.addEventListener("click", () => {
  const state = readHash();
  go({ ...state, mode: state.mode === "table" ? "graph" : "table" });
});
elements.details.addEventListener("close-details", () => go({ ...readHash(), node: null }));
window.addEventListener("hashchange", show);

try {
  await loadTopologies();
  await show();
} catch (error) {
  setStatus(`Cannot load the views: ${error.message}`);
}
