// The layout's promises (node --test; run by renderer/tests/ui.rs): a placed node never moves,
// no two nodes share a place, a new node lands next to its peers, and a departed node's place
// is free again.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Layout } from "../layout.js";

/** A star of `leaves` around `hub`, as adjacency lists in both directions. */
function star(hub, leaves) {
  const peers = new Map([[hub, leaves]]);
  for (const leaf of leaves) peers.set(leaf, [hub]);
  return (id) => peers.get(id) ?? [];
}

const key = ({ x, y }) => `${x},${y}`;

test("placed nodes stay where they are while others arrive and leave", () => {
  const layout = new Layout();
  const first = Array.from({ length: 200 }, (_, i) => `n${i}`);
  layout.place(first, () => []);
  const places = new Map(first.map((id) => [id, key(layout.position(id))]));
  for (let batch = 0; batch < 5; batch++) {
    const leaves = Array.from({ length: 50 }, (_, i) => `b${batch}-${i}`);
    layout.place([`n${batch}`, ...leaves], star(`n${batch}`, leaves));
    layout.remove(`n${100 + batch}`);
  }
  for (const [id, place] of places) {
    if (layout.position(id)) assert.equal(key(layout.position(id)), place, id);
  }
});

test("no two nodes share a place", () => {
  const layout = new Layout();
  const ids = Array.from({ length: 2000 }, (_, i) => `n${i}`);
  // Every node a peer of n0: all want the same spot.
  layout.place(ids, star("n0", ids.slice(1)));
  const taken = new Set(ids.map((id) => key(layout.position(id))));
  assert.equal(taken.size, ids.length);
});

test("a new node lands next to its placed peer", () => {
  const layout = new Layout();
  layout.place(["a", "b", "c"], () => []);
  layout.place(["new"], star("new", ["b"]));
  const [b, added] = [layout.position("b"), layout.position("new")];
  assert.ok(Math.max(Math.abs(b.x - added.x), Math.abs(b.y - added.y)) <= 1, `${key(b)} and ${key(added)}`);
});

test("a departed node's place is free again", () => {
  const layout = new Layout();
  layout.place(["hub", "leaf"], star("hub", ["leaf"]));
  const place = key(layout.position("leaf"));
  layout.remove("leaf");
  assert.equal(layout.position("leaf"), undefined);
  layout.place(["again"], star("again", ["hub"]));
  assert.equal(key(layout.position("again")), place);
});
