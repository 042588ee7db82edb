// Scope's table mode: one row per node of the view, a column per metadata field and metric
// any node has (in the API's priority order), sorted by any column with a click on its
// heading (again for the other direction). Numbers sort as numbers.

import { formatMetric } from "./details.js";

/** The table of `summaries` (the API's node summaries) in `container`. */
export class NodeTable {
  /** `onSelect(id)`: a row's node was clicked. */
  constructor(container, onSelect) {
    this.container = container;
    this.onSelect = onSelect;
    this.sort = { column: "label", descending: false };
  }

  render(summaries) {
    const columns = columnsOf(summaries);
    const column = columns.find((c) => c.id === this.sort.column) ?? columns[0];
    const rows = summaries.map((summary) => ({ summary, cells: columns.map((c) => c.value(summary)) }));
    const index = columns.indexOf(column);
    const direction = this.sort.descending ? -1 : 1;
    rows.sort((a, b) => direction * compare(a.cells[index].key, b.cells[index].key) || compare(a.summary.id, b.summary.id));

    const headings = columns.map((c) => {
      const th = document.createElement("th");
      th.scope = "col";
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = c.label;
      button.addEventListener("click", () => {
        this.sort = { column: c.id, descending: c === column && !this.sort.descending };
        this.render(summaries);
      });
      th.append(button);
      if (c === column) th.setAttribute("aria-sort", this.sort.descending ? "descending" : "ascending");
      return th;
    });
    const body = rows.map(({ summary, cells }) => {
      const tr = document.createElement("tr");
      tr.dataset.id = summary.id;
      tr.addEventListener("click", () => this.onSelect(summary.id));
      for (const cell of cells) {
        const td = document.createElement("td");
        td.textContent = cell.text;
        tr.append(td);
      }
      return tr;
    });
    const table = document.createElement("table");
    const head = document.createElement("thead");
    head.append(document.createElement("tr"));
    head.firstChild.append(...headings);
    const tbody = document.createElement("tbody");
    tbody.append(...body);
    table.append(head, tbody);
    this.container.replaceChildren(table);
  }
}

/** A cell: what it shows, and what it sorts by. */
function cell(text, key = text) {
  return { text, key };
}

/** Numbers before text, missing values last. */
function compare(x, y) {
  if (x === null || y === null) return (x === null) - (y === null);
  if (typeof x === "number" && typeof y === "number") return x - y;
  if (typeof x === "number") return -1;
  if (typeof y === "number") return 1;
  return String(x).localeCompare(String(y));
}

/** The node's label, then every metadata field and metric of any node, by priority. */
function columnsOf(summaries) {
  const fields = new Map();
  for (const summary of summaries) {
    for (const row of summary.metadata ?? []) {
      if (!fields.has(row.id)) fields.set(row.id, { kind: "metadata", row });
    }
    for (const row of summary.metrics ?? []) {
      if (!fields.has(row.id)) fields.set(row.id, { kind: "metrics", row });
    }
  }
  const ordered = [...fields.values()].sort((a, b) => a.row.priority - b.row.priority);
  return [
    { id: "label", label: "Node", value: (s) => cell(s.labelMinor ? `${s.label} · ${s.labelMinor}` : s.label, s.label) },
    ...ordered.map(({ kind, row }) => ({
      id: row.id,
      label: row.label,
      value: (summary) => {
        const found = summary[kind]?.find((r) => r.id === row.id);
        if (!found) return cell("", null);
        if (kind === "metrics") return cell(formatMetric(found), found.value);
        const number = Number(found.value);
        return found.dataType === "number" && Number.isFinite(number) ? cell(found.value, number) : cell(found.value);
      },
    })),
  ];
}
