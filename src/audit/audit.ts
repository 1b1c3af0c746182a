/**
 * The invariance audit (Dinh et al. 2017 made into a table): for each transform, the function
 * check (largest output difference over the data, loss difference) and each metric before, after,
 * their ratio, and a verdict: invariant when the two agree within the tolerance, "within noise"
 * when a stochastic estimate's change is larger than that but within three combined standard
 * errors (the sample size cannot decide), moved otherwise. The paper predicts the
 * Hessian-based measures, epsilon-sharpness and volume move under T_alpha while the function does
 * not; the reparametrization-invariant measures proposed since (adaptive sharpness, Fisher-Rao and
 * path norms, relative flatness, normalized sharpness) should not.
 */
import { InputError } from "../errors.ts";
import { withVectors } from "../objective.ts";
import { compareOutputs } from "../transforms/constructionSupport.ts";
import { type MeasureOptions, type MeasureReport, type MetricName, measureMetrics } from "../metrics/suite.ts";
import { type Headline, headline } from "./headline.ts";
import {
  type AuditBase,
  type AuditTransformName,
  type AuditView,
  type ObjectiveFactory,
  setupTransform,
  type TransformFamily,
} from "./transforms.ts";
import type { Backend } from "../backend/types.ts";

/** Metrics that need theta's layout or the host model (they do not apply to an eta view). */
const THETA_ONLY: ReadonlySet<MetricName> = new Set<MetricName>([
  "diagonal", "per-layer", "m-sharpness", "fisher-rao", "path-norm", "relative-flatness", "normalized-sharpness", "gradient-norms", "input-gradients",
]);

/** The metrics the audit measures when none are named: curvature, sharpness, and the invariant measures proposed since Dinh et al. 2017. */
export const DEFAULT_AUDIT_METRICS: MetricName[] = [
  "spectrum", "trace", "epsilon-sharpness", "keskar", "adaptive", "fisher-rao", "path-norm", "relative-flatness", "normalized-sharpness", "input-gradients",
];

/** Options of audit. */
export interface AuditOptions {
  /** The transforms to apply, each giving one row block of the report. */
  transforms: AuditTransformName[];
  /** The metrics to measure before and after each transform. */
  metrics: MetricName[];
  /** Transform strength a (default 4). */
  factor?: number;
  /** Relative tolerance of the invariance verdict (default 1e-3: f32 GPU arithmetic and iterative solvers). */
  tolerance?: number;
  /** Seed of every stochastic metric and of the transforms' random factors (default 0). */
  seed?: number;
  /** Options passed to every measureMetrics call (top-k, trace samples, epsilon, ...). */
  measure?: Omit<MeasureOptions, "metrics" | "seed" | "layers" | "onProgress" | "backend">;
  /** Progress callback: the stage (base or transform), its fraction done in [0, 1] and a short message. */
  onProgress?: (stage: string, fraction: number, message: string) => void;
}

/** The audit's function check of one transform: how far the outputs and the loss moved. */
export interface FunctionCheck {
  /** max over samples and outputs of |f_after - f_before|. */
  maxOutputDifference: number;
  /** That, divided by max |f_before|. */
  relativeOutputDifference: number;
  /** L before the transform. */
  lossBefore: number;
  /** L after the transform (in the transformed coordinates or data). */
  lossAfter: number;
}

/** One metric before and after one transform, with the invariance verdict. */
export interface AuditMetricRow {
  /** The metric. */
  metric: MetricName;
  /** What its headline number is (e.g. "top Hessian eigenvalue"). */
  label: string;
  /** The headline number before the transform; null when there is none. */
  before: number | null;
  /** The headline number after the transform; null when it does not apply or there is none. */
  after: number | null;
  /** after / before (exp(after - before) for a logarithm); null when not applicable. */
  ratio: number | null;
  /** "within noise": not within the tolerance, but within 3 standard errors: more samples would tell. */
  verdict: "invariant" | "moved" | "within noise" | "n/a";
  /** Why a verdict is "n/a" or "within noise". */
  note?: string;
}

/** One transform of the audit: what was applied, the function check, and every metric's row. */
export interface AuditTransformRow {
  /** The transform's name (a key of AUDIT_TRANSFORMS). */
  transform: AuditTransformName;
  /** Function-preserving, reparametrization or input map; null when skipped. */
  family: TransformFamily | null;
  /** One line saying what the transform does (the error message when skipped). */
  description: string;
  /** What was applied (alphas, factors, ...). */
  parameters: Record<string, unknown>;
  /** How far the function moved; null when skipped. */
  functionCheck: FunctionCheck | null;
  /** One row per metric, in the order asked. */
  metrics: AuditMetricRow[];
  /** Why the transform was not applied (e.g. T_alpha on a one-layer model). */
  skipped?: string;
}

/** The invariance audit (Dinh et al. 2017 as a table): each transform's function check and each metric's before, after, ratio and verdict. */
export interface AuditReport {
  /** Parameter count n of the base model. */
  parameters: number;
  /** Sample count N. */
  samples: number;
  /** The loss kind. */
  loss: string;
  /** The seed used. */
  seed: number;
  /** The relative tolerance of the verdicts. */
  tolerance: number;
  /** The transform strength a. */
  factor: number;
  /** The measureMetrics report at the base model. */
  base: MeasureReport;
  /** One entry per transform, in the order asked. */
  transforms: AuditTransformRow[];
  /** Wall-clock time of the whole audit in milliseconds. */
  wallMs: number;
}

function measureView(view: AuditView, metrics: MetricName[], options: AuditOptions, stage: string, backend: Backend): Promise<MeasureReport> {
  const applicable = view.thetaCoordinates ? metrics : metrics.filter((m) => !THETA_ONLY.has(m));
  return withVectors(view.objective, [view.point], ([point]) =>
    measureMetrics(view.objective, point, view.theta, view.data, {
      ...options.measure,
      metrics: applicable,
      seed: options.seed ?? 0,
      backend,
      onProgress: (metric, f, msg) => options.onProgress?.(stage, f, `${metric}: ${msg}`),
    }));
}

function outputsOf(view: AuditView): Promise<Float64Array> {
  return withVectors(view.objective, [view.point], ([p]) => view.objective.outputs(p));
}

function compare(metric: MetricName, before: MeasureReport, after: MeasureReport, tolerance: number, afterApplies: boolean): AuditMetricRow {
  const b: Headline | null = headline(metric, before);
  const a: Headline | null = afterApplies ? headline(metric, after) : null;
  const label = b?.label ?? a?.label ?? metric;
  if (!afterApplies) {
    return { metric, label, before: b?.value ?? null, after: null, ratio: null, verdict: "n/a", note: "reads theta's layout: not defined in eta coordinates" };
  }
  if (!a || !b) return { metric, label, before: b?.value ?? null, after: a?.value ?? null, ratio: null, verdict: "n/a", note: "no value" };
  const noise = 3 * Math.hypot(a.stderr, b.stderr);
  const scale = a.log ? 1 : Math.max(Math.abs(a.value), Math.abs(b.value));
  const ratio = a.log ? Math.exp(a.value - b.value) : b.value !== 0 ? a.value / b.value : a.value === 0 ? 1 : Infinity;
  const difference = Math.abs(a.value - b.value);
  const verdict = difference <= tolerance * scale + 1e-12 ? "invariant" : difference <= noise ? "within noise" : "moved";
  return {
    metric,
    label,
    before: b.value,
    after: a.value,
    ratio,
    verdict,
    note: verdict === "within noise" ? `the change is within 3 standard errors (${noise.toPrecision(3)}): raise the samples to decide` : undefined,
  };
}

/**
 * Runs the audit of `base` under `options.transforms`, measuring `options.metrics` before and
 * after each with objectives built on `backend` (src/backend/).
 */
export async function audit(base: AuditBase, backend: Backend, options: AuditOptions): Promise<AuditReport> {
  const make: ObjectiveFactory = (spec, data) => backend.objective(spec, data, base.loss);
  const t0 = performance.now();
  const factor = options.factor ?? 4;
  if (!(factor > 0) || !Number.isFinite(factor) || factor === 1) throw new InputError(`the transform strength must be positive, finite and not 1, got ${factor}`);
  const tolerance = options.tolerance ?? 1e-3;
  if (!(tolerance > 0 && tolerance < 1)) throw new InputError(`the tolerance must lie in (0, 1), got ${tolerance}`);
  if (options.transforms.length === 0) throw new InputError("no transforms to audit");
  const seed = options.seed ?? 0;
  const baseView: AuditView = await (async () => {
    const objective = await make(base.spec, base.data);
    return { objective, point: base.theta, theta: base.theta, spec: base.spec, data: base.data, thetaCoordinates: true, dispose: () => (objective as { dispose?: () => void }).dispose?.() };
  })();
  try {
    const baseReport = await measureView(baseView, options.metrics, options, "base", backend);
    const baseOutputs = await outputsOf(baseView);
    const rows: AuditTransformRow[] = [];
    for (const name of options.transforms) {
      let setup;
      try {
        setup = await setupTransform(name, base, make, factor, seed);
      } catch (e) {
        if (!(e instanceof InputError)) throw e;
        rows.push({ transform: name, family: null, description: e.message, parameters: {}, functionCheck: null, metrics: [], skipped: e.message });
        continue;
      }
      try {
        const beforeView = setup.before ?? baseView;
        const beforeReport = setup.before ? await measureView(setup.before, options.metrics, options, `${name} (before)`, backend) : baseReport;
        const afterReport = await measureView(setup.after, options.metrics, options, name, backend);
        const beforeOutputs = setup.before ? await outputsOf(beforeView) : baseOutputs;
        const afterOutputs = await outputsOf(setup.after);
        const { maxAbsDifference: maxDiff, maxAbsOutput: maxAbs } = compareOutputs(beforeOutputs, afterOutputs);
        rows.push({
          transform: name,
          family: setup.family,
          description: setup.description,
          parameters: setup.parameters,
          functionCheck: { maxOutputDifference: maxDiff, relativeOutputDifference: maxAbs > 0 ? maxDiff / maxAbs : maxDiff, lossBefore: beforeReport.loss, lossAfter: afterReport.loss },
          metrics: options.metrics.map((m) => compare(m, beforeReport, afterReport, tolerance, setup.after.thetaCoordinates || !THETA_ONLY.has(m))),
        });
      } finally {
        setup.before?.dispose();
        setup.after.dispose();
      }
    }
    return {
      parameters: base.theta.length,
      samples: base.data.n,
      loss: base.loss,
      seed,
      tolerance,
      factor,
      base: baseReport,
      transforms: rows,
      wallMs: performance.now() - t0,
    };
  } finally {
    baseView.dispose();
  }
}
