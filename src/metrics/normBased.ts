/**
 * Norm-based capacity measures proposed as answers to Dinh et al. (2017): the l_p path norm
 * (Neyshabur, Salakhutdinov, Srebro 2015) and the Fisher-Rao norm (Liang, Poggio, Rakhlin,
 * Stokes 2019). Both are invariant under T_alpha and under neuron-wise rescaling, biases included
 * (see each function). Host float64 helpers shared by the other metric files live here too: a
 * forward pass with its ReLU masks, per-sample loss derivatives, and the exact tangent (R-op)
 * forward pass f'(theta)[v].
 */
import type { Dataset } from "../data.ts";
import { InputError, assertFinite } from "../errors.ts";
import { type LossKind, type ModelSpec, negativeSlope, outputWidth, parameterLayout, validateSpec } from "../model.ts";
import type { Objective } from "../objective.ts";
import { lossValueAndGradient } from "../reference/losses.ts";
import { type MetricCost, withCost } from "./cost.ts";

/** Cost of a metric computed on the host only (no objective passes): wall time only. */
export async function hostCost<T>(work: () => T | Promise<T>): Promise<{ result: T; cost: MetricCost }> {
  const t0 = performance.now();
  const result = await work();
  return { result, cost: { hvps: 0, gradients: 0, forwards: 0, wallMs: performance.now() - t0 } };
}

function checkTheta(spec: ModelSpec, theta: ArrayLike<number>, label = "theta"): void {
  validateSpec(spec);
  const dim = parameterLayout(spec).dim;
  if (theta.length !== dim) throw new InputError(`${label} has ${theta.length} entries, the model has ${dim} parameters`);
  assertFinite(label, theta);
}

/** Per layer k: z_k [n, out_k] and its input a_k [n, in_k] (a[0] = x), float64, phi'(0) = slope as the engines. */
export interface HostForward {
  n: number;
  z: Float64Array[];
  a: Float64Array[];
}

export function hostForward(spec: ModelSpec, theta: ArrayLike<number>, x: ArrayLike<number>): HostForward {
  checkTheta(spec, theta);
  const d = spec.layers[0].inFeatures;
  if (x.length % d !== 0) throw new InputError(`x has ${x.length} values, not a multiple of the ${d} input features`);
  const n = x.length / d;
  const layout = parameterLayout(spec);
  const slope = negativeSlope(spec.activation);
  const a: Float64Array[] = [Float64Array.from(x)];
  const z: Float64Array[] = [];
  spec.layers.forEach((l, k) => {
    const { weightOffset: w, biasOffset: b } = layout.layers[k];
    const zk = new Float64Array(n * l.outFeatures);
    for (let s = 0; s < n; s++) {
      for (let o = 0; o < l.outFeatures; o++) {
        let acc = b >= 0 ? theta[b + o] : 0;
        for (let i = 0; i < l.inFeatures; i++) acc += a[k][s * l.inFeatures + i] * theta[w + o * l.inFeatures + i];
        zk[s * l.outFeatures + o] = acc;
      }
    }
    z.push(zk);
    if (k + 1 < spec.layers.length) a.push(zk.map((v) => (v > 0 ? v : slope * v)));
  });
  return { n, z, a };
}

/**
 * d/dt f_{theta + t v}(x) at t = 0 for every sample (row-major [n, C]), exactly, by the R-operator
 * forward pass (Pearlmutter 1994) in float64:
 *   Rz_k = Ra_k W_k^T + a_k V_k^T + c_k,   Ra_{k+1} = phi'(z_k) ⊙ Rz_k,   Ra_0 = 0,
 * with v = (V_k, c_k) in the flat layout. Also returns the outputs f(x) themselves.
 * With v = theta this is <theta, grad_theta f(x)>, the quantity in the Fisher-Rao norm.
 */
export function directionalOutputDerivative(
  spec: ModelSpec,
  theta: ArrayLike<number>,
  v: ArrayLike<number>,
  x: ArrayLike<number>,
): { outputs: Float64Array; tangent: Float64Array } {
  checkTheta(spec, v, "v");
  const fw = hostForward(spec, theta, x);
  const layout = parameterLayout(spec);
  const slope = negativeSlope(spec.activation);
  const K = spec.layers.length;
  let ra = new Float64Array(fw.n * spec.layers[0].inFeatures);
  let rz = new Float64Array(0);
  for (let k = 0; k < K; k++) {
    const l = spec.layers[k];
    const { weightOffset: w, biasOffset: b } = layout.layers[k];
    rz = new Float64Array(fw.n * l.outFeatures);
    for (let s = 0; s < fw.n; s++) {
      for (let o = 0; o < l.outFeatures; o++) {
        let acc = b >= 0 ? v[b + o] : 0;
        for (let i = 0; i < l.inFeatures; i++) {
          const idx = s * l.inFeatures + i;
          acc += ra[idx] * theta[w + o * l.inFeatures + i] + fw.a[k][idx] * v[w + o * l.inFeatures + i];
        }
        rz[s * l.outFeatures + o] = acc;
      }
    }
    if (k + 1 < K) ra = rz.map((r, idx) => (fw.z[k][idx] > 0 ? r : slope * r));
  }
  return { outputs: fw.z[K - 1], tangent: rz };
}

/**
 * d l_i / d f for every sample, [n, C]: the loss of ONE sample, without the 1/N of the mean loss
 * (so N times the engines' delta): ce p - onehot(y); mse 2 (f - t) / C; logistic sigmoid(f) - y.
 */
export function perSampleLossGradient(kind: LossKind, outputs: Float64Array, data: Dataset, c: number): Float64Array {
  if (outputs.length !== data.n * c) throw new InputError(`outputs have ${outputs.length} values, expected ${data.n} x ${c}`);
  const { delta } = lossValueAndGradient(kind, outputs, data, c);
  for (let i = 0; i < delta.length; i++) delta[i] *= data.n;
  return delta;
}

// ---------------------------------------------------------------------------------------------

/** The l_p path norm (Neyshabur, Salakhutdinov, Srebro 2015). */
export interface PathNormResult {
  /** The exponent p used. */
  p: number;
  /** phi_p = (sum over paths of prod |w|^p)^(1/p). */
  value: number;
  /** phi_p^p, the sum over paths itself (Jiang et al.'s "path.norm" for p = 2 reports this). */
  sumOverPaths: number;
  /** Wall time (computed on the host: no objective passes). */
  cost: MetricCost;
}

/**
 * l_p path norm (Neyshabur et al., "Norm-based capacity control in neural networks", COLT 2015;
 * Jiang et al. 2020, measure #44; bneyshabur/generalization-bounds `lp_path_norm`):
 *   phi_p(theta) = ( sum over paths P of prod_{e in P} |w_e|^p )^(1/p),
 * computed as one forward pass of the net with every parameter replaced by |.|^p on an all-ones
 * input, summing all outputs (no activation needed: every value is >= 0, so ReLU and leaky ReLU
 * are the identity there; the measure does not depend on the activation).
 * Convention for biases (as that code, which raises biases to |.|^p too): bias b_k[o] is the
 * weight of a path that STARTS at unit o of layer k (an edge from a constant-1 input) and then
 * runs through the following layers to an output.
 * Invariances: every path through hidden unit j enters it by an incoming weight or starts at its
 * bias (both x c_j) and leaves it by an outgoing weight (/ c_j), so phi_p is invariant under
 * neuron-wise rescaling WITH biases; under T_alpha an input path collects prod_k alpha_k = 1 and a
 * path starting at b_k collects (prod_{j<=k} alpha_j)(prod_{j>k} alpha_j) = 1 (the Appendix B bias
 * scaling), so it is invariant under T_alpha with biases too.
 */
export function pathNorm(spec: ModelSpec, theta: Float64Array, options: { p?: number } = {}): Promise<PathNormResult> {
  const p = options.p ?? 2;
  if (!(p > 0) || !Number.isFinite(p)) throw new InputError(`path norm: p must be positive and finite, got ${p}`);
  return hostCost(() => {
    checkTheta(spec, theta);
    const layout = parameterLayout(spec);
    let act = new Float64Array(spec.layers[0].inFeatures).fill(1);
    spec.layers.forEach((l, k) => {
      const { weightOffset: w, biasOffset: b } = layout.layers[k];
      const next = new Float64Array(l.outFeatures);
      for (let o = 0; o < l.outFeatures; o++) {
        let acc = b >= 0 ? Math.abs(theta[b + o]) ** p : 0;
        for (let i = 0; i < l.inFeatures; i++) acc += Math.abs(theta[w + o * l.inFeatures + i]) ** p * act[i];
        next[o] = acc;
      }
      act = next;
    });
    const sumOverPaths = act.reduce((s, v) => s + v, 0);
    return { p, value: sumOverPaths ** (1 / p), sumOverPaths };
  }).then(({ result, cost }) => ({ ...result, cost }));
}

// ---------------------------------------------------------------------------------------------

/** The Fisher-Rao norm (Liang, Poggio, Rakhlin, Stokes 2019), empirical Fisher. */
export interface FisherRaoResult {
  /** ||theta||_fr^2 = E_i[ <theta, grad_theta l_i>^2 ]. */
  squared: number;
  /** ||theta||_fr. */
  value: number;
  /** K^2 E_i[<dl_i/df, f>^2] (Liang et al.'s closed form); equals `squared` exactly only for bias-free nets. */
  closedForm: number;
  /** Whether the net has no biases (closedForm then equals squared). */
  biasFree: boolean;
  /** <theta, grad_theta l_i> per sample. */
  perSample: Float64Array;
  /** Passes and wall time of the computation. */
  cost: MetricCost;
}

/**
 * Fisher-Rao norm (Liang, Poggio, Rakhlin, Stokes, "Fisher-Rao metric, geometry, and complexity of
 * neural networks", AISTATS 2019, arXiv:1711.01530):
 *   ||theta||_fr^2 = <theta, I(theta) theta> = E_i[ <theta, grad_theta l_i>^2 ],
 * with the EMPIRICAL Fisher I = E_i[grad l_i grad l_i^T] over the dataset with its true labels (as
 * their experiments and kampmichael/RelativeFlatnessAndGeneralization; not the model Fisher with
 * y ~ p_theta), l_i the loss of ONE sample in the objective's convention (ce; mse with its 1/C
 * mean over outputs; logistic).
 * By the chain rule <theta, grad_theta l_i> = <dl_i/df, <theta, grad_theta f(x_i)>>, and
 * <theta, grad_theta f(x)> = d/dt f_{(1+t) theta}(x) at t = 0.
 *  - Bias-free ReLU / leaky-ReLU nets are positively homogeneous of degree K (= L + 1 in their
 *    notation) in theta, so <theta, grad_theta f> = K f and ||theta||_fr^2 = K^2 E[<dl/df, f>^2]
 *    (their Theorem; for ce <dl/df, f> = <softmax(f), f> - f_y). Computed from objective.outputs
 *    only (device-side forward, outputs read back as the engine provides them).
 *  - With biases the identity fails: a bias of layer k enters f with degree K - k (0-based k), so
 *    <theta, grad f> = K f - sum_k (k-dependent bias contributions). We then compute the general
 *    form exactly, <theta, grad f(x_i)> by the float64 R-op forward pass with v = theta
 *    (directionalOutputDerivative; theta is read back once), and dl_i/df from objective.outputs.
 * Invariance (with or without biases): for any function-preserving diagonal map theta' = D theta
 * (T_alpha with Appendix-B bias scaling, neuron-wise rescaling) grad_{theta'} l = D^-1 grad_theta l,
 * so <theta', grad_{theta'} l> = <theta, grad_theta l> sample by sample.
 */
export async function fisherRaoNorm<V>(objective: Objective<V>, theta: V, data: Dataset): Promise<FisherRaoResult> {
  const spec = objective.spec;
  if (data.n !== objective.sampleCount) {
    throw new InputError(`Fisher-Rao norm: the data has ${data.n} samples but the objective has ${objective.sampleCount}`);
  }
  const { result, cost } = await withCost(objective, async () => {
    const c = outputWidth(spec);
    const K = spec.layers.length;
    const biasFree = spec.layers.every((l) => !l.bias);
    const f = await objective.outputs(theta);
    const g = perSampleLossGradient(objective.lossKind, f, data, c);
    let tangent: Float64Array;
    if (biasFree) {
      tangent = f.map((v) => K * v);
    } else {
      const host = await objective.space.toArray(theta);
      tangent = directionalOutputDerivative(spec, host, host, data.x).tangent;
    }
    const perSample = new Float64Array(data.n);
    let squared = 0;
    let closed = 0;
    for (let s = 0; s < data.n; s++) {
      let t = 0;
      let h = 0;
      for (let j = 0; j < c; j++) {
        t += g[s * c + j] * tangent[s * c + j];
        h += g[s * c + j] * f[s * c + j];
      }
      perSample[s] = t;
      squared += t * t;
      closed += h * h;
    }
    squared /= data.n;
    return { squared, value: Math.sqrt(squared), closedForm: (K * K * closed) / data.n, biasFree, perSample };
  });
  return { ...result, cost };
}
