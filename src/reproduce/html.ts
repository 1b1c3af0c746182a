/**
 * The `flatness reproduce` report as one self-contained HTML page: inline CSS, inline SVG plots,
 * no scripts and no external requests, so it opens offline, can be mailed or archived as one file,
 * and prints (each claim starts on a fresh block, figures are not split across pages).
 *
 * Layout: a header (tool, version, date, adapter, quick or full run, seed, total time, "N of M
 * claims pass; K of L negative controls fail as they must"), a summary table linking to one section
 * per claim, each with its measured and expected text, its error if any, its negative controls (what
 * each breaks, the claim's verdict with it, what was measured), its plots and its details as a
 * compact key/value table.
 */
import { escapeXml, formatDuration, formatNumber as format, REPORT_FORMAT } from "../format.ts";
import { type PlotSpec, svgPlot } from "./svgPlot.ts";

export type { PlotSeries, PlotSpec } from "./svgPlot.ts";

/** The outcome of checking one claim of the paper. */
export interface ClaimRecord {
  /** The claim's number (1-based, its position in CLAIMS). */
  id: number;
  /** The claim, in one sentence. */
  claim: string;
  /** What was measured, as text. */
  measured: string;
  /** What the paper predicts, as text. */
  expected: string;
  /** Whether the measurement agrees with the prediction. */
  pass: boolean;
  /** Wall-clock time of the check in milliseconds. */
  wallMs: number;
  /** Numbers behind the verdict, shown as a key/value table. */
  details?: Record<string, unknown>;
  /** Plots of the claim. */
  plots?: PlotSpec[];
  /** The error the check threw ("Name: message"), when it failed to run. */
  error?: string;
  /** Its negative controls, each run (the claim with one ingredient broken must FAIL). */
  controls?: ControlRecord[];
}

/** One negative control of a claim, run: the claim's check with one ingredient deliberately broken. */
export interface ControlRecord {
  /** The control's id (ReproduceContext.control). */
  id: string;
  /** The broken ingredient, in one sentence. */
  breaks: string;
  /** What the claim measured with it broken. */
  measured: string;
  /** The claim's verdict with it broken (false: it failed, as it must). */
  pass: boolean;
  /** Whether the control holds: the claim failed by measurement (not by an error, not by passing). */
  holds: boolean;
  /** Wall-clock time in milliseconds. */
  wallMs: number;
  /** The error the broken claim threw, if any (a control that throws does not hold). */
  error?: string;
}

/** Whether a claim record stands: the claim passes and it has negative controls, every one of which holds. */
export function claimStands(c: ClaimRecord): boolean {
  return c.pass && (c.controls?.length ?? 0) > 0 && c.controls!.every((x) => x.holds);
}

/** A whole `flatness reproduce` run. */
export interface ReproduceRecord {
  /** The tool's name ("flatness"). */
  tool: string;
  /** The tool's version. */
  version: string;
  /** When the run was made (ISO 8601). */
  date: string;
  /** The backend's description (the GPU adapter, or the float64 CPU engine). */
  adapter: string;
  /** Whether it was a quick run (smaller problems and fewer samples). */
  quick: boolean;
  /** The seed of every claim's problems. */
  seed: number;
  /** Wall-clock time of the whole run in milliseconds. */
  wallMs: number;
  /** One record per claim checked, in order. */
  claims: ClaimRecord[];
}

/** A number to 4 significant digits (integers exact below 10^15; exponent form when tiny or huge): {@link REPORT_FORMAT}. */
export function formatNumber(v: number): string {
  return format(v, REPORT_FORMAT);
}

/** Long arrays in details are shortened to their first entries and a count. */
const ARRAY_LIMIT = 12;

/** A detail value made compact for JSON: numbers to 4 digits, non-finite numbers as strings, long arrays cut. */
function compact(v: unknown, depth = 0): unknown {
  if (typeof v === "number") return Number.isFinite(v) ? Number(formatNumber(v)) : formatNumber(v);
  if (typeof v === "bigint") return v.toString();
  if (v === undefined) return null;
  if (typeof v !== "object" || v === null) return v;
  if (depth > 6) return "…";
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return compact(Array.from(v as unknown as ArrayLike<number>), depth);
  if (Array.isArray(v)) {
    const head = v.slice(0, ARRAY_LIMIT).map((x) => compact(x, depth + 1));
    return v.length > ARRAY_LIMIT ? [...head, `… ${v.length - ARRAY_LIMIT} more`] : head;
  }
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, compact(x, depth + 1)]));
}

/** JSON with a space after each comma and colon, for reading rather than parsing. */
function toJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(toJson).join(", ")}]`;
  if (v !== null && typeof v === "object") {
    return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${JSON.stringify(k)}: ${toJson(x)}`).join(", ")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/** One detail value as HTML: numbers formatted, strings as text, everything else as compact JSON. */
function detailValue(v: unknown): string {
  if (typeof v === "number") return `<span class="num">${escapeXml(formatNumber(v))}</span>`;
  if (typeof v === "string") return escapeXml(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (v === null || v === undefined) return `<span class="muted">–</span>`;
  return `<code>${escapeXml(toJson(compact(v)))}</code>`;
}

function detailsTable(details: Record<string, unknown>): string {
  const rows = Object.entries(details).map(([k, v]) => `<tr><th scope="row">${escapeXml(k)}</th><td>${detailValue(v)}</td></tr>`);
  if (rows.length === 0) return "";
  return `<details open><summary>Details</summary><table class="kv"><tbody>\n${rows.join("\n")}\n</tbody></table></details>`;
}

function badge(pass: boolean): string {
  return pass ? `<span class="badge pass">PASS</span>` : `<span class="badge fail">FAIL</span>`;
}

/** Anchor id of a claim's section. */
function claimAnchor(id: number): string {
  return `claim-${String(id).replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

function figure(plot: PlotSpec): string {
  const id = `plot-${String(plot.id).replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const caption = plot.caption ? `<figcaption>${escapeXml(plot.caption)}</figcaption>` : "";
  return `<figure id="${escapeXml(id)}">\n${svgPlot(plot)}\n${caption}</figure>`;
}

/** "2 of 2 fail" for the summary table. */
function controlsSummary(c: ClaimRecord): string {
  const list = c.controls ?? [];
  if (list.length === 0) return "none";
  return `${list.filter((x) => x.holds).length} of ${list.length} fail`;
}

/** The negative controls of a claim: what each breaks, the claim's verdict with it, and what it measured. */
function controlsTable(c: ClaimRecord): string {
  const list = c.controls ?? [];
  if (list.length === 0) return `<p class="controls-none"><strong>Negative controls:</strong> none (a claim without one cannot show it is able to fail)</p>`;
  const rows = list.map((x) =>
    `<tr class="${x.holds ? "holds" : "broken"}"><td><code>${escapeXml(x.id)}</code></td><td>${escapeXml(x.breaks)}</td>` +
    `<td>${badge(x.pass)}</td><td>${x.holds ? `<span class="badge pass">HOLDS</span>` : `<span class="badge fail">DOES NOT HOLD</span>`}</td>` +
    `<td>${escapeXml(x.error ?? x.measured)}</td><td class="time">${escapeXml(formatDuration(x.wallMs))}</td></tr>`
  );
  return [
    `<div class="controls"><p><strong>Negative controls</strong>: the same check with one ingredient broken must FAIL.</p>`,
    `<table class="controls-table"><thead><tr><th>Control</th><th>Broken ingredient</th><th>Verdict</th><th>Control</th><th>Measured with it broken</th><th>Time</th></tr></thead><tbody>`,
    ...rows,
    `</tbody></table></div>`,
  ].join("\n");
}

function claimSection(c: ClaimRecord): string {
  const parts = [
    `<section class="claim ${c.pass ? "pass" : "fail"}" id="${claimAnchor(c.id)}">`,
    `<h2><span class="claim-id">Claim ${escapeXml(String(c.id))}</span> ${badge(c.pass)} <span class="time">${escapeXml(formatDuration(c.wallMs))}</span></h2>`,
    `<p class="claim-text">${escapeXml(c.claim)}</p>`,
    `<dl class="me"><dt>Measured</dt><dd>${escapeXml(c.measured)}</dd><dt>Expected</dt><dd>${escapeXml(c.expected)}</dd></dl>`,
  ];
  if (c.error) parts.push(`<div class="error"><strong>Error</strong><pre>${escapeXml(c.error)}</pre></div>`);
  parts.push(controlsTable(c));
  if (c.plots?.length) parts.push(`<div class="plots">`, ...c.plots.map(figure), `</div>`);
  if (c.details) parts.push(detailsTable(c.details));
  parts.push(`</section>`);
  return parts.join("\n");
}

const CSS = `
:root { --pass: #1a7f37; --pass-bg: #dafbe1; --fail: #b42318; --fail-bg: #fee4e2; --muted: #5f6368; --rule: #d8dadf; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1d1f23; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; min-height: 100vh; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 0 0 8px; display: flex; align-items: center; gap: 10px; flex-wrap: wrap; }
.subtitle { color: var(--muted); margin: 0 0 16px; }
.meta { display: flex; flex-wrap: wrap; gap: 8px 36px; margin: 0 0 16px; padding: 12px 16px; background: #f3f4f6; border-radius: 8px; }
.meta div { min-width: 0; }
.meta dt { font-size: 0.75em; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted); }
.meta dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
.verdict { font-size: 1.15em; font-weight: 700; padding: 8px 14px; border-radius: 8px; display: inline-block; margin: 0 0 20px; }
.verdict.pass { color: var(--pass); background: var(--pass-bg); }
.verdict.fail { color: var(--fail); background: var(--fail-bg); }
table { border-collapse: collapse; width: 100%; }
.summary { margin: 0 0 28px; font-size: 0.93em; }
.summary th, .summary td { text-align: left; vertical-align: top; padding: 7px 10px; border-bottom: 1px solid var(--rule); }
.summary thead th { background: #f3f4f6; border-bottom: 2px solid #c4c7cc; font-size: 0.85em; text-transform: uppercase; letter-spacing: 0.03em; color: #44474d; }
.summary td.id { font-weight: 700; white-space: nowrap; }
.summary td.result, .summary td.time { white-space: nowrap; }
.summary tr.fail td { background: #fff8f7; }
.summary a { color: inherit; text-decoration: none; }
.summary a:hover { text-decoration: underline; }
.badge { display: inline-block; font-size: 0.8rem; font-weight: 700; letter-spacing: 0.05em; padding: 1px 8px; border-radius: 999px; border: 1px solid; }
.badge.pass { color: var(--pass); background: var(--pass-bg); border-color: #8fd19e; }
.badge.fail { color: var(--fail); background: var(--fail-bg); border-color: #f4a3a0; }
.claim { border-top: 3px solid var(--rule); padding: 18px 0 8px; margin-top: 12px; }
.claim.pass { border-top-color: #8fd19e; }
.claim.fail { border-top-color: #f4a3a0; }
.claim .time { color: var(--muted); font-weight: 400; font-size: 0.8em; }
.claim-text { margin: 0 0 10px; font-size: 1.02em; }
dl.me { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0 0 14px; }
dl.me dt { font-weight: 600; color: #44474d; }
dl.me dd { margin: 0; }
.error { border-left: 4px solid var(--fail); background: var(--fail-bg); padding: 8px 12px; margin: 0 0 14px; border-radius: 0 6px 6px 0; }
.error pre { margin: 4px 0 0; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.85em; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 500px), 1fr)); gap: 16px; margin: 0 0 14px; }
figure { margin: 0; padding: 8px; border: 1px solid #e6e7ea; border-radius: 8px; background: #fff; break-inside: avoid; page-break-inside: avoid; }
figure svg { display: block; width: 100%; max-width: 600px; height: auto; margin: 0 auto; }
figcaption { font-size: 0.85em; color: #44474d; padding: 4px 6px 0; }
details summary { cursor: pointer; color: var(--muted); font-size: 0.85em; margin-bottom: 4px; }
table.kv { font-size: 0.85em; width: auto; max-width: 100%; }
table.kv th, table.kv td { text-align: left; vertical-align: top; padding: 3px 12px 3px 0; border-bottom: 1px solid #eceef1; }
table.kv th { font-weight: 600; font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; color: #44474d; white-space: nowrap; }
table.kv td { overflow-wrap: anywhere; }
table.kv code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 0.95em; }
.controls { margin: 0 0 14px; font-size: 0.9em; }
.controls p { margin: 0 0 4px; }
.controls-table th, .controls-table td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #eceef1; }
.controls-table thead th { background: #f3f4f6; font-size: 0.85em; }
.controls-table tr.broken td { background: #fff8f7; }
.controls-none { color: var(--fail); font-size: 0.9em; }
.num { font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
footer { margin-top: 32px; color: var(--muted); font-size: 0.8em; }
@media (max-width: 700px) { main { padding: 16px; } .plots { grid-template-columns: 1fr; } }
@media print {
  body { background: #fff; font-size: 11pt; }
  main { max-width: none; padding: 0; }
  .badge, .verdict, .summary tr.fail td, .error { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .claim { break-inside: auto; }
  h2 { break-after: avoid; }
  .plots { grid-template-columns: 1fr; }
  figure { border: none; padding: 0; }
  figure svg { max-width: 15cm; }
  details summary { display: none; }
  a { color: inherit; text-decoration: none; }
}
`;

/** The whole report: a complete HTML document (doctype to `</html>`). */
export function renderReport(record: ReproduceRecord): string {
  const claims = record.claims ?? [];
  const passed = claims.filter((c) => c.pass).length;
  const controls = claims.flatMap((c) => c.controls ?? []);
  const held = controls.filter((x) => x.holds).length;
  const allPass = claims.length > 0 && claims.every(claimStands);
  const meta: Array<[string, string]> = [
    ["Tool", `${record.tool} ${record.version}`],
    ["Date", record.date],
    ["Adapter", record.adapter],
    ["Mode", record.quick ? "quick" : "full"],
    ["Seed", String(record.seed)],
    ["Total time", formatDuration(record.wallMs)],
  ];
  const summaryRows = claims.map((c) =>
    `<tr class="${c.pass ? "pass" : "fail"}"><td class="id"><a href="#${claimAnchor(c.id)}">${escapeXml(String(c.id))}</a></td>` +
    `<td><a href="#${claimAnchor(c.id)}">${escapeXml(c.claim)}</a></td><td>${escapeXml(c.measured)}</td><td>${escapeXml(c.expected)}</td>` +
    `<td class="result">${badge(c.pass)}</td><td class="controls-count">${escapeXml(controlsSummary(c))}</td><td class="time">${escapeXml(formatDuration(c.wallMs))}</td></tr>`
  );
  const title = `${record.tool} reproduce: ${passed} of ${claims.length} claims pass`;
  return [
    `<!DOCTYPE html>`,
    `<html lang="en">`,
    `<head>`,
    `<meta charset="utf-8">`,
    `<meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<title>${escapeXml(title)}</title>`,
    `<style>${CSS}</style>`,
    `</head>`,
    `<body>`,
    `<main>`,
    `<header>`,
    `<h1>${escapeXml(record.tool)} reproduce</h1>`,
    `<p class="subtitle">Claims of Dinh, Pascanu, Bengio &amp; Bengio, “Sharp Minima Can Generalize For Deep Nets” (ICML 2017), checked by measurement.</p>`,
    `<dl class="meta">${meta.map(([k, v]) => `<div><dt>${escapeXml(k)}</dt><dd>${escapeXml(v)}</dd></div>`).join("")}</dl>`,
    `<p class="verdict ${allPass ? "pass" : "fail"}">${passed} of ${claims.length} claims pass; ${held} of ${controls.length} negative controls fail as they must</p>`,
    `</header>`,
    `<table class="summary">`,
    `<thead><tr><th>#</th><th>Claim</th><th>Measured</th><th>Expected</th><th>Result</th><th>Controls</th><th>Time</th></tr></thead>`,
    `<tbody>`,
    ...summaryRows,
    `</tbody>`,
    `</table>`,
    ...claims.map(claimSection),
    `<footer>Generated by ${escapeXml(record.tool)} ${escapeXml(record.version)} on ${escapeXml(record.date)}.</footer>`,
    `</main>`,
    `</body>`,
    `</html>`,
    ``,
  ].join("\n");
}
