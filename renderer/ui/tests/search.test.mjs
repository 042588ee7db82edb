// Scope's search syntax (node --test; run by renderer/tests/ui.rs), over summaries shaped as
// the API's.

import assert from "node:assert/strict";
import { test } from "node:test";
import { parseSearch, parseSearches } from "../search.js";

const server = {
  id: "vm;10",
  label: "httpd",
  labelMinor: "vm (10)",
  metadata: [
    { id: "pid", label: "PID", value: "10", dataType: "number" },
    { id: "cmdline", label: "Command", value: "/usr/sbin/httpd -k start" },
  ],
  metrics: [
    { id: "process_cpu_usage_percent", label: "CPU", value: 12.5 },
    { id: "process_memory_usage_bytes", label: "Memory", value: 50 * 1024 ** 2 },
  ],
};
const client = {
  id: "vm;100",
  label: "curl",
  labelMinor: "vm (100)",
  metadata: [{ id: "pid", label: "PID", value: "100", dataType: "number" }],
  metrics: [{ id: "process_cpu_usage_percent", label: "CPU", value: 1 }],
};
const internet = { id: "out-theinternet", label: "The Internet", labelMinor: "Outbound connections" };
const nodes = [server, client, internet];

function found(query) {
  const { matches, error } = parseSearch(query);
  assert.equal(error, undefined, query);
  return nodes.filter(matches).map((node) => node.id);
}

test("text matches labels, minor labels and metadata values in any case", () => {
  assert.deepEqual(found("HTTPD"), ["vm;10"]);
  assert.deepEqual(found("outbound"), ["out-theinternet"]);
  assert.deepEqual(found("-k start"), ["vm;10"]); // two terms, both in the command
  assert.deepEqual(found("-k curl"), []);
  assert.deepEqual(found("start"), ["vm;10"]);
  assert.deepEqual(found(""), nodes.map((node) => node.id));
});

test("a field's number is equal, not contained", () => {
  assert.deepEqual(found("pid: 10"), ["vm;10"]);
  assert.deepEqual(found("PID:100"), ["vm;100"]);
  assert.deepEqual(found("command: httpd"), ["vm;10"]);
});

test("metrics compare with units", () => {
  assert.deepEqual(found("cpu > 4%"), ["vm;10"]);
  assert.deepEqual(found("cpu <= 1"), ["vm;100"]);
  assert.deepEqual(found("memory < 10mb"), []);
  assert.deepEqual(found("memory >= 50mb"), ["vm;10"]);
});

test("terms all match; a regex is between slashes", () => {
  assert.deepEqual(found("vm, cpu > 4%"), ["vm;10"]);
  assert.deepEqual(found("/^c.rl$/"), ["vm;100"]);
});

test("an unreadable term is an error, not an exception", () => {
  assert.match(parseSearch("/(/").error, /"\/\(\/"/);
});

test("pinned searches and the typed one all filter; an unreadable one filters nothing", () => {
  const pinned = (queries) => nodes.filter(parseSearches(queries).matches).map((node) => node.id);
  assert.deepEqual(pinned(["vm", "cpu > 4%"]), ["vm;10"]);
  assert.deepEqual(pinned(["httpd", "curl"]), []);
  assert.deepEqual(pinned([]), nodes.map((node) => node.id));
  const { matches, errors } = parseSearches(["curl", "/(/"]);
  assert.deepEqual(nodes.filter(matches).map((node) => node.id), ["vm;100"]);
  assert.equal(errors[0], null);
  assert.match(errors[1], /"\/\(\/"/);
});
