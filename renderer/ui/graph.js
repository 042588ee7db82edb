// The graph of one view: the API's node summaries kept in a graphology graph, drawn by sigma
// (WebGL) with Scope's shapes, and updated in place from the websocket's deltas so that
// nothing already drawn moves.

import { Layout } from "./layout.js";
import { SHAPE_PROGRAMS, shapeOf } from "./shapes.js";

const { Sigma } = globalThis.Sigma;
const Graph = globalThis.graphology;

const SIZE = 14;
/** Edges above which the graph is drawn without them while it moves: in Chromium without a GPU
 * (as in the scale benchmark), drawing 30,000 edges took seconds a frame. */
const LARGE_EDGES = 5000;
/** New nodes that sigma takes one by one; a delta with more is applied detached. */
const DETACH_ABOVE = 100;
const FADED = "#e2e4ea";
const EDGE = "#9aa3b5";
const PSEUDO = "#b6bccb";
// Scope coloured a node by its label's hash, so a program has one colour on every host.
const PALETTE = ["#3e8ed0", "#48c78e", "#f14668", "#ffb70f", "#9b59b6", "#1abc9c", "#e67e22", "#34495e", "#ff6f91", "#2e86ab"];

function colour(summary) {
  if (summary.pseudo) return PSEUDO;
  let hash = 0;
  for (const c of summary.rank || summary.label) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

/** As Scope: the label centred under the node, its minor label under that, smaller and grey. */
function drawLabel(context, data, settings) {
  if (!data.label) return;
  const top = data.y + data.size + settings.labelSize + 2;
  context.textAlign = "center";
  context.font = `${settings.labelWeight} ${settings.labelSize}px ${settings.labelFont}`;
  context.fillStyle = "#1a1f36";
  context.fillText(data.label, data.x, top);
  if (data.labelMinor) {
    context.font = `${settings.labelWeight} ${settings.labelSize - 2}px ${settings.labelFont}`;
    context.fillStyle = "#5b6380";
    context.fillText(data.labelMinor, data.x, top + settings.labelSize);
  }
  context.textAlign = "start";
}

/** The hovered node's labels on a white box, over its neighbours'. */
function drawHover(context, data, settings) {
  context.font = `${settings.labelWeight} ${settings.labelSize}px ${settings.labelFont}`;
  const width = Math.max(context.measureText(data.label ?? "").width, context.measureText(data.labelMinor ?? "").width) + 8;
  const height = settings.labelSize * (data.labelMinor ? 2 : 1) + 6;
  context.fillStyle = "rgba(255, 255, 255, 0.9)";
  context.fillRect(data.x - width / 2, data.y + data.size + 3, width, height);
  drawLabel(context, data, settings);
}

export class GraphView {
  /**
   * `container`: the element sigma draws in; `list`: an element that gets one button per
   * node (what a screen reader or the keyboard uses instead of the canvas); `onSelect(id)`: a
   * node was clicked.
   */
  constructor(container, list, onSelect) {
    this.graph = new Graph({ type: "directed", multi: false, allowSelfLoops: true });
    this.layout = new Layout();
    this.list = list;
    this.items = new Map();
    /** The API's summary of every node, by id, for the table. */
    this.summaries = new Map();
    this.onSelect = onSelect;
    /** The hovered node and its neighbours, drawn while the rest fades. */
    this.highlighted = null;
    /** Which summaries the search leaves drawn. */
    this.filter = () => true;
    this.sigma = new Sigma(this.graph, container, {
      nodeProgramClasses: SHAPE_PROGRAMS,
      defaultNodeType: "circle",
      defaultEdgeType: "arrow",
      defaultEdgeColor: EDGE,
      defaultDrawNodeLabel: drawLabel,
      defaultDrawNodeHover: drawHover,
      labelRenderedSizeThreshold: 1,
      labelSize: 12,
      zIndex: true,
      nodeReducer: (node, data) => {
        if (!this.filter(this.summaries.get(node))) return { ...data, hidden: true };
        if (!this.highlighted || this.highlighted.has(node)) return { ...data, zIndex: 1 };
        return { ...data, color: FADED, label: "", labelMinor: "", zIndex: 0 };
      },
      edgeReducer: (edge, data) => {
        const [source, target] = this.graph.extremities(edge);
        if (!this.filter(this.summaries.get(source)) || !this.filter(this.summaries.get(target))) return { ...data, hidden: true };
        if (!this.highlighted) return data;
        const lit = this.highlighted.has(source) && this.highlighted.has(target);
        return lit ? { ...data, zIndex: 1 } : { ...data, color: FADED, zIndex: 0 };
      },
    });
    this.sigma.on("clickNode", ({ node }) => this.onSelect(node));
    // Not while the graph is dragged: the mouse crosses node after node, and each highlight
    // redraws every node and edge (a quarter of a second at 10,000 nodes).
    this.sigma.on("enterNode", ({ node }) => {
      if (!this.sigma.getMouseCaptor().isMouseDown) this.highlight(node);
    });
    this.sigma.on("leaveNode", () => {
      if (this.highlighted) this.highlight(null);
    });
    /** An empty graph sigma draws while a delta changes the real one: see `detach`. */
    this.placeholder = null;
  }

  /**
   * Stops sigma following the graph until the delta is applied. Sigma re-indexes every node
   * and edge after each one dropped, and refreshes after each one added: removing 10,000
   * nodes one by one took minutes. Detached, the delta costs one refresh, at `attach`.
   */
  detach() {
    if (this.placeholder) return;
    this.placeholder = new Graph({ type: "directed" });
    this.sigma.setGraph(this.placeholder);
  }

  attach() {
    if (!this.placeholder) return;
    this.placeholder = null;
    const large = this.graph.size > LARGE_EDGES;
    if (this.sigma.getSetting("hideEdgesOnMove") !== large) this.sigma.setSetting("hideEdgesOnMove", large);
    this.sigma.setGraph(this.graph);
  }

  /** Whether the view has this node now. */
  has(id) {
    return this.graph.hasNode(id);
  }

  /** The node's place on the page's viewport (CSS pixels from the graph's top left). */
  viewportPosition(id) {
    const { x, y } = this.graph.getNodeAttributes(id);
    return this.sigma.graphToViewport({ x, y });
  }

  /** The view's nodes as the API sent them, the websocket's first message. */
  reset(summaries) {
    const keep = new Set(summaries.map((s) => s.id));
    this.apply({ add: summaries, remove: this.graph.nodes().filter((id) => !keep.has(id)) });
  }

  /** A delta of the websocket: `add` and `update` are node summaries, `remove` ids. */
  apply({ add, update, remove }) {
    const changed = [...(add ?? []), ...(update ?? [])];
    if (remove?.length || changed.filter((s) => !this.graph.hasNode(s.id)).length > DETACH_ABOVE) this.detach();
    for (const id of remove ?? []) {
      if (!this.graph.hasNode(id)) continue;
      this.graph.dropNode(id);
      this.summaries.delete(id);
      this.layout.remove(id);
      this.items.get(id)?.remove();
      this.items.delete(id);
    }
    // Sigma draws a node as soon as it is added, so new nodes are placed first, next to the
    // peers this delta and the graph give them.
    const peers = new Map(changed.map((s) => [s.id, new Set(this.graph.hasNode(s.id) ? this.graph.neighbors(s.id) : [])]));
    for (const summary of changed) {
      for (const target of summary.adjacency ?? []) {
        peers.get(summary.id).add(target);
        peers.get(target)?.add(summary.id);
      }
    }
    this.layout.place(
      changed.map((s) => s.id),
      (id) => [...(peers.get(id) ?? [])],
    );
    for (const summary of changed) {
      // Before the node, which sigma filters by it.
      this.summaries.set(summary.id, summary);
      this.graph.mergeNode(summary.id, {
        ...this.layout.position(summary.id),
        label: summary.label,
        labelMinor: summary.labelMinor,
        type: shapeOf(summary.shape),
        size: SIZE,
        color: colour(summary),
      });
      this.listItem(summary);
    }
    // Edges once every node of the delta exists: a node may name one added after it.
    for (const summary of changed) {
      const targets = new Set((summary.adjacency ?? []).filter((id) => this.graph.hasNode(id)));
      for (const target of this.graph.outNeighbors(summary.id)) {
        if (targets.has(target)) continue;
        this.detach();
        this.graph.dropEdge(summary.id, target);
      }
      for (const target of targets) this.graph.mergeEdge(summary.id, target, { size: 2 });
    }
    this.attach();
  }

  /** The node's button in the list, created or relabelled. */
  listItem(summary) {
    let item = this.items.get(summary.id);
    if (!item) {
      item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.id = summary.id;
      button.addEventListener("click", () => this.onSelect(summary.id));
      item.append(button);
      this.list.append(item);
      this.items.set(summary.id, item);
    }
    item.firstChild.textContent = summary.labelMinor ? `${summary.label} (${summary.labelMinor})` : summary.label;
  }

  /** Draws only the nodes whose summaries `matches`. */
  setFilter(matches) {
    this.filter = matches;
    this.sigma.refresh({ skipIndexation: true });
  }

  /** The summaries of the nodes the search leaves. */
  visible() {
    return [...this.summaries.values()].filter(this.filter);
  }

  /** Fades all but `node` and its neighbours, or nothing when `node` is null. */
  highlight(node) {
    this.highlighted = node === null ? null : new Set([node, ...this.graph.neighbors(node)]);
    this.sigma.refresh({ skipIndexation: true });
  }

  /** Stops drawing; the view is being replaced. */
  kill() {
    this.sigma.kill();
    this.list.replaceChildren();
  }
}
