/**
 * Page 3's transforms and measurement options, DOM-free so the test recomputes the page's numbers
 * in Node with the float64 reference (ReferenceObjective + measureMetrics), i.e.
 * `flatness measure --metrics spectrum,density --top-k K --density-runs R --density-steps S --seed 0`
 * on the trained model and on the transformed one.
 */
import type { MeasureOptions } from "../../src/metrics/suite.ts";
import { layerUnits, type ModelSpec } from "../../src/model.ts";
import { homogeneousAlphaScale } from "../../src/transforms/alphaScale.ts";
import { neuronScale, randomNeuronFactors } from "../../src/transforms/neuronScale.ts";

export type SpectrumTransformKind = "alpha" | "theorem5" | "neuron";

export interface SpectrumTransform {
  kind: SpectrumTransformKind;
  /** log10 of the transform's parameter: a (alpha), beta (theorem5) or the spread s (neuron). */
  log10: number;
}

/** Seed of the neuron factors (the spread scales them), as page 1. */
export const NEURON_SEED = 7;

export const TRANSFORM_INFO: Record<SpectrumTransformKind, { label: string; parameter: string; min: number; max: number; initial: number }> = {
  alpha: { label: "T_α: α₁ = a, α_K = 1/a (Theorem 4)", parameter: "a", min: -2, max: 2, initial: -1 },
  theorem5: { label: "T_α: α_k = 1/β for k < K, α_K = β^(K−1) (Theorem 5)", parameter: "β", min: -1, max: 1.5, initial: 0.5 },
  neuron: { label: "neuron-wise rescaling of hidden layer 1, c_j ∈ [1/s, s]", parameter: "s", min: 0, max: 2, initial: 1 },
};

/** The alphas of an alpha-type transform (null for neuron rescaling). */
export function transformAlphas(spec: ModelSpec, t: SpectrumTransform): number[] | null {
  const K = spec.layers.length;
  const p = 10 ** t.log10;
  if (t.kind === "alpha") return Array.from({ length: K }, (_, k) => (k === 0 ? p : k === K - 1 ? 1 / p : 1));
  if (t.kind === "theorem5") return Array.from({ length: K }, (_, k) => (k < K - 1 ? 1 / p : p ** (K - 1)));
  return null;
}

/** The neuron factors of a neuron-type transform (null otherwise, or for s = 1). */
export function transformFactors(spec: ModelSpec, t: SpectrumTransform): number[] | null {
  if (t.kind !== "neuron" || t.log10 <= 0) return null;
  return randomNeuronFactors(layerUnits(spec.layers[0]), NEURON_SEED, 10 ** t.log10);
}

/** The transformed parameters: the same function, another point of parameter space. */
export function applySpectrumTransform(spec: ModelSpec, theta: Float64Array, t: SpectrumTransform): Float64Array {
  const alphas = transformAlphas(spec, t);
  if (alphas) {
    // Theorem 5's alphas multiply to 1 only up to rounding: renormalize the last one.
    const head = alphas.slice(0, -1);
    const last = 1 / head.reduce((s, a) => s * a, 1);
    return homogeneousAlphaScale(spec, theta, [...head, last]);
  }
  const factors = transformFactors(spec, t);
  return factors ? neuronScale(spec, theta, 0, factors) : Float64Array.from(theta);
}

/** The command that writes the transformed model (as the page's). */
export function transformCommand(spec: ModelSpec, t: SpectrumTransform): string {
  const alphas = transformAlphas(spec, t);
  if (alphas) {
    const head = alphas.slice(0, -1);
    const all = [...head, 1 / head.reduce((s, a) => s * a, 1)];
    return `npx flatness transform alpha --model model.json --alphas ${all.map((a) => String(a)).join(",")} --out after.json`;
  }
  const factors = transformFactors(spec, t);
  return factors
    ? `npx flatness transform neuron --model model.json --layer 0 --factors ${factors.join(",")} --out after.json`
    : "cp model.json after.json";
}

export interface SpectrumSettings {
  k: number;
  runs: number;
  steps: number;
  seed: number;
}

/** Defaults small enough for software WebGPU: top 5, SLQ 4 runs x 40 steps (165 HVPs a model). */
export const DEFAULT_SPECTRUM_SETTINGS: SpectrumSettings = { k: 5, runs: 4, steps: 40, seed: 0 };

export function spectrumMeasureOptions(s: SpectrumSettings): MeasureOptions {
  return { metrics: ["spectrum", "density"], topK: s.k, densityRuns: s.runs, densitySteps: s.steps, seed: s.seed };
}

export function spectrumCliArgs(s: SpectrumSettings): string {
  return `--metrics spectrum,density --top-k ${s.k} --density-runs ${s.runs} --density-steps ${s.steps} --seed ${s.seed}`;
}
