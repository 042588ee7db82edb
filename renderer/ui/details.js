// A node's details, as Scope's panel showed them: its metadata, metrics with a sparkline of
// their retained samples, parents, its tables (labels), children, and inbound and outbound
// connections, from `GET /api/topology/{view}/{node}`. Related nodes are links that select
// them in their own view.

/** Fills `panel` with `details` (the API's `node`); `link(view, id)` makes a related node's href. */
export function renderDetails(panel, details, link) {
  const parts = [heading(details)];
  if (details.metadata?.length) {
    parts.push(section("Info", propertyTable(details.metadata.map((row) => [row.label, text(row.value)]))));
  }
  if (details.metrics?.length) {
    parts.push(section("Metrics", metricsTable(details.metrics)));
  }
  if (details.parents?.length) {
    const list = element("ul", { className: "parents" });
    for (const parent of details.parents) {
      list.append(element("li", {}, anchor(link(parent.topologyId, parent.id), parent.label), ` (${parent.topologyId})`));
    }
    parts.push(section("Parents", list));
  }
  for (const table of details.tables ?? []) {
    parts.push(section(table.label, propertyTable(table.rows.map((row) => [row.entries.label, text(row.entries.value)]))));
  }
  for (const group of details.children ?? []) {
    const rows = group.nodes.map((child) => [
      anchor(link(group.topologyId, child.id), child.label),
      ...group.columns.slice(1).map((column) => text(cell(child, column.id))),
    ]);
    parts.push(section(group.label, table(group.columns.map((c) => c.label), rows)));
  }
  for (const connections of details.connections ?? []) {
    const rows = connections.connections.map((row) => [
      anchor(link(connections.topologyId, row.nodeId), row.label),
      ...connections.columns.map((column) => text(row.metadata.find((m) => m.id === column.id)?.value ?? "")),
    ]);
    const headings = ["Node", ...connections.columns.map((c) => c.label)];
    const body = rows.length ? table(headings, rows) : element("p", { className: "empty" }, "None");
    parts.push(section(`${connections.label} connections`, body));
  }
  panel.replaceChildren(...parts);
  panel.dataset.node = details.id;
  panel.hidden = false;
}

/** Says why the details are missing (the node left, the API failed). */
export function renderDetailsError(panel, id, message) {
  panel.replaceChildren(element("h2", {}, id), element("p", { className: "error" }, message));
  panel.dataset.node = id;
  panel.hidden = false;
}

function heading(details) {
  const header = element("header", {}, element("h2", {}, details.label));
  if (details.labelMinor) header.append(element("p", { className: "minor" }, details.labelMinor));
  const close = element("button", { type: "button", className: "close", title: "Close" }, "×");
  // The panel's owner listens for it, as for any close.
  close.addEventListener("click", () => close.dispatchEvent(new CustomEvent("close-details", { bubbles: true })));
  header.append(close);
  return header;
}

/** A metadata or metric value of a child row, by its column's id. */
function cell(node, id) {
  const row = node.metadata?.find((m) => m.id === id) ?? node.metrics?.find((m) => m.id === id);
  if (!row) return "";
  return "format" in row ? formatMetric(row) : row.value;
}

function metricsTable(metrics) {
  const rows = metrics.map((metric) => [metric.label, text(formatMetric(metric)), sparkline(metric)]);
  return table(["Metric", "Value", "Recent"], rows);
}

export function formatMetric(metric) {
  const value = metric.value;
  switch (metric.format) {
    case "percent":
      return `${value.toFixed(2)}%`;
    case "filesize":
      return bytes(value);
    case "integer":
      return String(Math.round(value));
    default:
      return Number.isInteger(value) ? String(value) : value.toFixed(2);
  }
}

function bytes(value) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

const SVG = "http://www.w3.org/2000/svg";

/** The metric's samples as a line, scaled to its min and max. */
function sparkline(metric) {
  const samples = metric.samples ?? [];
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("viewBox", "0 0 100 20");
  svg.setAttribute("preserveAspectRatio", "none");
  if (samples.length < 2) return svg;
  const low = Math.min(metric.min, ...samples.map((s) => s.value));
  const high = Math.max(metric.max, ...samples.map((s) => s.value));
  const span = high - low || 1;
  const points = samples.map((s, i) => `${(i / (samples.length - 1)) * 100},${20 - ((s.value - low) / span) * 18 - 1}`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  return svg;
}

function section(title, body) {
  return element("section", {}, element("h3", {}, title), body);
}

function propertyTable(rows) {
  const body = element("table", { className: "properties" });
  for (const [label, value] of rows) {
    body.append(element("tr", {}, element("th", { scope: "row" }, label), element("td", {}, value)));
  }
  return body;
}

function table(headings, rows) {
  const head = element("tr", {}, ...headings.map((h) => element("th", { scope: "col" }, h)));
  const body = rows.map((cells) => element("tr", {}, ...cells.map((c) => element("td", {}, c))));
  return element("table", {}, element("thead", {}, head), element("tbody", {}, ...body));
}

function anchor(href, label) {
  return element("a", { href }, label);
}

function text(value) {
  return document.createTextNode(String(value));
}

function element(tag, properties, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, properties);
  node.append(...children);
  return node;
}
