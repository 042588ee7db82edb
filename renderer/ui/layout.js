// Where nodes go, so that the map holds still (Weave Scope's layout moved every node on each
// update, its issue 419): a node keeps its place for as long as it is in the view, a new node
// takes the free cell of a grid nearest its placed neighbours (a few rings around them at most),
// and a node with none, or none free near them, takes the next free cell of a spiral out from
// the centre. Placing is linear in the new nodes; nothing
// already placed ever moves.

const GOLDEN_ANGLE = Math.PI * (3 - Math.sqrt(5));

export class Layout {
  constructor() {
    /** Node id -> its cell, [column, row]. */
    this.cells = new Map();
    /** "column,row" of every taken cell. */
    this.taken = new Set();
    this.spiral = 0;
  }

  /** The place of a node, in graph coordinates, if it has one. */
  position(id) {
    const cell = this.cells.get(id);
    return cell && { x: cell[0], y: cell[1] };
  }

  /** Frees the cell of a node that left the view. */
  remove(id) {
    const cell = this.cells.get(id);
    if (cell) {
      this.taken.delete(key(cell));
      this.cells.delete(id);
    }
  }

  /**
   * Places the nodes of `ids` that have no place yet. `neighbours(id)` lists a node's peers
   * (either direction). Nodes are placed breadth first from the best connected, so that a
   * hub's peers gather around it.
   */
  place(ids, neighbours) {
    const fresh = new Set(ids.filter((id) => !this.cells.has(id)));
    const byDegree = [...fresh].sort((a, b) => neighbours(b).length - neighbours(a).length);
    for (const start of byDegree) {
      if (!fresh.has(start)) continue;
      const queue = [start];
      fresh.delete(start);
      for (let next = 0; next < queue.length; next++) {
        const id = queue[next];
        this.take(id, this.target(neighbours(id)));
        for (const peer of neighbours(id)) {
          if (fresh.delete(peer)) queue.push(peer);
        }
      }
    }
  }

  /** The centre of a node's placed neighbours, or null when none is placed. */
  target(peers) {
    let x = 0;
    let y = 0;
    let count = 0;
    for (const peer of peers) {
      const cell = this.cells.get(peer);
      if (cell) {
        x += cell[0];
        y += cell[1];
        count += 1;
      }
    }
    return count ? [Math.round(x / count), Math.round(y / count)] : null;
  }

  /** Gives `id` the free cell nearest `around` within NEAR_RINGS, else the next free point of the spiral. */
  take(id, around) {
    let cell = around && this.nearestFree(around, NEAR_RINGS);
    while (!cell) cell = this.nearestFree(this.spiralPoint(), 0);
    this.cells.set(id, cell);
    this.taken.add(key(cell));
  }

  /** The free cell nearest `around`, searching its square rings outwards up to `rings`, or null. */
  nearestFree([x, y], rings) {
    for (let ring = 0; ring <= rings; ring++) {
      let best = null;
      let bestDistance = Infinity;
      const consider = (dx, dy) => {
        const distance = dx * dx + dy * dy;
        if (distance < bestDistance && !this.taken.has(key([x + dx, y + dy]))) {
          best = [x + dx, y + dy];
          bestDistance = distance;
        }
      };
      // The ring's edges only: the rings inside it were full.
      for (let d = -ring; d <= ring; d++) {
        consider(d, -ring);
        consider(d, ring);
        consider(-ring, d);
        consider(ring, d);
      }
      if (best) return best;
    }
    return null;
  }

  /** The spiral's next point out from the centre, spaced by the square root so that its points are about a cell apart. */
  spiralPoint() {
    const step = this.spiral++;
    const radius = 1.2 * Math.sqrt(step);
    return [Math.round(radius * Math.cos(step * GOLDEN_ANGLE)), Math.round(radius * Math.sin(step * GOLDEN_ANGLE))];
  }
}

/** How far around its peers a node's place is looked for: a hub's first 288 peers are placed
 * around it, the rest on the spiral. Searching every ring took 3 s for 10,000 nodes with
 * 30,000 random edges (a full grid around every centre), 16 rings 0.5 s, 8 rings 0.2 s. */
const NEAR_RINGS = 8;

/** A cell as a number, which a Set hashes faster than a string; exact for |row| < 2^25. */
function key([column, row]) {
  return column * 2 ** 26 + row;
}
