/**
 * The audit as people read it: a text table (one block per transform: the function check, then
 * each metric before, after, ratio and verdict) and an SVG heat map of log10(after / before), one
 * column per transform and one row per metric, invariant cells marked, so which measures move under
 * which transform is visible at a glance.
 */
import { escapeXml, formatNumber, table, TEXT_FORMAT } from "../format.ts";
import type { AuditReport } from "./audit.ts";

const f = (x: number | null) => (x === null ? "-" : formatNumber(x, TEXT_FORMAT));

/** The audit as a text table: per transform, the function check, then each metric's before, after, ratio and verdict. */
export function formatAudit(report: AuditReport): string {
  const lines = [
    `invariance audit: ${report.parameters} parameters, ${report.samples} samples, loss ${report.loss}, ` +
    `strength a = ${report.factor}, tolerance ${report.tolerance}, seed ${report.seed}`,
    `loss ${f(report.base.loss)}   gradient norm ${f(report.base.gradientNorm)}`,
  ];
  for (const t of report.transforms) {
    lines.push("", `${t.transform}: ${t.description}`);
    if (t.skipped) {
      lines.push("  skipped");
      continue;
    }
    const fc = t.functionCheck!;
    lines.push(
      `  function check: max |f_after - f_before| = ${f(fc.maxOutputDifference)} (${f(fc.relativeOutputDifference)} relative), ` +
        `loss ${f(fc.lossBefore)} -> ${f(fc.lossAfter)}`,
    );
    const names = t.metrics.map((m) => m.label);
    const width = Math.max(6, ...names.map((n) => n.length));
    lines.push(
      table(
        ["metric".padEnd(width), "before", "after", "ratio", "verdict"],
        t.metrics.map((m) => [m.label.padEnd(width), f(m.before), f(m.after), f(m.ratio), m.verdict]),
      ).replace(/^/gm, "  "),
    );
  }
  return lines.join("\n");
}

/** log10(ratio) mapped to a diverging colour: blue (smaller) - white (unchanged) - red (larger). */
function colour(logRatio: number): string {
  const t = Math.max(-1, Math.min(1, logRatio / 2)); // saturates at a factor of 100
  const mix = (a: number, b: number, u: number) => Math.round(a + (b - a) * u);
  return t >= 0 ? `rgb(${mix(255, 214, t)},${mix(255, 39, t)},${mix(255, 40, t)})` : `rgb(${mix(255, 33, -t)},${mix(255, 102, -t)},${mix(255, 172, -t)})`;
}

/** A self-contained SVG heat map of log10(after / before): rows are metrics, columns transforms. */
export function auditSvg(report: AuditReport): string {
  const transforms = report.transforms.filter((t) => !t.skipped);
  const metrics = [...new Map(transforms.flatMap((t) => t.metrics.map((m) => [m.metric, m.label]))).entries()];
  const cellW = 120;
  const cellH = 28;
  const left = 290;
  const top = 90;
  const width = left + cellW * transforms.length + 20;
  const height = top + cellH * metrics.length + 60;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">Invariance audit: log10(after / before) per metric and transform</text>`,
    `<text x="10" y="42" fill="#555">${escapeXml(`${report.parameters} parameters, ${report.samples} samples, a = ${report.factor}; ✓ invariant within ${report.tolerance} relative; ~ within noise; red grew, blue shrank`)}</text>`,
  ];
  transforms.forEach((t, j) => {
    parts.push(`<text x="${left + j * cellW + cellW / 2}" y="${top - 10}" text-anchor="middle" font-weight="bold">${escapeXml(t.transform)}</text>`);
  });
  metrics.forEach(([metric, label], i) => {
    const y = top + i * cellH;
    parts.push(`<text x="${left - 8}" y="${y + cellH / 2 + 4}" text-anchor="end">${escapeXml(label)}</text>`);
    transforms.forEach((t, j) => {
      const m = t.metrics.find((r) => r.metric === metric);
      const x = left + j * cellW;
      const applicable = m && m.verdict !== "n/a" && m.ratio !== null && m.ratio > 0 && Number.isFinite(m.ratio);
      const lr = applicable ? Math.log10(m!.ratio!) : 0;
      parts.push(`<rect x="${x}" y="${y}" width="${cellW - 2}" height="${cellH - 2}" fill="${applicable ? colour(lr) : "#eee"}" stroke="#ccc"/>`);
      const text = !m || m.verdict === "n/a" ? "n/a" : m.ratio === null || !Number.isFinite(m.ratio) || m.ratio <= 0 ? `${m.verdict}` : `${m.verdict === "invariant" ? "✓ " : m.verdict === "within noise" ? "~ " : ""}${lr >= 0 ? "+" : ""}${lr.toFixed(2)}`;
      parts.push(`<text x="${x + cellW / 2}" y="${y + cellH / 2 + 4}" text-anchor="middle">${escapeXml(text)}</text>`);
    });
  });
  parts.push("</svg>");
  return parts.join("\n");
}
