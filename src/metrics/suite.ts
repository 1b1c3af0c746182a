/**
 * One entry point for every metric: `measureMetrics` runs the metrics named in a list on one
 * objective at one theta and returns a plain, JSON-ready report (one key per metric, each with its
 * cost: HVPs, gradients, forward passes and wall time). The command line (`flatness measure`) and
 * the invariance audit call this, so a metric is computed the same way everywhere.
 *
 * The curvature metrics (spectrum, trace, diagonal, Frobenius norm, density) run on the exact
 * Hessian operator, restricted to a parameter subset when `layers` is given (the principal block of
 * those tensors, see restrictedOperator). Every stochastic metric takes `seed`; the same seed on the
 * same device gives the same report.
 */
import { type Dataset, subsetDataset } from "../data.ts";
import { InputError } from "../errors.ts";
import { parameterLayout } from "../model.ts";
import type { Objective } from "../objective.ts";
import { type MetricCost, withCost } from "./cost.ts";
import { spectralDensity } from "./density.ts";
import { fisherRaoNorm, pathNorm } from "./normBased.ts";
import { normalizedSharpness } from "./normalizedSharpness.ts";
import { hessianOperator, layerMask, restrictedOperator, type SymmetricOperator } from "./operator.ts";
import { pacBayesSigma } from "./pacBayes.ts";
import { pacBayesBoundDR } from "./pacBayesDR.ts";
import { relativeFlatness } from "./relativeFlatness.ts";
import { inputGradientNorms, layerGradientNorms } from "./sensitivity.ts";
import { adaptiveSharpness, epsilonSharpness, mSharpness, samSharpness, volumeFlatness } from "./sharpness.ts";
import { lanczosEigenpairs, powerIteration } from "./spectrum.ts";
import { hessianDiagonal, hutchinsonTrace, hutchPlusPlusTrace, squaredFrobeniusNorm } from "./trace.ts";
import type { Backend } from "../backend/types.ts";

/** Metric names accepted by --metrics, with the report key each one fills and a one-line description. */
export const METRICS = {
  spectrum: { key: "topEigenvalues", about: "top-k Hessian eigenvalues by Lanczos (full reorthogonalization), residuals, converged flags" },
  trace: { key: "trace", about: "Hessian trace by Hutch++ (or Hutchinson), with standard error" },
  smallest: { key: "smallestEigenvalues", about: "k smallest (most negative) eigenvalues by Lanczos" },
  power: { key: "powerIteration", about: "top-k largest-magnitude eigenvalues by deflated power iteration (PyHessian's method)" },
  diagonal: { key: "diagonal", about: "Hessian diagonal estimate (Hutchinson), summed per tensor" },
  frobenius: { key: "frobenius", about: "squared Frobenius norm of the Hessian, ||H||_F^2 = E||Hv||^2" },
  density: { key: "density", about: "spectral density by stochastic Lanczos quadrature (nodes, weights, smoothed density)" },
  "per-layer": { key: "perLayer", about: "top eigenvalue and trace of each layer's Hessian block" },
  "epsilon-sharpness": { key: "epsilonSharpness", about: "Dinh et al. Definition 2: l2 ball of radius eps, / (1 + L), with the second-order estimate" },
  keskar: { key: "keskarSharpness", about: "Keskar et al. Metric 2.1, full-space box eps(|theta|+1), x100" },
  "keskar-subspace": { key: "keskarSubspaceSharpness", about: "Keskar et al. Metric 2.1 on a random p-dimensional subspace" },
  volume: { key: "volumeFlatness", about: "Dinh et al. Definition 1: log-volume of the eps-sublevel set (Monte-Carlo rays)" },
  adaptive: { key: "adaptiveSharpness", about: "adaptive worst-case sharpness, c = |theta| (Andriushchenko et al. 2023), l2" },
  "adaptive-average": { key: "adaptiveAverageSharpness", about: "adaptive average-case sharpness, Gaussian, c = |theta|" },
  sam: { key: "samSharpness", about: "SAM sharpness, one ascent step of radius rho (Foret et al. 2021)" },
  "m-sharpness": { key: "mSharpness", about: "SAM m-sharpness: mean over disjoint subsets of m samples" },
  "fisher-rao": { key: "fisherRaoNorm", about: "Fisher-Rao norm (Liang et al. 2019), empirical Fisher" },
  "path-norm": { key: "pathNorm", about: "l2 path norm (Neyshabur et al. 2015)" },
  "relative-flatness": { key: "relativeFlatness", about: "relative flatness of every layer (Petzka et al. 2021)" },
  "normalized-sharpness": { key: "normalizedSharpness", about: "normalized sharpness (Tsuzuku et al. 2020)" },
  "pac-bayes": { key: "pacBayes", about: "PAC-Bayes flatness 1/sigma'^2, isotropic noise (Jiang et al. #53)" },
  "pac-bayes-magnitude": { key: "pacBayesMagnitude", about: "magnitude-aware PAC-Bayes flatness (Jiang et al. #61), std sqrt(sigma^2 theta^2 + eps^2)" },
  "pac-bayes-dr": { key: "pacBayesDR", about: "PAC-Bayes bound on the error of a Gaussian posterior around theta (Dziugaite & Roy 2017: kl-inverse, optimised variances, prior N(0, lambda I))" },
  "gradient-norms": { key: "gradientNorms", about: "per-layer gradient norms (the loss is not Lipschitz under T_alpha)" },
  "input-gradients": { key: "inputGradients", about: "input-gradient norms ||df/dx||_F over the data (Dinh et al. section 5.2)" },
} as const;

/** A metric measureMetrics can compute: a key of METRICS. */
export type MetricName = keyof typeof METRICS;
/** Every metric name, in the order of METRICS. */
export const METRIC_NAMES = Object.keys(METRICS) as MetricName[];
/** What `flatness measure` computes when --metrics is not given (the required keys). */
export const DEFAULT_METRICS: MetricName[] = ["spectrum", "trace"];
/** The metrics `all` expands to. */
export const ALL_METRICS: MetricName[] = METRIC_NAMES;

/** Options of measureMetrics: the metrics to run and each one's settings. */
export interface MeasureOptions {
  /** The metrics to compute, run in the order of METRICS. */
  metrics: MetricName[];
  /** Eigenpairs for spectrum, smallest and power (default 3). */
  topK?: number;
  /** Matrix-vector products of the trace estimator (default 99: Hutch++ splits them in thirds). */
  traceSamples?: number;
  /** Trace estimator: "hutch++" (default, Meyer et al. 2021) or "hutchinson" (Hutchinson 1989). */
  traceMethod?: "hutch++" | "hutchinson";
  /** Probes of the diagonal and Frobenius estimators (default 64). */
  probeSamples?: number;
  /** Spectral density: independent SLQ runs (default 10). */
  densityRuns?: number;
  /** Spectral density: Lanczos steps per run (default 80, capped by n). */
  densitySteps?: number;
  /** Seed of every stochastic metric (default 0): the same seed on the same device gives the same report. */
  seed?: number;
  /** Restrict the curvature metrics to these layers or tensors ("0", "1.weight", ...). */
  layers?: string[];
  /** epsilon-sharpness radius (default 1e-3, Keskar et al.'s smaller value). */
  epsilon?: number;
  /** Volume flatness loss tolerance (default 0.01). */
  volumeEpsilon?: number;
  /** Volume flatness: Monte-Carlo rays (default 64). */
  volumeRays?: number;
  /** Adaptive sharpness radius (default 0.1, Andriushchenko et al.). */
  rho?: number;
  /** SAM radius (default 0.05, Foret et al.). */
  samRho?: number;
  /**
   * What the PAC-Bayes noise must displace by 0.1: the accuracy (default, as Jiang et al. 2020
   * define #53 and #61; ce and logistic) or the mean loss (always for mse).
   */
  pacBayesDeviation?: "accuracy" | "loss";
  /** m of m-sharpness (default 128, capped at the sample count). */
  m?: number;
  /** Keskar subspace dimension (default 100, capped at n). */
  subspaceDim?: number;
  /**
   * The backend the objective runs on: m-sharpness builds one objective per data subset on it
   * (objective.spec and objective.lossKind over the subset); without it m-sharpness is refused.
   */
  backend?: Pick<Backend, "objective">;
  /** Progress callback: the metric running, its fraction done in [0, 1] and a short message. */
  onProgress?: (metric: string, fraction: number, message: string) => void;
}

/** A JSON-ready report: loss, gradient norm, then one key per metric asked for. */
export interface MeasureReport {
  /** L(theta), the mean training loss. */
  loss: number;
  /** ||grad L(theta)||_2. */
  gradientNorm: number;
  /** Parameter count n. */
  parameters: number;
  /** Sample count N. */
  samples: number;
  /** The seed the stochastic metrics used. */
  seed: number;
  /** The layers the curvature metrics were restricted to; null for the full Hessian. */
  layers: string[] | null;
  /** One key per metric asked for (METRICS[name].key), each holding that metric's result with its cost. */
  [metric: string]: unknown;
}

/** Checks and expands a comma-separated --metrics list ("all" for every metric). */
export function parseMetricList(list: string | undefined): MetricName[] {
  if (list === undefined || list.trim() === "") return [...DEFAULT_METRICS];
  const names = list.split(",").map((s) => s.trim()).filter(Boolean);
  const out = new Set<MetricName>();
  for (const name of names) {
    if (name === "all") ALL_METRICS.forEach((m) => out.add(m));
    else if (name in METRICS) out.add(name as MetricName);
    else throw new InputError(`unknown metric '${name}': choose from ${METRIC_NAMES.join(", ")} or all`);
  }
  return [...out];
}

/** Plain JSON: typed arrays become arrays, non-finite numbers become strings ("Infinity", "NaN"), vectors are dropped. */
export function toPlain(value: unknown): unknown {
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>, (x) => toPlain(x));
  if (Array.isArray(value)) return value.map(toPlain);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === "vectors") continue;
      out[k] = toPlain(v);
    }
    return out;
  }
  return value;
}

function positiveInt(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  if (!Number.isInteger(x) || x < 1) throw new InputError(`${name} must be a positive integer, got ${v}`);
  return x;
}

function positive(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  if (!(x > 0) || !Number.isFinite(x)) throw new InputError(`${name} must be a positive number, got ${v}`);
  return x;
}

/**
 * Runs `options.metrics` on `objective` at `theta` (`thetaHost` is the same point on the host, for
 * the host-side metrics; `data` the objective's dataset). Metrics run in the order of METRICS.
 */
export async function measureMetrics<V>(
  objective: Objective<V>,
  theta: V,
  thetaHost: Float64Array,
  data: Dataset,
  options: MeasureOptions,
): Promise<MeasureReport> {
  const space = objective.space;
  const spec = objective.spec;
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0) throw new InputError(`seed must be a non-negative integer, got ${options.seed}`);
  const topK = positiveInt("top-k", options.topK, 3);
  if (topK > space.dim) throw new InputError(`top-k ${topK} exceeds the ${space.dim} parameters`);
  const traceSamples = positiveInt("trace-samples", options.traceSamples, 99);
  const probeSamples = positiveInt("probe samples", options.probeSamples, 64);
  const epsilon = positive("epsilon", options.epsilon, 1e-3);
  const rho = positive("rho", options.rho, 0.1);
  const samRho = positive("sam-rho", options.samRho, 0.05);
  const wanted = new Set(options.metrics);
  const progress = (metric: string) => (f: number, msg: string) => options.onProgress?.(metric, f, msg);

  const g = space.zeros();
  let loss: number;
  let gradientNorm: number;
  try {
    loss = await objective.gradient(theta, g);
    gradientNorm = Math.sqrt(await space.dot(g, g));
  } finally {
    space.dispose(g);
  }
  const report: MeasureReport = {
    loss,
    gradientNorm,
    parameters: space.dim,
    samples: objective.sampleCount,
    seed,
    layers: options.layers ?? null,
  };

  // The Hessian operator, restricted to the chosen layers' principal block if asked.
  const hessian = hessianOperator(objective, theta);
  let mask: V | null = null;
  let curvature: SymmetricOperator<V> = hessian;
  if (options.layers && options.layers.length > 0) {
    mask = space.fromArray(layerMask(spec, options.layers));
    curvature = restrictedOperator(hessian, mask);
  }
  const timed = <T>(work: () => Promise<T>) => withCost(objective, work).then(({ result, cost }) => ({ ...result, cost }));

  try {
    let topEigenvalue: number | undefined;
    if (wanted.has("spectrum")) {
      const r = await timed(() => lanczosEigenpairs(curvature, { k: topK, which: "LA", seed, onProgress: progress("spectrum") }));
      topEigenvalue = r.eigenvalues[0];
      report.topEigenvalues = r.eigenvalues;
      report.spectrum = r;
    }
    if (wanted.has("trace")) {
      const r = options.traceMethod === "hutchinson"
        ? await timed(() => hutchinsonTrace(curvature, { samples: traceSamples, seed, onProgress: progress("trace") }))
        : await timed(() => hutchPlusPlusTrace(curvature, { matvecs: Math.max(traceSamples, 3), seed, onProgress: progress("trace") }));
      report.trace = r;
    }
    if (wanted.has("smallest")) {
      report.smallestEigenvalues = await timed(() => lanczosEigenpairs(curvature, { k: topK, which: "SA", seed, onProgress: progress("smallest") }));
    }
    if (wanted.has("power")) {
      report.powerIteration = await timed(() => powerIteration(curvature, { k: topK, seed, onProgress: progress("power") }));
    }
    if (wanted.has("diagonal")) {
      const r = await timed(() => hessianDiagonal(curvature, { samples: probeSamples, seed }));
      const layout = parameterLayout(spec);
      const perTensor = layout.views.map((v) => {
        let sum = 0;
        for (let i = v.offset; i < v.offset + v.size; i++) sum += r.diagonal[i];
        return { name: v.name, sum, mean: sum / v.size };
      });
      report.diagonal = { ...r, perTensor };
    }
    if (wanted.has("frobenius")) {
      report.frobenius = await timed(() => squaredFrobeniusNorm(curvature, { samples: probeSamples, seed }));
    }
    if (wanted.has("density")) {
      const r = await timed(() =>
        spectralDensity(curvature, { runs: options.densityRuns, steps: options.densitySteps, seed, gridPoints: 400, onProgress: progress("density") })
      );
      report.density = r;
    }
    if (wanted.has("per-layer")) {
      report.perLayer = await perLayerCurvature(objective, hessian, theta, topK, traceSamples, seed, progress("per-layer"));
    }
    if (wanted.has("epsilon-sharpness")) {
      report.epsilonSharpness = await epsilonSharpness(objective, theta, {
        kind: "dinh",
        epsilon,
        seed,
        topEigenvalue: options.layers ? undefined : topEigenvalue,
        onProgress: progress("epsilon-sharpness"),
      });
    }
    if (wanted.has("keskar")) {
      report.keskarSharpness = await epsilonSharpness(objective, theta, { kind: "keskar", epsilon, seed, onProgress: progress("keskar") });
    }
    if (wanted.has("keskar-subspace")) {
      report.keskarSubspaceSharpness = await epsilonSharpness(objective, theta, {
        kind: "keskar-subspace",
        epsilon,
        seed,
        subspaceDim: Math.min(options.subspaceDim ?? 100, space.dim),
        onProgress: progress("keskar-subspace"),
      });
    }
    if (wanted.has("volume")) {
      report.volumeFlatness = await volumeFlatness(objective, theta, {
        epsilon: positive("volume-epsilon", options.volumeEpsilon, 0.01),
        rays: options.volumeRays,
        seed,
        onProgress: progress("volume"),
      });
    }
    if (wanted.has("adaptive")) {
      report.adaptiveSharpness = await adaptiveSharpness(objective, theta, { kind: "worst", norm: "l2", rho, seed, onProgress: progress("adaptive") });
    }
    if (wanted.has("adaptive-average")) {
      report.adaptiveAverageSharpness = await adaptiveSharpness(objective, theta, {
        kind: "average",
        norm: "l2",
        rho,
        seed,
        onProgress: progress("adaptive-average"),
      });
    }
    if (wanted.has("sam")) {
      report.samSharpness = await samSharpness(objective, theta, { rho: samRho, onProgress: progress("sam") });
    }
    if (wanted.has("m-sharpness")) {
      const backend = options.backend;
      if (!backend) throw new InputError("m-sharpness builds an objective per data subset: give measureMetrics the backend (options.backend)");
      const make = (subset: Dataset) => backend.objective(spec, subset, objective.lossKind);
      const m = Math.min(positiveInt("m", options.m, 128), objective.sampleCount);
      report.mSharpness = await mSharpness(
        (indices) => make(subsetDataset(data, indices)) as Promise<Objective<unknown>>,
        objective.sampleCount,
        thetaHost,
        { m, rho: samRho, seed, onProgress: progress("m-sharpness") },
      );
    }
    if (wanted.has("fisher-rao")) report.fisherRaoNorm = await fisherRaoNorm(objective, theta, data);
    if (wanted.has("path-norm")) report.pathNorm = await pathNorm(spec, thetaHost);
    if (wanted.has("relative-flatness")) report.relativeFlatness = await relativeFlatness(objective, theta, { seed });
    if (wanted.has("normalized-sharpness")) report.normalizedSharpness = await normalizedSharpness(objective, theta, { seed });
    // Jiang et al. (2020) #53 (isotropic noise) and #61 (magnitude-aware), each displacing the
    // accuracy by 0.1 as they define it (the mean loss for mse, which has no accuracy, or when asked).
    const pacBayesDeviation = objective.lossKind === "mse" ? "loss" : (options.pacBayesDeviation ?? "accuracy");
    const pacBayes = { seed, deviation: pacBayesDeviation, data } as const;
    if (wanted.has("pac-bayes")) report.pacBayes = await pacBayesSigma(objective, theta, { ...pacBayes, magnitudeAware: false });
    if (wanted.has("pac-bayes-magnitude")) report.pacBayesMagnitude = await pacBayesSigma(objective, theta, { ...pacBayes, magnitudeAware: true });
    if (wanted.has("pac-bayes-dr")) {
      if (objective.lossKind === "mse") throw new InputError("pac-bayes-dr bounds a classification error: use loss ce or logistic");
      // The posterior's n standard deviations stay out of the report (their mean log is in it).
      const { std: _std, ...bound } = await pacBayesBoundDR(objective, theta, { data, seed, onProgress: progress("pac-bayes-dr") });
      report.pacBayesDR = bound;
    }
    if (wanted.has("gradient-norms")) report.gradientNorms = await layerGradientNorms(objective, theta);
    if (wanted.has("input-gradients")) report.inputGradients = await inputGradientNorms(spec, thetaHost, data);
  } finally {
    if (mask) space.dispose(mask);
  }
  return toPlain(report) as MeasureReport;
}

/** Per layer k: the top eigenvalue (Lanczos) and trace (Hutch++) of the Hessian block of layer k. */
async function perLayerCurvature<V>(
  objective: Objective<V>,
  hessian: SymmetricOperator<V>,
  theta: V,
  topK: number,
  traceSamples: number,
  seed: number,
  onProgress: (f: number, msg: string) => void,
): Promise<{ layer: number; parameters: number; topEigenvalue: number; residual: number; converged: boolean; trace: number; traceStderr: number; cost: MetricCost }[]> {
  const space = objective.space;
  const rows = [];
  for (let k = 0; k < objective.spec.layers.length; k++) {
    const hostMask = layerMask(objective.spec, [String(k)]);
    const mask = space.fromArray(hostMask);
    try {
      const op = restrictedOperator(hessian, mask);
      const { result, cost } = await withCost(objective, async () => {
        const eig = await lanczosEigenpairs(op, { k: Math.min(topK, 1), which: "LA", seed });
        const tr = await hutchPlusPlusTrace(op, { matvecs: Math.max(traceSamples, 3), seed });
        return { eig, tr };
      });
      rows.push({
        layer: k,
        parameters: hostMask.reduce((s, x) => s + x, 0),
        topEigenvalue: result.eig.eigenvalues[0],
        residual: result.eig.residuals[0],
        converged: result.eig.converged[0],
        trace: result.tr.estimate,
        traceStderr: result.tr.stderr,
        cost,
      });
    } finally {
      space.dispose(mask);
    }
    onProgress((k + 1) / objective.spec.layers.length, `layer ${k + 1}/${objective.spec.layers.length}`);
  }
  return rows;
}
