/// <reference lib="dom" />
/**
 * The contour view of a 2-D loss slice, drawn by uPlot (axes, ticks, labels, resizing): the grid
 * values as a viridis heat map (one cell per grid point) with contour lines by marching squares
 * (contourSegments of src/landscape/plot.ts, the same levels as `flatness landscape --plot`) and
 * theta marked, painted in uPlot's draw hook in the plot's own coordinates; a readout gives the
 * grid value under the cursor. Also the colour bar shared with the 3-D view.
 */
import uPlot from "uplot";
import { contourSegments } from "../../src/landscape/plot.ts";
import { el } from "../shared/dom.ts";
import { formatNumber } from "../shared/format.ts";
import { injectPlotCss } from "../shared/plots.ts";
import { type HeightScale, viridisRgb } from "./surface.ts";


const css = (rgb: number[]) => `rgb(${rgb.map((v) => Math.round(v * 255)).join(",")})`;
const LEVELS = 12;

export interface ContourLabels {
  title: string;
  x: string;
  y: string;
}

interface Grid {
  a: number[];
  b: number[];
  values: number[];
  scale: HeightScale;
}

export class ContourView {
  readonly element: HTMLElement;
  private chart: uPlot | null = null;
  private grid: Grid | null = null;
  private readonly readout: HTMLElement;
  private readonly observer: ResizeObserver;

  constructor(private readonly host: HTMLElement) {
    injectPlotCss();
    this.element = el("div", { class: "plot contour" });
    this.readout = el("div", { class: "hint readout" }, "Move the cursor over the map to read L(θ + a·d₁ + b·d₂).");
    host.append(this.element, this.readout);
    this.observer = new ResizeObserver(() => {
      if (!this.chart) return;
      const { width, height } = this.size();
      if (Math.abs(width - this.chart.width) > 2) this.chart.setSize({ width, height });
    });
    this.observer.observe(this.element);
  }

  private size() {
    const width = Math.max(260, Math.floor(this.element.clientWidth || this.host.clientWidth || 480));
    return { width, height: Math.min(440, Math.max(260, Math.round(width * 0.8))) };
  }

  set(a: number[], b: number[], values: number[], scale: HeightScale, labels: ContourLabels): void {
    this.grid = { a, b, values, scale };
    const da = (a[a.length - 1] - a[0]) / (a.length - 1);
    const db = (b[b.length - 1] - b[0]) / (b.length - 1);
    // Half a cell of margin so every grid point's cell is whole.
    const xr: [number, number] = [a[0] - da / 2, a[a.length - 1] + da / 2];
    const yr: [number, number] = [b[0] - db / 2, b[b.length - 1] + db / 2];
    const tick = (_u: uPlot, vals: number[]) => vals.map((v) => formatNumber(v, 3));
    const font = "12px system-ui, sans-serif";
    const labelFont = "bold 13px system-ui, sans-serif";
    const opts: uPlot.Options = {
      title: labels.title,
      ...this.size(),
      scales: { x: { time: false, range: () => xr }, y: { range: () => yr } },
      axes: [
        { label: labels.x, values: tick, grid: { show: false }, font, labelFont, labelSize: 24 },
        { label: labels.y, values: tick, grid: { show: false }, font, labelFont, labelSize: 24, size: 56 },
      ],
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      series: [{}, { label: "b", stroke: "transparent", points: { show: false } }],
      hooks: {
        draw: [(u) => this.paint(u)],
        setCursor: [(u) => this.showValue(u)],
      },
    };
    this.chart?.destroy();
    this.chart = new uPlot(opts, [a, a.map(() => null)], this.element);
  }

  private paint(u: uPlot): void {
    const g = this.grid;
    if (!g) return;
    const { a, b, values, scale } = g;
    const nx = a.length;
    const ny = b.length;
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const X = (v: number) => u.valToPos(v, "x", true);
    const Y = (v: number) => u.valToPos(v, "y", true);
    const da = (a[nx - 1] - a[0]) / (nx - 1);
    const db = (b[ny - 1] - b[0]) / (ny - 1);
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    for (let j = 0; j < ny; j++) {
      const y0 = Y(b[j] - db / 2);
      const y1 = Y(b[j] + db / 2);
      for (let i = 0; i < nx; i++) {
        const x0 = X(a[i] - da / 2);
        const x1 = X(a[i] + da / 2);
        ctx.fillStyle = css(viridisRgb(scale.unit(values[j * nx + i])));
        // Half a pixel of overlap hides seams between cells.
        ctx.fillRect(x0, y1, x1 - x0 + 0.5, y0 - y1 + 0.5);
      }
    }
    // Contours on the colour scale's evenly spaced levels (log10 values when the scale is log).
    const fv = values.map((v) => (scale.log ? Math.log10(v) : v));
    ctx.strokeStyle = "rgba(255,255,255,0.85)";
    ctx.lineWidth = Math.max(1, devicePixelRatio);
    ctx.beginPath();
    for (let l = 1; l < LEVELS; l++) {
      const level = scale.lo + ((scale.hi - scale.lo) * l) / LEVELS;
      for (const [i1, j1, i2, j2] of contourSegments(fv, nx, ny, level)) {
        ctx.moveTo(X(a[0] + i1 * da), Y(b[0] + j1 * db));
        ctx.lineTo(X(a[0] + i2 * da), Y(b[0] + j2 * db));
      }
    }
    ctx.stroke();
    // theta itself.
    if (a[0] <= 0 && a[nx - 1] >= 0 && b[0] <= 0 && b[ny - 1] >= 0) {
      const cx = X(0);
      const cy = Y(0);
      const r = 7 * devicePixelRatio;
      ctx.strokeStyle = "#ff3030";
      ctx.lineWidth = 2.5 * devicePixelRatio;
      ctx.beginPath();
      ctx.moveTo(cx - r, cy);
      ctx.lineTo(cx + r, cy);
      ctx.moveTo(cx, cy - r);
      ctx.lineTo(cx, cy + r);
      ctx.stroke();
    }
    ctx.restore();
  }

  private showValue(u: uPlot): void {
    const g = this.grid;
    const { left, top } = u.cursor;
    if (!g || left === undefined || top === undefined || left < 0 || top < 0) return;
    const av = u.posToVal(left, "x");
    const bv = u.posToVal(top, "y");
    const nearest = (axis: number[], v: number) => {
      const i = Math.round(((v - axis[0]) / (axis[axis.length - 1] - axis[0])) * (axis.length - 1));
      return Math.min(axis.length - 1, Math.max(0, i));
    };
    const i = nearest(g.a, av);
    const j = nearest(g.b, bv);
    this.readout.textContent = `grid point a = ${formatNumber(g.a[i])}, b = ${formatNumber(g.b[j])}:  L = ${formatNumber(g.values[j * g.a.length + i], 6)}`;
  }

  destroy(): void {
    this.observer.disconnect();
    this.chart?.destroy();
    this.element.remove();
    this.readout.remove();
  }
}

/** A horizontal colour bar for `scale` with a few tick values (log ticks at decades when log). */
export function colorBar(host: HTMLElement, scale: HeightScale, label: string): void {
  const stops = Array.from({ length: 17 }, (_, k) => `${css(viridisRgb(k / 16))} ${(100 * k) / 16}%`).join(", ");
  const bar = el("div", { class: "colorbar-strip", style: `background: linear-gradient(to right, ${stops})` });
  const ticks = el("div", { class: "colorbar-ticks" });
  const count = 5;
  for (let k = 0; k < count; k++) {
    const t = scale.lo + ((scale.hi - scale.lo) * k) / (count - 1);
    const span = el("span", { style: `left: ${(100 * k) / (count - 1)}%` }, formatNumber(scale.log ? 10 ** t : t, 3));
    ticks.append(span);
  }
  host.replaceChildren(el("div", { class: "colorbar-label" }, `${label}${scale.log ? " (log scale)" : ""}`), bar, ticks);
}
