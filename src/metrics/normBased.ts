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
import { convOutputShape, inputWidth, isConv, type LossKind, type ModelSpec, negativeSlope, outputWidth, parameterLayout, validateSpec } from "../model.ts";
import type { Objective } from "../objective.ts";
import { lossValueAndGradient } from "../reference/losses.ts";
import { type LayerMap, layerMap } from "../reference/layerMaps.ts";
import { Pooling } from "../reference/pooling.ts";
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

/**
 * Per layer k: z_k [n, size of z_k] and its input a_k [n, in_k] (a[0] = x; a[k+1] = P_k(phi(z_k)),
 * P_k the layer's pooling if any), float64, phi'(0) = slope as the engines. Convolutions and
 * pooling run the reference engine's maps (src/reference/layerMaps.ts, src/reference/pooling.ts).
 */
export interface HostForward {
  n: number;
  z: Float64Array[];
  a: Float64Array[];
  /** Per hidden layer with max pooling: the arg-max (index into phi(z_k), batch-major) of every pooled output; null otherwise. */
  argmax: (Int32Array | null)[];
}

/** The reference engine's linear map and pooling of every layer of a spec. */
function hostMaps(spec: ModelSpec): { maps: LayerMap[]; pools: (Pooling | null)[] } {
  const layout = parameterLayout(spec);
  return {
    maps: spec.layers.map((l, k) => layerMap(l, layout.layers[k].weightOffset, layout.layers[k].biasOffset)),
    pools: spec.layers.map((l) => {
      if (!isConv(l) || !l.pool) return null;
      const [c, h, w] = convOutputShape(l);
      return new Pooling(l.pool, c, h, w);
    }),
  };
}

function asF64(v: ArrayLike<number>): Float64Array {
  return v instanceof Float64Array ? v : Float64Array.from(v);
}

export function hostForward(spec: ModelSpec, theta: ArrayLike<number>, x: ArrayLike<number>): HostForward {
  checkTheta(spec, theta);
  const d = inputWidth(spec);
  if (x.length % d !== 0) throw new InputError(`x has ${x.length} values, not a multiple of the ${d} input features`);
  const n = x.length / d;
  const t = asF64(theta);
  const { maps, pools } = hostMaps(spec);
  const slope = negativeSlope(spec.activation);
  const a: Float64Array[] = [Float64Array.from(x)];
  const z: Float64Array[] = [];
  const argmax: (Int32Array | null)[] = [];
  spec.layers.forEach((_, k) => {
    const zk = maps[k].forward(t, a[k], n);
    z.push(zk);
    if (k + 1 === spec.layers.length) return;
    const h = zk.map((v) => (v > 0 ? v : slope * v));
    const pool = pools[k];
    if (pool) {
      const r = pool.forward(h, n);
      a.push(r.out);
      argmax.push(r.argmax);
    } else {
      a.push(h);
      argmax.push(null);
    }
  });
  return { n, z, a, argmax };
}

/**
 * Back-propagates one output-space covector per sample (row-major [n, C]) to the input:
 * covector_s · df(x_s)/dx for every sample, row-major [n, d], through the ReLU masks and the
 * poolings recorded in `fw` (hostForward of the same spec, theta and x).
 */
export function hostBackToInput(spec: ModelSpec, theta: ArrayLike<number>, fw: HostForward, covectors: Float64Array): Float64Array {
  const t = asF64(theta);
  const { maps, pools } = hostMaps(spec);
  const slope = negativeSlope(spec.activation);
  let g = covectors;
  for (let k = spec.layers.length - 1; k >= 0; k--) {
    g = maps[k].backProject(t, g, fw.n);
    if (k === 0) break;
    const pool = pools[k - 1];
    if (pool) g = pool.transpose(g, fw.argmax[k - 1], fw.n);
    const zPrev = fw.z[k - 1];
    for (let i = 0; i < g.length; i++) if (!(zPrev[i] > 0)) g[i] *= slope;
  }
  return g;
}

/**
 * d/dt f_{theta + t v}(x) at t = 0 for every sample (row-major [n, C]), exactly, by the R-operator
 * forward pass (Pearlmutter 1994) in float64:
 *   Rz_k = Ra_k W_k^T + a_k V_k^T + c_k,   Ra_{k+1} = P_k(phi'(z_k) ⊙ Rz_k),   Ra_0 = 0,
 * with v = (V_k, c_k) in the flat layout (P_k: the pooling's linear map at the recorded arg-max).
 * Also returns the outputs f(x) themselves.
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
  const t = asF64(theta);
  const vv = asF64(v);
  const { maps, pools } = hostMaps(spec);
  const slope = negativeSlope(spec.activation);
  const K = spec.layers.length;
  let ra: Float64Array = new Float64Array(fw.n * inputWidth(spec));
  let rz: Float64Array = new Float64Array(0);
  for (let k = 0; k < K; k++) {
    rz = maps[k].tangent(t, vv, fw.a[k], ra, fw.n);
    if (k + 1 < K) {
      const rh = rz.map((r, idx) => (fw.z[k][idx] > 0 ? r : slope * r));
      const pool = pools[k];
      ra = pool ? pool.tangent(rh, fw.argmax[k], fw.n) : rh;
    }
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
 * Convolutional nets: the same forward pass, as bneyshabur/generalization-bounds `lp_path_norm`
 * runs the model itself with every parameter replaced by |.|^p on torch.ones(input_size). Without
 * pooling, and with average pooling, it is the sum over the paths of the unrolled (weight-shared)
 * graph: a kernel weight appears on one edge per output position it touches, zero padding
 * contributes no path, and an average pooling is a fixed linear layer whose edges weigh 1/divisor
 * (not raised to p: it has no parameters). Max pooling passes each window's largest path sum, so
 * the value is that forward pass, not a sum over paths; it is still invariant under T_alpha and
 * channel-wise rescaling (a positive scale of a channel keeps its windows' arg-max).
 */
export function pathNorm(spec: ModelSpec, theta: Float64Array, options: { p?: number } = {}): Promise<PathNormResult> {
  const p = options.p ?? 2;
  if (!(p > 0) || !Number.isFinite(p)) throw new InputError(`path norm: p must be positive and finite, got ${p}`);
  return hostCost(() => {
    checkTheta(spec, theta);
    // |theta|^p through the net's own maps (biases included) on an all-ones input; every value is
    // >= 0, so the activation is the identity there and only the poolings are applied.
    const abs = theta.map((v) => Math.abs(v) ** p);
    const { maps, pools } = hostMaps(spec);
    let act: Float64Array = new Float64Array(inputWidth(spec)).fill(1);
    spec.layers.forEach((_, k) => {
      act = maps[k].forward(abs, act, 1);
      const pool = pools[k];
      if (pool && k + 1 < spec.layers.length) act = pool.forward(act, 1).out;
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
