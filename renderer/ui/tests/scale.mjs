// The web UI at scale in Debian's Chromium, driven by Playwright: opens the page on a large
// view (served by benches/src/ui.rs), waits until every node is in the graph and drawn, then
// pans by dragging the graph with the mouse. Times are taken in the page (performance.now(),
// from the navigation's start; one requestAnimationFrame callback per frame).
//
//   node scale.mjs <base URL> <nodes expected> <screenshot file, or -> <drag steps>
//
// Prints one line of key=value figures, or "error: ..." and exits 1:
//   nodes, edges          what the graph holds once drawn
//   offered               1 if the page offers the view's coarser one, else 0
//   first_message_ms      the websocket's first message (the whole view) arrived
//   first_draw_ms         the first frame after every node was added had begun: sigma drew them
//   frames, pan_ms        frames while the mouse dragged the graph, and how long that took
//   frame_median_ms, frame_p95_ms   time between those frames
//   renders, render_median_ms       sigma's redraws while panning, and what one took

import { chromium } from "playwright-core";

const [base, expected, screenshot, steps] = process.argv.slice(2);
const origin = new URL(base).origin;
const LIMIT = 180_000;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const problems = [];
  page.on("pageerror", (error) => problems.push(error.message));
  await page.addInitScript((count) => {
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        // Before the page's own listener, which parses the message and draws it.
        this.addEventListener("message", () => {
          window.firstMessage ??= performance.now();
        });
      }
    };
    const tick = () => {
      if ((window.scopeGraph?.graph.order ?? 0) < count) {
        requestAnimationFrame(tick);
        return;
      }
      // Sigma draws in a frame's callbacks after the graph changed; the next frame begins
      // once that one is done.
      requestAnimationFrame(() => {
        window.firstDraw = performance.now();
      });
    };
    requestAnimationFrame(tick);
  }, Number(expected));
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => window.firstDraw !== undefined, null, { timeout: LIMIT });
  const drawn = await page.evaluate(() => ({
    nodes: window.scopeGraph.graph.order,
    edges: window.scopeGraph.graph.size,
    first_message_ms: window.firstMessage,
    first_draw_ms: window.firstDraw,
    offered: document.getElementById("group").hidden ? 0 : 1,
  }));
  if (screenshot !== "-") await page.screenshot({ path: screenshot });

  // A drag around a circle: every frame has the camera somewhere new.
  const box = await page.locator("#graph").boundingBox();
  const centre = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  await page.evaluate(() => {
    const sigma = window.scopeGraph.sigma;
    window.pan = { frames: [], renders: [], recording: true };
    let began = 0;
    sigma.on("beforeRender", () => {
      began = performance.now();
    });
    sigma.on("afterRender", () => {
      if (window.pan.recording) window.pan.renders.push(performance.now() - began);
    });
    const frame = (time) => {
      window.pan.frames.push(time);
      if (window.pan.recording) requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  });
  await page.mouse.move(centre.x + 200, centre.y);
  await page.mouse.down();
  const count = Number(steps);
  for (let step = 1; step <= count; step++) {
    const angle = (2 * Math.PI * step) / count;
    await page.mouse.move(centre.x + 200 * Math.cos(angle), centre.y + 200 * Math.sin(angle));
  }
  await page.mouse.up();
  const pan = await page.evaluate(() => {
    window.pan.recording = false;
    return window.pan;
  });
  const gaps = pan.frames.slice(1).map((time, i) => time - pan.frames[i]);
  const figures = {
    ...drawn,
    frames: gaps.length,
    pan_ms: pan.frames.at(-1) - pan.frames[0],
    frame_median_ms: quantile(gaps, 0.5),
    frame_p95_ms: quantile(gaps, 0.95),
    renders: pan.renders.length,
    render_median_ms: quantile(pan.renders, 0.5),
  };
  if (problems.length) throw new Error(problems.join(" | "));
  console.log(
    Object.entries(figures)
      .map(([key, value]) => `${key}=${Number.isInteger(value) ? value : value.toFixed(1)}`)
      .join(" "),
  );
} catch (error) {
  console.log(`error: ${error.message.replaceAll("\n", " | ")}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

function quantile(values, q) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
