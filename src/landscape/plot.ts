/**
 * Self-contained SVG plots of loss slices, written here rather than with a plotting library: the
 * command line runs in Deno without a DOM, the plots are two fixed shapes, and plain SVG text keeps
 * the output byte-for-byte reproducible and dependency-free.
 *   - lineSvg: a 1-D slice as a line plot (plus the T_alpha orbit, dashed, when given);
 *   - contourSvg: a 2-D slice as a heat map (viridis) with contour lines by marching squares
 *     (saddles resolved by the cell's mean) and a colour bar; a log10 colour scale is used when
 *     the values span more than two decades (edges of a landscape often explode).
 */
import { escapeXml, formatNumber } from "../format.ts";
import type { LandscapeSlice } from "./slice.ts";

export interface PlotLabels {
  title: string;
  /** Axis names, e.g. "a (filter-normalized random direction 1)". */
  x: string;
  y?: string;
}

const W = 720;
const H = 480;
const M = { left: 78, right: 30, top: 46, bottom: 62 };

/** A tick label: 4 significant digits, or 3 in exponent form outside [1e-3, 1e4). */
function fmt(x: number): string {
  return formatNumber(x, { expDigits: 3, large: 1e4 });
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return ticks;
}

function svgOpen(title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
  ];
}

/** A 1-D slice: loss against a, the orbit dashed when present, the center marked. */
export function lineSvg(slice: LandscapeSlice, labels: PlotLabels): string {
  const a = slice.a;
  const series: { name: string; values: number[]; dash: string; color: string }[] = [
    { name: slice.orbitValues ? "L(θ + a·d), straight line along the tangent" : "L(θ + a·d)", values: slice.values, dash: "", color: "#1f77b4" },
  ];
  if (slice.orbitValues) series.push({ name: "L(T_α(a) θ), along the T_α orbit", values: slice.orbitValues, dash: "6 4", color: "#d62728" });
  // The legend sits between the title and the plot area.
  const top = M.top + 18 * series.length;
  const pw = W - M.left - M.right;
  const ph = H - top - M.bottom;
  const all = series.flatMap((s) => s.values);
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (hi - lo < 1e-12 * Math.max(1, Math.abs(hi))) {
    const pad = Math.max(1e-6, Math.abs(hi) * 1e-3);
    lo -= pad;
    hi += pad;
  }
  const margin = 0.05 * (hi - lo);
  lo -= margin;
  hi += margin;
  const yTicks = niceTicks(lo, hi);
  const x = (v: number) => M.left + ((v - a[0]) / (a[a.length - 1] - a[0])) * pw;
  const y = (v: number) => top + (1 - (v - lo) / (hi - lo)) * ph;
  const out = svgOpen(labels.title);
  out.push(`<g stroke="#ddd">`);
  for (const t of yTicks) out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y(t).toFixed(2)}" y2="${y(t).toFixed(2)}"/>`);
  out.push(`</g>`);
  out.push(`<rect x="${M.left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="black"/>`);
  for (const t of yTicks) out.push(`<text x="${M.left - 6}" y="${(y(t) + 4).toFixed(2)}" text-anchor="end">${fmt(t)}</text>`);
  for (const t of niceTicks(a[0], a[a.length - 1])) {
    out.push(`<line x1="${x(t).toFixed(2)}" x2="${x(t).toFixed(2)}" y1="${top + ph}" y2="${top + ph + 5}" stroke="black"/>`);
    out.push(`<text x="${x(t).toFixed(2)}" y="${top + ph + 19}" text-anchor="middle">${fmt(t)}</text>`);
  }
  if (a[0] <= 0 && a[a.length - 1] >= 0) {
    out.push(`<line x1="${x(0).toFixed(2)}" x2="${x(0).toFixed(2)}" y1="${top}" y2="${top + ph}" stroke="#888" stroke-dasharray="2 3"/>`);
  }
  for (const s of series) {
    const pts = s.values.map((v, i) => `${x(a[i]).toFixed(2)},${y(v).toFixed(2)}`).join(" ");
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""} points="${pts}"/>`);
  }
  series.forEach((s, i) => {
    const ly = M.top + 4 + 18 * i;
    out.push(`<line x1="${M.left + 12}" x2="${M.left + 42}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`);
    out.push(`<text x="${M.left + 48}" y="${ly + 4}">${escapeXml(s.name)}</text>`);
  });
  out.push(`<text x="${M.left + pw / 2}" y="${H - 18}" text-anchor="middle">${escapeXml(labels.x)}</text>`);
  out.push(`<text transform="translate(20 ${top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeXml(labels.y ?? "loss")}</text>`);
  out.push("</svg>");
  return out.join("\n") + "\n";
}

// Viridis, 9 stops (matplotlib's colormap sampled at 0, 1/8, ..., 1).
const VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"];

/** The viridis colour at u in [0, 1]. */
export function viridis(u: number): string {
  const t = Math.min(1, Math.max(0, Number.isFinite(u) ? u : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(t));
  const f = t - i;
  const c = (hex: string, k: number) => parseInt(hex.slice(1 + 2 * k, 3 + 2 * k), 16);
  const rgb = [0, 1, 2].map((k) => Math.round(c(VIRIDIS[i], k) * (1 - f) + c(VIRIDIS[i + 1], k) * f));
  return `#${rgb.map((v) => v.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Contour segments of `level` on a grid of values [ny][nx] (row-major), by marching squares, in
 * grid coordinates (i along x, j along y).
 */
export function contourSegments(values: number[], nx: number, ny: number, level: number): [number, number, number, number][] {
  const v = (i: number, j: number) => values[j * nx + i];
  const segs: [number, number, number, number][] = [];
  const lerp = (p: number, q: number) => (level - p) / (q - p);
  for (let j = 0; j + 1 < ny; j++) {
    for (let i = 0; i + 1 < nx; i++) {
      const c = [v(i, j), v(i + 1, j), v(i + 1, j + 1), v(i, j + 1)]; // corners counter-clockwise from (i, j)
      const above = c.map((x) => x > level);
      const idx = (above[0] ? 1 : 0) | (above[1] ? 2 : 0) | (above[2] ? 4 : 0) | (above[3] ? 8 : 0);
      if (idx === 0 || idx === 15) continue;
      // Crossing points on the four edges: bottom (0-1), right (1-2), top (2-3), left (3-0).
      const e: ([number, number] | null)[] = [
        above[0] !== above[1] ? [i + lerp(c[0], c[1]), j] : null,
        above[1] !== above[2] ? [i + 1, j + lerp(c[1], c[2])] : null,
        above[2] !== above[3] ? [i + 1 - lerp(c[2], c[3]), j + 1] : null,
        above[3] !== above[0] ? [i, j + 1 - lerp(c[3], c[0])] : null,
      ];
      const present = [0, 1, 2, 3].filter((k) => e[k]);
      if (present.length === 2) {
        const [p, q] = present.map((k) => e[k]!);
        segs.push([p[0], p[1], q[0], q[1]]);
      } else if (present.length === 4) {
        // Saddle: the cell's mean decides which corners connect.
        const centerAbove = (c[0] + c[1] + c[2] + c[3]) / 4 > level;
        const pairs = centerAbove === above[0] ? [[0, 3], [1, 2]] : [[0, 1], [2, 3]];
        for (const [p, q] of pairs) segs.push([e[p]![0], e[p]![1], e[q]![0], e[q]![1]]);
      }
    }
  }
  return segs;
}

/** A 2-D slice: heat map, contour lines, colour bar, the center marked. */
export function contourSvg(slice: LandscapeSlice, labels: PlotLabels, levels = 12): string {
  const a = slice.a;
  const b = slice.b!;
  const nx = a.length;
  const ny = b.length;
  const barW = 18;
  const pw = W - M.left - M.right - barW - 60;
  const ph = H - M.top - M.bottom;
  const finite = slice.values.filter(Number.isFinite);
  const vmin = Math.min(...finite);
  const vmax = Math.max(...finite);
  const log = vmin > 0 && vmax / vmin > 100;
  const f = (v: number) => (log ? Math.log10(v) : v);
  const lo = f(vmin);
  const hi = f(vmax) > lo ? f(vmax) : lo + 1e-12;
  const u = (v: number) => (f(v) - lo) / (hi - lo);
  const cw = pw / nx;
  const ch = ph / ny;
  // Grid point i sits at the centre of cell i; x(a) is linear in a.
  const gx = (i: number) => M.left + (i + 0.5) * cw;
  const gy = (j: number) => M.top + ph - (j + 0.5) * ch;
  const xOf = (t: number) => gx(((t - a[0]) / (a[nx - 1] - a[0])) * (nx - 1));
  const yOf = (t: number) => gy(((t - b[0]) / (b[ny - 1] - b[0])) * (ny - 1));
  const out = svgOpen(labels.title);
  out.push(`<g shape-rendering="crispEdges">`);
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++) {
      const v = slice.values[j * nx + i];
      out.push(`<rect x="${(M.left + i * cw).toFixed(2)}" y="${(M.top + ph - (j + 1) * ch).toFixed(2)}" width="${(cw + 0.5).toFixed(2)}" height="${(ch + 0.5).toFixed(2)}" fill="${viridis(u(v))}"/>`);
    }
  }
  out.push(`</g>`);
  // Contours at evenly spaced levels of the colour scale.
  out.push(`<g fill="none" stroke="white" stroke-width="1" stroke-opacity="0.8">`);
  const fv = slice.values.map(f);
  for (let l = 1; l < levels; l++) {
    const level = lo + ((hi - lo) * l) / levels;
    const segs = contourSegments(fv, nx, ny, level);
    if (!segs.length) continue;
    const d = segs.map(([x1, y1, x2, y2]) => `M${gx(x1).toFixed(2)} ${gy(y1).toFixed(2)}L${gx(x2).toFixed(2)} ${gy(y2).toFixed(2)}`).join("");
    out.push(`<path d="${d}"/>`);
  }
  out.push(`</g>`);
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="black"/>`);
  if (a[0] <= 0 && a[nx - 1] >= 0 && b[0] <= 0 && b[ny - 1] >= 0) {
    const cx = xOf(0);
    const cy = yOf(0);
    out.push(`<path d="M${(cx - 6).toFixed(2)} ${cy.toFixed(2)}h12M${cx.toFixed(2)} ${(cy - 6).toFixed(2)}v12" stroke="#ff4040" stroke-width="2"/>`);
  }
  for (const t of niceTicks(a[0], a[nx - 1])) {
    out.push(`<line x1="${xOf(t).toFixed(2)}" x2="${xOf(t).toFixed(2)}" y1="${M.top + ph}" y2="${M.top + ph + 5}" stroke="black"/>`);
    out.push(`<text x="${xOf(t).toFixed(2)}" y="${M.top + ph + 19}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of niceTicks(b[0], b[ny - 1])) {
    out.push(`<line x1="${M.left - 5}" x2="${M.left}" y1="${yOf(t).toFixed(2)}" y2="${yOf(t).toFixed(2)}" stroke="black"/>`);
    out.push(`<text x="${M.left - 8}" y="${(yOf(t) + 4).toFixed(2)}" text-anchor="end">${fmt(t)}</text>`);
  }
  out.push(`<text x="${M.left + pw / 2}" y="${H - 18}" text-anchor="middle">${escapeXml(labels.x)}</text>`);
  out.push(`<text transform="translate(20 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeXml(labels.y ?? "b")}</text>`);
  // Colour bar.
  const bx = M.left + pw + 24;
  const steps = 64;
  for (let s = 0; s < steps; s++) {
    out.push(`<rect x="${bx}" y="${(M.top + ph - ((s + 1) * ph) / steps).toFixed(2)}" width="${barW}" height="${(ph / steps + 0.5).toFixed(2)}" fill="${viridis((s + 0.5) / steps)}"/>`);
  }
  out.push(`<rect x="${bx}" y="${M.top}" width="${barW}" height="${ph}" fill="none" stroke="black"/>`);
  for (const t of niceTicks(lo, hi, 5)) {
    if (t < lo || t > hi) continue;
    const ty = M.top + ph - ((t - lo) / (hi - lo)) * ph;
    out.push(`<text x="${bx + barW + 4}" y="${(ty + 4).toFixed(2)}">${fmt(log ? 10 ** t : t)}</text>`);
  }
  out.push(`<text x="${bx + barW / 2}" y="${M.top - 8}" text-anchor="middle">${log ? "loss (log)" : "loss"}</text>`);
  out.push("</svg>");
  return out.join("\n") + "\n";
}
