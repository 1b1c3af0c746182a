/**
 * One number per metric for the invariance audit: the quantity a user would quote (the top
 * eigenvalue, the trace estimate, the sharpness value, ...), with its standard error where the
 * estimator has one and whether it is a logarithm (volume), which the audit compares by
 * difference rather than by ratio.
 */
import type { MetricName } from "../metrics/suite.ts";

export interface Headline {
  value: number;
  stderr: number;
  /** A natural logarithm: after / before is exp(after - before). */
  log: boolean;
  label: string;
}

type Report = Record<string, any>;

/** The headline number of `metric` in a measureMetrics report, or null when it has none. */
export function headline(metric: MetricName, r: Report): Headline | null {
  const h = (value: unknown, label: string, stderr: unknown = 0, log = false): Headline | null =>
    typeof value === "number" ? { value, stderr: typeof stderr === "number" ? stderr : 0, log, label } : null;
  switch (metric) {
    case "spectrum":
      return h(r.topEigenvalues?.[0], "top Hessian eigenvalue");
    case "trace":
      return h(r.trace?.estimate, "Hessian trace", r.trace?.stderr);
    case "smallest":
      return h(r.smallestEigenvalues?.eigenvalues?.[0], "smallest Hessian eigenvalue");
    case "power":
      return h(r.powerIteration?.eigenvalues?.[0], "largest-magnitude eigenvalue (power)");
    case "diagonal":
      return h(r.diagonal?.perTensor?.reduce((s: number, t: { sum: number }) => s + t.sum, 0), "diagonal sum");
    case "frobenius":
      return h(r.frobenius?.estimate, "||H||_F^2", r.frobenius?.stderr);
    case "density":
      return h(r.density ? Math.max(...(r.density.nodes as number[][]).flat()) : undefined, "largest SLQ node");
    case "per-layer":
      return h(r.perLayer ? Math.max(...r.perLayer.map((l: { topEigenvalue: number }) => l.topEigenvalue)) : undefined, "largest layer-block eigenvalue");
    case "epsilon-sharpness":
      return h(r.epsilonSharpness?.value, "epsilon-sharpness (Dinh)");
    case "keskar":
      return h(r.keskarSharpness?.value, "Keskar sharpness");
    case "keskar-subspace":
      return h(r.keskarSubspaceSharpness?.value, "Keskar subspace sharpness");
    case "volume":
      return h(r.volumeFlatness?.logVolume, "log volume flatness", r.volumeFlatness?.stderrLog, true);
    case "adaptive":
      return h(r.adaptiveSharpness?.value, "adaptive sharpness (worst)");
    case "adaptive-average":
      return h(r.adaptiveAverageSharpness?.value, "adaptive sharpness (average)", r.adaptiveAverageSharpness?.stderr);
    case "sam":
      return h(r.samSharpness?.value, "SAM sharpness");
    case "m-sharpness":
      return h(r.mSharpness?.value, "m-sharpness");
    case "fisher-rao":
      return h(r.fisherRaoNorm?.value, "Fisher-Rao norm");
    case "path-norm":
      return h(r.pathNorm?.value, "path norm");
    case "relative-flatness":
      return h(r.relativeFlatness?.total, "relative flatness", r.relativeFlatness?.totalStderr);
    case "normalized-sharpness":
      return h(r.normalizedSharpness?.total, "normalized sharpness");
    case "pac-bayes":
      return h(r.pacBayes?.flatness, "PAC-Bayes 1/sigma'^2");
    case "pac-bayes-magnitude":
      return h(r.pacBayesMagnitude?.flatness, "magnitude-aware PAC-Bayes 1/sigma'^2");
    case "pac-bayes-dr":
      return h(r.pacBayesDR?.bound, "Dziugaite-Roy PAC-Bayes bound");
    case "gradient-norms":
      return h(r.gradientNorms?.total, "gradient norm");
    case "input-gradients":
      return h(r.inputGradients?.mean, "input-gradient norm (mean)");
  }
}
