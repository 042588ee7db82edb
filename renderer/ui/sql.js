// The SQL console: a read-only query over the snapshots (`POST /api/sql`, the engine of
// `scope sql` and the Postgres endpoint) and its rows as a table. Its example is the current
// view as the renderer wrote it: the view's SQL under renderer/src/view/ reads relations that
// exist only while a snapshot renders, so the example reads what that SQL produced.

/** Rows drawn at most: `SELECT * FROM sockets` is a whole snapshot, which the page need not hold twice. */
const MAX_ROWS = 1000;

/** The example for a view: its nodes and their outbound edges, in the latest snapshot. */
export function exampleQuery(view) {
  const name = view.replaceAll("'", "''");
  return `-- The ${view} view as last rendered: its nodes, with their edges out.
-- Every retained snapshot is under history.<table>, by snapshot_time.
SELECT n.id, n.label, n.label_minor, n.shape, count(e.dst) AS edges_out
FROM graph_nodes n
LEFT JOIN graph_edges e ON e.view = n.view AND e.src = n.id
WHERE n.view = '${name}'
GROUP BY n.id, n.label, n.label_minor, n.shape
ORDER BY n.id
LIMIT 100`;
}

export class SqlConsole {
  /** `form` holds the `query` textarea and a submit button; `status` says how it went; the rows go in `result`. */
  constructor({ form, query, status, result }) {
    this.query = query;
    this.status = status;
    this.result = result;
    /** Whether the query is the user's: then a view change keeps it. */
    this.edited = false;
    /** Runs asked for, so an answer overtaken by a later run is dropped. */
    this.runs = 0;
    query.addEventListener("input", () => {
      this.edited = query.value.trim() !== "";
    });
    query.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
  }

  /** Offers the example of `view`, unless a query of the user's is there. */
  example(view) {
    if (!this.edited) this.query.value = exampleQuery(view);
  }

  async run() {
    const run = ++this.runs;
    this.say("Running…");
    const started = performance.now();
    try {
      const response = await fetch("/api/sql", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ query: this.query.value }),
      });
      // Rows are streamed: a query that fails after the first ones cuts the body, which then
      // is not JSON.
      const body = await response.json().catch((error) => ({ error: `the answer was cut (${error.message})` }));
      if (run !== this.runs) return;
      if (!response.ok || !Array.isArray(body)) throw new Error(body.error ?? `${response.status} ${response.statusText}`);
      const shown = body.length > MAX_ROWS ? `, the first ${MAX_ROWS} shown` : "";
      this.result.replaceChildren(rowsTable(body.slice(0, MAX_ROWS)));
      this.say(`${body.length} ${body.length === 1 ? "row" : "rows"} in ${Math.round(performance.now() - started)} ms${shown}`);
    } catch (error) {
      if (run !== this.runs) return;
      this.result.replaceChildren();
      this.say(error.message, true);
    }
  }

  say(text, failed = false) {
    this.status.textContent = text;
    this.status.classList.toggle("error", failed);
  }
}

/** The API's rows (objects with every column, nulls included) as a table. */
function rowsTable(rows) {
  const table = document.createElement("table");
  const columns = Object.keys(rows[0] ?? {});
  const head = table.createTHead().insertRow();
  for (const column of columns) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = column;
    head.append(th);
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const column of columns) {
      const td = tr.insertCell();
      const value = row[column];
      if (value === null) {
        td.textContent = "NULL";
        td.className = "null";
      } else {
        td.textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
      }
    }
  }
  return table;
}
