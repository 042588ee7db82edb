// Where nodes go, so that the map holds still (Weave Scope's layout moved every node on each
// update, its issue 419): a node keeps its place for as long as it is in the view, a new node
// takes the free cell of a grid nearest its placed neighbours, and a node with none takes the
// next free cell of a spiral out from the centre. Placing is linear in the new nodes; nothing
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

  /** The centre of a node's placed neighbours, else the next point of the spiral. */
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
    if (count) return [Math.round(x / count), Math.round(y / count)];
    // Spaced by the square root, so that the spiral's points are about a cell apart.
    const step = this.spiral++;
    const radius = 1.2 * Math.sqrt(step);
    return [Math.round(radius * Math.cos(step * GOLDEN_ANGLE)), Math.round(radius * Math.sin(step * GOLDEN_ANGLE))];
  }

  /** Gives `id` the free cell nearest `around`, searching square rings outwards. */
  take(id, around) {
    for (let ring = 0; ; ring++) {
      let best = null;
      let bestDistance = Infinity;
      for (let dx = -ring; dx <= ring; dx++) {
        for (let dy = -ring; dy <= ring; dy++) {
          if (Math.max(Math.abs(dx), Math.abs(dy)) !== ring) continue;
          const cell = [around[0] + dx, around[1] + dy];
          const distance = dx * dx + dy * dy;
          if (distance < bestDistance && !this.taken.has(key(cell))) {
            best = cell;
            bestDistance = distance;
          }
        }
      }
      if (best) {
        this.cells.set(id, best);
        this.taken.add(key(best));
        return;
      }
    }
  }
}

function key(cell) {
  return `${cell[0]},${cell[1]}`;
}
