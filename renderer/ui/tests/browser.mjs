// The web UI in Debian's Chromium, driven by Playwright, as a user clicks through it; run by
// scope/tests/ui.rs against `scope up` with real processes connecting.
//
//   node browser.mjs <base URL> <server node id> <client node id> <screenshot dir>
//
// Prints one line per step passed. After "waiting for a new client" it reads the node id of a
// client that connects only then from stdin, and expects it in the graph without a reload;
// after "waiting for the new client to exit", a line once it has, and expects it to go.
// Any failure prints "error: ..." and exits 1.

import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const [base, serverId, clientId, screenshots] = process.argv.slice(2);
const origin = new URL(base).origin;
const LIMIT = 60_000;

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const problems = [];

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function api(path) {
  const response = await fetch(`${origin}${path}`);
  check(response.ok, `GET ${path}: ${response.status}`);
  return response.json();
}

/** Waits for `condition(arg)` to hold in the page, failing with `what` after `limit`. */
async function until(page, what, condition, arg, limit = LIMIT) {
  try {
    await page.waitForFunction(condition, arg, { timeout: limit });
  } catch (error) {
    throw new Error(`${what}: ${error.message}`);
  }
}

/** A new page of the browser, its errors and any request beyond `origin` noted as problems. */
async function open() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("console", (message) => {
    // Chromium logs every answer with an error status, such as the SQL console's refusals.
    const refusal = /status of 40[03]/.test(message.text()) && message.location().url.endsWith("/api/sql");
    if (message.type() === "error" && !refusal) problems.push(`console error: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("requestfailed", (request) => problems.push(`failed: ${request.method()} ${request.url()}: ${request.failure()?.errorText}`));
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.protocol !== "data:" && url.origin !== origin) problems.push(`request outside ${origin}: ${request.url()}`);
  });
  page.on("websocket", (socket) => {
    if (new URL(socket.url()).host !== new URL(origin).host) problems.push(`websocket outside ${origin}: ${socket.url()}`);
  });
  return page;
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await open();
  // The processes view is the first the API lists, so the page opens on it.
  await page.goto(`${origin}/`);
  await until(page, "the client's edge to the server", ([client, server]) => window.scopeGraph?.graph.hasEdge(client, server), [clientId, serverId]);
  console.log("the processes view draws the client's edge to the server");

  // The labels drawn are the API's, for every node both have (a snapshot may come between).
  const listing = await api("/api/topology/processes?unconnected=hide");
  const drawn = await page.evaluate(() => {
    const { graph } = window.scopeGraph;
    return Object.fromEntries(graph.nodes().map((id) => [id, [graph.getNodeAttribute(id, "label"), graph.getNodeAttribute(id, "labelMinor")]]));
  });
  for (const id of [serverId, clientId]) {
    check(id in listing.nodes, `the API lists no ${id}`);
  }
  let compared = 0;
  for (const [id, [label, minor]] of Object.entries(drawn)) {
    const node = listing.nodes[id];
    if (!node) continue;
    check(label === node.label && minor === node.labelMinor, `${id} is drawn as ${label} / ${minor}, the API says ${node.label} / ${node.labelMinor}`);
    compared += 1;
  }
  check(compared >= 2, `only ${compared} nodes both drawn and listed`);
  const buttons = await page.locator("#node-list button").allTextContents();
  check(buttons.includes(`${listing.nodes[serverId].label} (${listing.nodes[serverId].labelMinor})`), `no button for the server: ${buttons}`);
  console.log(`labels match the API (${compared} nodes)`);

  // WebGL drew the server where sigma says it is, in its colour. The view rescales when a node
  // arrives or leaves (chromium's own connections come and go), so a place read just before
  // may be stale: a few tries.
  const box = await page.locator("#graph").boundingBox();
  const colour = await page.evaluate((id) => window.scopeGraph.graph.getNodeAttribute(id, "color"), serverId);
  const centre = async () => {
    const at = await page.evaluate((id) => window.scopeGraph.viewportPosition(id), serverId);
    return { x: box.x + at.x, y: box.y + at.y };
  };
  const colourAt = async ({ x, y }) => {
    const pixel = await page.screenshot({ clip: { x, y, width: 1, height: 1 } });
    return page.evaluate(async (png) => {
      const image = new Image();
      image.src = `data:image/png;base64,${png}`;
      await image.decode();
      const canvas = new OffscreenCanvas(1, 1);
      const context = canvas.getContext("2d");
      context.drawImage(image, 0, 0);
      const [r, g, b] = context.getImageData(0, 0, 1, 1).data;
      return `#${[r, g, b].map((c) => c.toString(16).padStart(2, "0")).join("")}`;
    }, pixel.toString("base64"));
  };
  const seen = [];
  for (let tries = 0; tries < 5 && seen.at(-1) !== colour; tries++) seen.push(await colourAt(await centre()));
  check(seen.at(-1) === colour, `the server's centre is ${seen}, its colour ${colour}`);
  await page.screenshot({ path: `${screenshots}/processes.png` });
  console.log("the server is drawn in its colour");

  // A click on the server opens its details, with the API's metadata and the client inbound.
  const panel = page.locator(`#details[data-node="${serverId}"]`);
  for (let tries = 0; ; tries++) {
    await page.mouse.click(...Object.values(await centre()));
    try {
      await panel.waitFor({ state: "visible", timeout: 5_000 });
      break;
    } catch (error) {
      if (tries === 4) throw new Error(`clicking the server opened no details: ${error.message}`);
    }
  }
  const { node: details } = await api(`/api/topology/processes/${encodeURIComponent(serverId)}?unconnected=hide`);
  check((await panel.locator("h2").textContent()) === details.label, "the panel's title is not the server's label");
  const info = await panel.locator("section").filter({ hasText: "Info" }).locator("tr").evaluateAll((rows) =>
    rows.map((row) => [row.cells[0].textContent, row.cells[1].textContent]),
  );
  const expected = details.metadata.map((row) => [row.label, row.value]);
  check(JSON.stringify(info) === JSON.stringify(expected), `the panel's info ${JSON.stringify(info)} is not the API's ${JSON.stringify(expected)}`);
  const clientLabel = listing.nodes[clientId].label;
  const inbound = await panel.locator("section").filter({ hasText: "Inbound connections" }).locator("tbody a").allTextContents();
  check(inbound.includes(clientLabel), `the inbound connections ${inbound} do not list the client ${clientLabel}`);
  const hash = new URLSearchParams(new URL(page.url()).hash.slice(1));
  check(hash.get("view") === "processes" && hash.get("node") === serverId, `the URL does not say the view and node: ${page.url()}`);
  const detailsLink = page.url();
  await page.screenshot({ path: `${screenshots}/details.png` });
  console.log("clicking the server opens its details");

  // A client that connects now arrives through the websocket: the page is not reloaded, and
  // no node already drawn moves.
  await page.evaluate(() => {
    window.notReloaded = true;
  });
  const places = () =>
    page.evaluate(() => {
      const { graph } = window.scopeGraph;
      return Object.fromEntries(graph.nodes().map((id) => [id, `${graph.getNodeAttribute(id, "x")},${graph.getNodeAttribute(id, "y")}`]));
    });
  const before = await places();
  const beforeClient = Math.floor(Date.now() / 1000);
  console.log("waiting for a new client");
  const next = await stdin.next();
  check(!next.done, "no new client's id on stdin");
  const newClient = next.value.trim();
  await until(page, "the new client's edge", ([client, server]) => window.scopeGraph.graph.hasEdge(client, server), [newClient, serverId]);
  check(await page.evaluate(() => window.notReloaded === true), "the page was reloaded");
  const after = await places();
  const moved = Object.keys(before).filter((id) => id in after && after[id] !== before[id]);
  check(moved.length === 0, `nodes moved: ${moved.map((id) => `${id} ${before[id]} -> ${after[id]}`)}`);
  check(!(newClient in before) && newClient in after, "the new client was not new");
  const whileConnected = new Date().toISOString();
  console.log("the new client's edge arrived without a reload, nothing moved");

  // Once it exits (and the window and the pipeline's memory of it pass), a delta removes it.
  console.log("waiting for the new client to exit");
  check(!(await stdin.next()).done, "no word of the new client's exit on stdin");
  await until(page, "the exited client gone", (client) => !window.scopeGraph.graph.hasNode(client), newClient, 3 * LIMIT);
  check(await page.evaluate(() => window.notReloaded === true), "the page was reloaded");
  console.log("the exited client left the graph without a reload");

  // Time travel: on the timeline, a moment before the new client shows the graph without
  // it; a link to a moment while it was connected, with it; Live goes back to the websocket.
  await page.locator("#when").focus();
  await until(page, "the timeline to reach the new client", (t) => Number(document.getElementById("when").max) >= t, beforeClient);
  await page.locator("#when").evaluate((slider, t) => {
    slider.value = String(t);
    slider.dispatchEvent(new Event("change"));
  }, beforeClient);
  await until(page, "the moment before the new client", () => document.getElementById("status").textContent.startsWith("At "));
  const hashTime = new URLSearchParams(new URL(page.url()).hash.slice(1)).get("time");
  check(Date.parse(hashTime) === beforeClient * 1000, `the URL's time ${hashTime} is not the one picked`);
  const past = await page.evaluate(([client, server, gone]) => {
    const { graph } = window.scopeGraph;
    return { first: graph.hasEdge(client, server), second: graph.hasNode(gone) };
  }, [clientId, serverId, newClient]);
  check(past.first && !past.second, `before the new client: ${JSON.stringify(past)}`);
  await page.screenshot({ path: `${screenshots}/time-travel.png` });
  await page.evaluate((time) => {
    const params = new URLSearchParams(location.hash.slice(1));
    params.set("time", time);
    location.hash = `#${params}`;
  }, whileConnected);
  await until(page, "the new client at a moment it was connected", (client) => window.scopeGraph.graph.hasNode(client), newClient);
  await page.locator("#live").click();
  await until(page, "no time in the URL", () => !new URLSearchParams(location.hash.slice(1)).has("time"));
  await until(
    page,
    "the live view without the exited client",
    (client) => !window.scopeGraph.graph.hasNode(client) && /^\d+ nodes/.test(document.getElementById("status").textContent),
    newClient,
  );
  console.log("the timeline shows the graph before and while the new client was there, then live");

  // The table mode lists the graph's nodes, sorts by a column, and opens a row's details.
  await page.locator("#mode").click();
  await page.locator("#table tbody tr").first().waitFor({ state: "visible", timeout: LIMIT });
  check(new URLSearchParams(new URL(page.url()).hash.slice(1)).get("mode") === "table", `the URL does not say table: ${page.url()}`);
  const [rows, nodes] = await page.evaluate(() => [
    [...document.querySelectorAll("#table tbody tr")].map((tr) => tr.dataset.id).sort(),
    window.scopeGraph.graph.nodes().sort(),
  ]);
  check(JSON.stringify(rows) === JSON.stringify(nodes), `the table lists ${rows}, the graph has ${nodes}`);
  await page.locator("#table th button", { hasText: /^PID$/ }).click();
  const pids = (await page.locator("#table tbody tr").evaluateAll((trs) => trs.map((tr) => tr.cells[1].textContent)))
    .filter(Boolean)
    .map(Number);
  check(pids.length >= 2 && pids.every((pid, i) => i === 0 || pids[i - 1] <= pid), `not sorted by PID: ${pids}`);
  // Scope's search: `pid: <the server's>` leaves the server alone, in the table and the graph.
  await page.locator("#search").fill(`pid: ${serverId.split(";")[1]}`);
  await until(
    page,
    "the search to leave the server alone",
    (id) => {
      const rows = [...document.querySelectorAll("#table tbody tr")].map((tr) => tr.dataset.id);
      const drawn = window.scopeGraph.visible().map((summary) => summary.id);
      return rows.length === 1 && rows[0] === id && drawn.length === 1 && drawn[0] === id;
    },
    serverId,
  );
  check(new URLSearchParams(new URL(page.url()).hash.slice(1)).get("q") === `pid: ${serverId.split(";")[1]}`, `the URL lacks the search: ${page.url()}`);
  await page.locator("#search").fill("");
  await until(page, "every row back", (count) => document.querySelectorAll("#table tbody tr").length === count, rows.length);
  await page.locator(`#table tbody tr[data-id="${serverId}"]`).click();
  await page.locator(`#details[data-node="${serverId}"]`).waitFor({ state: "visible", timeout: LIMIT });
  await page.screenshot({ path: `${screenshots}/table.png` });
  await page.locator("#mode").click();
  await page.locator("#table").waitFor({ state: "hidden", timeout: LIMIT });
  console.log("the table lists the graph's nodes, sorts, searches and opens details");

  // Pinned searches: the server's pid, pinned, filters together with what is typed; the URL
  // holds the pins, the search and the moment, and a page opened on it shows the same.
  const serverPid = serverId.split(";")[1];
  const visibleIds = (on) => on.evaluate(() => window.scopeGraph.visible().map((summary) => summary.id).sort());
  const hashOf = (on) => new URLSearchParams(new URL(on.url()).hash.slice(1));
  await page.locator("#search").fill(`pid: ${serverPid}`);
  await page.locator("#pin").click();
  await until(page, "the pin in the URL", (pin) => new URLSearchParams(location.hash.slice(1)).getAll("pin").join() === pin, `pid: ${serverPid}`);
  check(!hashOf(page).has("q") && (await page.locator("#search").inputValue()) === "", `pinning left the search: ${page.url()}`);
  check((await page.locator("#pins .pinned").allTextContents()).join() === `pid: ${serverPid}×`, "no chip for the pin");
  check(JSON.stringify(await visibleIds(page)) === JSON.stringify([serverId]), `the pin leaves ${await visibleIds(page)}`);
  await page.locator("#search").fill("zz-no-such-node");
  await until(page, "the pin and the search together to leave nothing", () => window.scopeGraph.visible().length === 0);
  const serverLabel = listing.nodes[serverId].label;
  await page.locator("#search").fill(serverLabel);
  await page.evaluate((time) => {
    const params = new URLSearchParams(location.hash.slice(1));
    params.set("time", time);
    location.hash = `#${params}`;
  }, whileConnected);
  await until(page, "the moment with the pin", () => document.getElementById("status").textContent.startsWith("At "));
  check(JSON.stringify(await visibleIds(page)) === JSON.stringify([serverId]), `pin, search and moment leave ${await visibleIds(page)}`);
  const searchLink = page.url();
  const reproduced = await open();
  await reproduced.goto(searchLink);
  await until(reproduced, "the linked moment", () => document.getElementById("status").textContent.startsWith("At "));
  check((await reproduced.locator("#search").inputValue()) === serverLabel, "the link lost the search");
  check((await reproduced.locator("#pins .pinned").count()) === 1, "the link lost the pin");
  check(JSON.stringify(await visibleIds(reproduced)) === JSON.stringify([serverId]), `the link shows ${await visibleIds(reproduced)}`);
  check(hashOf(reproduced).get("time") === whileConnected, `the link lost the moment: ${reproduced.url()}`);
  await reproduced.close();
  await page.locator("#live").click();
  await page.locator("#search").fill("");
  await until(page, "live, the search cleared", () => !new URLSearchParams(location.hash.slice(1)).has("time") && !new URLSearchParams(location.hash.slice(1)).has("q"));
  console.log("pinned searches filter together, and a link reproduces the search, pins and moment");

  // Another view: the URL says so, and the graph is that view's; the pin stays until unpinned.
  await page.locator('#topologies button[data-view="hosts"]').click();
  await until(page, "the hosts view in the URL", () => new URLSearchParams(location.hash.slice(1)).get("view") === "hosts");
  const hosts = await api("/api/topology/hosts?pseudo=show");
  const host = Object.keys(hosts.nodes).find((id) => id.endsWith(";<host>"));
  check(host, `the API lists no host: ${Object.keys(hosts.nodes)}`);
  await until(page, "the host in the hosts view", (id) => window.scopeGraph.graph.hasNode(id), host);
  check(!(await page.evaluate((id) => window.scopeGraph.graph.hasNode(id), serverId)), "the hosts view still draws the server process");
  check((await page.locator('#topologies button[data-view="hosts"]').getAttribute("aria-current")) === "true", "the Hosts button is not marked current");
  check(hashOf(page).getAll("pin").join() === `pid: ${serverPid}`, `the pin did not follow to hosts: ${page.url()}`);
  check((await visibleIds(page)).length === 0, "a host has a pid");
  await page.locator("#pins button").click();
  await until(page, "the host back once unpinned", (id) => window.scopeGraph.visible().some((summary) => summary.id === id), host);
  check(!hashOf(page).has("pin"), `unpinned, yet in the URL: ${page.url()}`);
  await page.screenshot({ path: `${screenshots}/hosts.png` });
  console.log("switching to hosts changes the URL and the graph");

  // The SQL console: the view's nodes as the example, any query's rows, a write refused.
  await page.locator("#sql-mode").click();
  await page.locator("#sql").waitFor({ state: "visible", timeout: LIMIT });
  check(hashOf(page).get("mode") === "sql", `the URL does not say sql: ${page.url()}`);
  const query = page.locator("#sql-query");
  check((await query.inputValue()).includes("n.view = 'hosts'"), `the example is not the hosts view's: ${await query.inputValue()}`);
  const run = async (what) => {
    const before = await page.locator("#sql-status").textContent();
    await page.locator("#sql-form button[type=submit]").click();
    await until(page, what, (was) => !["Running…", was].includes(document.getElementById("sql-status").textContent), before);
    const cells = await page.locator("#sql-result tbody tr").evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
    return { cells, status: await page.locator("#sql-status").textContent(), failed: await page.locator("#sql-status.error").count() };
  };
  const example = await run("the example's rows");
  check(!example.failed && example.cells.some((row) => row[0] === host), `the example's rows lack ${host}: ${JSON.stringify(example)}`);
  await query.fill(`select id, label from graph_nodes where view = 'processes' and id = '${serverId}'`);
  const rowsOf = await run("the server's row");
  check(JSON.stringify(rowsOf.cells) === JSON.stringify([[serverId, serverLabel]]) && rowsOf.status.startsWith("1 row"), `the query showed ${JSON.stringify(rowsOf)}`);
  const headers = await page.locator("#sql-result th").allTextContents();
  check(headers.join() === "id,label", `the columns are ${headers}`);
  await page.screenshot({ path: `${screenshots}/sql.png` });
  await query.fill("drop table graph_nodes");
  const refused = await run("the write's refusal");
  check(refused.failed && refused.status.includes("read-only") && refused.cells.length === 0, `a write was not refused: ${JSON.stringify(refused)}`);
  await page.locator("#sql-mode").click();
  await page.locator("#sql").waitFor({ state: "hidden", timeout: LIMIT });
  console.log("the SQL console shows rows and refuses a write");

  // A screenshot of every view offered, each drawn from its own websocket.
  const views = await page.locator("#topologies button:not([hidden])").evaluateAll((buttons) => buttons.map((b) => b.dataset.view));
  for (const view of views) {
    await page.locator(`#topologies button[data-view="${view}"]`).click();
    await until(
      page,
      `the ${view} view drawn`,
      // Marked current as the page starts the view, before it asks for its nodes.
      (id) =>
        document.querySelector('#topologies button[aria-current="true"]')?.dataset.view === id &&
        /^\d+ nodes/.test(document.getElementById("status").textContent),
      view,
    );
    await page.screenshot({ path: `${screenshots}/view-${view}.png` });
  }
  check(views.includes("processes") && views.includes("hosts"), `views offered: ${views}`);
  console.log(`every view drawn: ${views.join(", ")}`);

  // The link copied while the details were open opens them again, in a page of its own.
  const linked = await open();
  await linked.goto(detailsLink);
  await linked.locator(`#details[data-node="${serverId}"] h2`).waitFor({ state: "visible", timeout: LIMIT });
  check((await linked.locator('#topologies button[data-view="processes"]').getAttribute("aria-current")) === "true", "the link did not open the processes view");
  await linked.close();
  console.log("a link opens the view and node it names");

  check(problems.length === 0, problems.join("\n"));
  console.log("done");
} catch (error) {
  console.log(`error: ${error.message.replaceAll("\n", " | ")}${problems.length ? ` (also: ${problems.join(" | ")})` : ""}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  // The readline keeps stdin open.
  process.exit();
}
