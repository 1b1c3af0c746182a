/**
 * What page 1 measures, DOM-free so the test computes the same report in Node with the float64
 * reference: one measureMetrics call (src/metrics/suite.ts) with these options, i.e.
 * `flatness measure --metrics <METRICS> --top-k 1 --trace-samples 30 --epsilon 0.05 --rho 0.1 --seed 0`.
 */
import type { MeasureOptions, MeasureReport, MetricName } from "../../src/metrics/suite.ts";

export const SAME_FUNCTION_METRICS: MetricName[] = [
  "spectrum",
  "trace",
  "epsilon-sharpness",
  "adaptive",
  "fisher-rao",
  "path-norm",
  "relative-flatness",
  "normalized-sharpness",
];

/** measureMetrics options of page 1 (onProgress added by the page). */
export const SAME_FUNCTION_OPTIONS: MeasureOptions = {
  metrics: SAME_FUNCTION_METRICS,
  topK: 1,
  traceSamples: 30,
  // 0.05 rather than the CLI's 1e-3: at 1e-3 the loss increase (~1e-6) is near float32 resolution.
  epsilon: 0.05,
  rho: 0.1,
  seed: 0,
};

/** The same options as `flatness measure` arguments. */
export const SAME_FUNCTION_CLI_ARGS =
  `--metrics ${SAME_FUNCTION_METRICS.join(",")} --top-k 1 --trace-samples 30 --epsilon 0.05 --rho 0.1 --seed 0`;

export interface MetricRow {
  key: string;
  label: string;
  /** "hessian": moved by T_alpha in general (Dinh et al. section 4); "invariant": built to be invariant. */
  kind: "hessian" | "invariant";
  note: string;
}

export const METRIC_ROWS: MetricRow[] = [
  { key: "topEigenvalue", label: "λ_max of the Hessian", kind: "hessian", note: "Lanczos; §4.2 Theorem 4" },
  { key: "trace", label: "trace of the Hessian", kind: "hessian", note: "Hutch++, 30 HVPs; §4.2" },
  { key: "epsilonSharpness", label: "ε-sharpness, ε = 0.05", kind: "hessian", note: "Definition 2, Auto-PGD; §4.3" },
  { key: "adaptiveSharpness", label: "adaptive sharpness, ρ = 0.1", kind: "invariant", note: "c = |θ| (Kwon et al. 2021)" },
  { key: "fisherRao", label: "Fisher-Rao norm", kind: "invariant", note: "Liang et al. 2019" },
  { key: "pathNorm", label: "ℓ2 path norm", kind: "invariant", note: "Neyshabur et al. 2015" },
  { key: "relativeFlatness", label: "relative flatness †", kind: "invariant", note: "Petzka et al. 2021" },
  { key: "normalizedSharpness", label: "normalized sharpness", kind: "invariant", note: "Tsuzuku et al. 2020" },
];

/** The numbers of the table from a measureMetrics report. */
export function summarize(report: MeasureReport): Record<string, number> {
  const r = report as Record<string, unknown> & MeasureReport;
  const get = (key: string, field: string) => (r[key] as Record<string, number>)[field];
  return {
    loss: report.loss,
    gradientNorm: report.gradientNorm,
    topEigenvalue: (r.topEigenvalues as number[])[0],
    trace: get("trace", "estimate"),
    epsilonSharpness: get("epsilonSharpness", "value"),
    adaptiveSharpness: get("adaptiveSharpness", "value"),
    fisherRao: get("fisherRaoNorm", "value"),
    pathNorm: get("pathNorm", "value"),
    relativeFlatness: get("relativeFlatness", "total"),
    normalizedSharpness: get("normalizedSharpness", "total"),
  };
}

const REPORT_KEYS: Record<string, string> = {
  topEigenvalue: "spectrum",
  trace: "trace",
  epsilonSharpness: "epsilonSharpness",
  adaptiveSharpness: "adaptiveSharpness",
  fisherRao: "fisherRaoNorm",
  pathNorm: "pathNorm",
  relativeFlatness: "relativeFlatness",
  normalizedSharpness: "normalizedSharpness",
};

/** Per metric of the table, what it cost: HVPs, gradients, forward passes, wall time. */
export function costs(report: MeasureReport): Record<string, { hvps: number; gradients: number; forwards: number; wallMs: number }> {
  const r = report as Record<string, unknown>;
  return Object.fromEntries(
    Object.entries(REPORT_KEYS).map(([key, reportKey]) => [key, (r[reportKey] as { cost: { hvps: number; gradients: number; forwards: number; wallMs: number } }).cost]),
  );
}

/** Relative change |a/b - 1| (0 when both are 0). */
export function relativeChange(a: number, b: number): number {
  if (a === b) return 0;
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);
}

/**
 * "invariant" within `tolerance` relative (1e-3: float32 rounding of the WebGPU or wasm run), else "moved".
 */
export function verdict(now: number, trained: number, tolerance = 1e-3): "invariant" | "moved" {
  return relativeChange(now, trained) <= tolerance ? "invariant" : "moved";
}
