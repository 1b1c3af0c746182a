/**
 * Relative flatness (Petzka, Kamp, Adilova, Sminchisescu, Boley, "Relative flatness and
 * generalization", NeurIPS 2021), for EVERY layer (their code, kampmichael/
 * RelativeFlatnessAndGeneralization `calculateNeuronwiseHessians_fc_layer`, does one chosen layer).
 *
 * For layer l with weight W = W_l [out, in] (rows w_s, one per output unit s, PyTorch layout):
 *   kappa_l = sum_{s,s'} <w_s, w_s'> Tr(H_{s,s'}),
 * H_{s,s'} the [in, in] block of the loss Hessian between rows s and s' of W_l (the full-dataset
 * mean loss of the objective). With G = W Wᵀ and H_l the Hessian block of W_l in the row-major
 * (s, i) order, kappa_l = Tr(H_l (G ⊗ I_in)). Conventions: weights only (biases are not part of
 * the measure); no weight-decay term (their code adds 2 lambda_wd ||w_s||² on the diagonal).
 *
 * Computation: factor G = R Rᵀ (R = W when in <= out, else a Cholesky factor of G, [out, r],
 * r = min(in, out)), so kappa_l = Tr((Rᵀ ⊗ I) H_l (R ⊗ I)) = sum over columns v of (R ⊗ I) of
 * vᵀ H v. Every direction v is built on the host from theta (read back once) and uploaded; only
 * the scalars vᵀ H v come back (hvpBlock in blocks, dot on the device).
 *  - exact: the r·in columns v = R[:, j] ⊗ e_i (r·in HVPs);
 *  - stochastic (Hutchinson, seeded Rademacher Z in {±1}^{r x in}): v = vec(R Z), E[vᵀ H v] = kappa_l,
 *    with the standard error of the sample mean.
 * The exact form is used when r·in <= exactLimit unless `exact` says otherwise.
 *
 * Invariance (float64-checked in test/metrics/invariant.test.ts): for a function-preserving
 * diagonal map theta' = D theta, H(theta') = D^-1 H(theta) D^-1 exactly (the map is a global
 * symmetry of L). Under T_alpha, W_l -> alpha_l W_l: H_l -> H_l / alpha_l², G -> alpha_l² G, so every
 * kappa_l is invariant. Under neuron-wise rescaling of the units OUTPUT by layer l (rows of W_l
 * times c): H_l -> (C^-1 ⊗ I) H_l (C^-1 ⊗ I), G -> C G C, so kappa_l is invariant (cyclic trace).
 * But rescaling the units FEEDING layer l (columns of W_l divided by c) gives Tr(H_l (G' ⊗ C²)) with
 * G' = W C^-2 Wᵀ, which differs in general: rescaling hidden layer k keeps kappa_k but changes
 * kappa_{k+1}, hence also the sum over layers. This is Petzka et al.'s invariance (neurons of the
 * measured layer, its feature representation phi fixed), not invariance to every rescaling.
 *
 * Convolutions: the rows w_s are the filters W[s, :, :, :] (one per output channel, flattened over
 * in/groups·kh·kw; see weightBlocks), i.e. kappa_l = Tr(H_l (G ⊗ I)) on the kernel's matrix view,
 * summed over the channel groups of a grouped convolution. This is the formula applied to the
 * weight-shared layer (Petzka et al.'s theory is stated for fully connected layers); the two
 * invariances above carry over with the same proof (T_alpha scales the kernel, rescaling output
 * channel s scales filter s, and H transforms as D^-1 H D^-1).
 */
import { InputError } from "../errors.ts";
import { isConv, type ModelSpec, parameterLayout, selectLayers, weightShape } from "../model.ts";
import type { Objective } from "../objective.ts";
import { Rng } from "../random.ts";
import { type MetricCost, withCost } from "./cost.ts";

/**
 * The weight of layer k as matrices W [rows, cols], one per channel group, each contiguous in theta
 * at `offset`: a linear layer's [out, in] (one block); a convolution's filters W[o, :, :, :]
 * flattened to [out/groups, in/groups·kh·kw] per group (the "matrix view" of a conv kernel, rows =
 * output channels, columns = (input channel, kernel tap); a grouped convolution is block diagonal
 * in the full [out, in·kh·kw] view, and the measures below decouple over its blocks).
 */
export function weightBlocks(spec: ModelSpec, k: number): { offset: number; rows: number; cols: number }[] {
  const l = spec.layers[k];
  const w = parameterLayout(spec).layers[k].weightOffset;
  const shape = weightShape(l);
  const cols = shape.slice(1).reduce((a, b) => a * b, 1);
  const groups = isConv(l) ? l.groups : 1;
  const rows = shape[0] / groups;
  return Array.from({ length: groups }, (_, g) => ({ offset: w + g * rows * cols, rows, cols }));
}

/** Options of relativeFlatness. */
export interface RelativeFlatnessOptions {
  /** Layers to measure (0-based Linear index); default all. */
  layers?: number[];
  /** true: exact for every layer; false: Hutchinson for every layer; default: exact when r·in <= exactLimit. */
  exact?: boolean;
  /** Largest r·in (HVPs) for which a layer is computed exactly when `exact` is not given (default 512). */
  exactLimit?: number;
  /** Hutchinson samples per stochastic layer (default 64). */
  samples?: number;
  /** HVP directions per hvpBlock call (default 16). */
  blockSize?: number;
  /** Seed of the Rademacher probes (default 0; each layer draws its own stream). */
  seed?: number;
}

/** Relative flatness kappa_l of one layer (Petzka et al. 2021). */
export interface LayerRelativeFlatness {
  /** 0-based Linear layer index l. */
  layer: number;
  /** kappa_l = sum_{s,s'} <w_s, w_s'> Tr(H_{s,s'}) (estimated or exact). */
  value: number;
  /** 0 for the exact form. */
  stderr: number;
  /** Whether it was computed exactly (r·in HVPs) or by Hutchinson. */
  exact: boolean;
  /** HVP directions spent on this layer. */
  directions: number;
}

/** Relative flatness (Petzka, Kamp, Adilova, Sminchisescu, Boley, NeurIPS 2021) of the measured layers and their sum. */
export interface RelativeFlatnessResult {
  /** Per measured layer, in the order asked. */
  layers: LayerRelativeFlatness[];
  /** sum of kappa_l over the measured layers. */
  total: number;
  /** sqrt of the sum of squared per-layer standard errors (independent seeds per layer). */
  totalStderr: number;
  /** Passes and wall time of the computation. */
  cost: MetricCost;
}

/**
 * R with G = W Wᵀ = R Rᵀ, row-major [out, r]: W itself when in <= out, else the lower Cholesky
 * factor of G (a pivot below 1e-13·max diag(G) zeroes its column: the rank-deficient case).
 */
export function gramFactor(w: Float64Array, out: number, inF: number): { r: number; factor: Float64Array } {
  if (inF <= out) return { r: inF, factor: Float64Array.from(w) };
  const g = new Float64Array(out * out);
  for (let s = 0; s < out; s++) {
    for (let t = 0; t <= s; t++) {
      let acc = 0;
      for (let i = 0; i < inF; i++) acc += w[s * inF + i] * w[t * inF + i];
      g[s * out + t] = acc;
      g[t * out + s] = acc;
    }
  }
  let maxDiag = 0;
  for (let s = 0; s < out; s++) maxDiag = Math.max(maxDiag, g[s * out + s]);
  const tol = 1e-13 * maxDiag;
  const L = new Float64Array(out * out);
  for (let j = 0; j < out; j++) {
    let d = g[j * out + j];
    for (let k = 0; k < j; k++) d -= L[j * out + k] * L[j * out + k];
    if (d <= tol) continue; // column j stays zero
    const ljj = Math.sqrt(d);
    L[j * out + j] = ljj;
    for (let i = j + 1; i < out; i++) {
      let acc = g[i * out + j];
      for (let k = 0; k < j; k++) acc -= L[i * out + k] * L[j * out + k];
      L[i * out + j] = acc / ljj;
    }
  }
  return { r: out, factor: L };
}

/** sum_j vⱼᵀ H vⱼ for host-built directions, hvpBlock in blocks; returns the per-direction values. */
export async function quadraticForms<V>(
  objective: Objective<V>,
  theta: V,
  count: number,
  build: (j: number, into: Float64Array) => void,
  blockSize: number,
): Promise<Float64Array> {
  const space = objective.space;
  const values = new Float64Array(count);
  const host = new Float64Array(space.dim);
  for (let start = 0; start < count; start += blockSize) {
    const m = Math.min(blockSize, count - start);
    const vs: V[] = [];
    const outs: V[] = [];
    try {
      for (let j = 0; j < m; j++) {
        host.fill(0);
        build(start + j, host);
        vs.push(space.fromArray(host));
        outs.push(space.zeros());
      }
      await objective.hvpBlock(theta, vs, outs);
      for (let j = 0; j < m; j++) values[start + j] = await space.dot(vs[j], outs[j]);
    } finally {
      for (const v of vs) space.dispose(v);
      for (const o of outs) space.dispose(o);
    }
  }
  return values;
}

/** Relative flatness kappa_l (Petzka et al. 2021) of every requested layer, exact or by Hutchinson (see the module comment); invariant under T_alpha (Dinh et al. 2017 Definition 5) and neuron-wise rescaling of the measured layer. */
export async function relativeFlatness<V>(
  objective: Objective<V>,
  theta: V,
  options: RelativeFlatnessOptions = {},
): Promise<RelativeFlatnessResult> {
  const spec = objective.spec;
  const layout = parameterLayout(spec);
  const selected = selectLayers(spec, options.layers, "relative flatness");
  const exactLimit = options.exactLimit ?? 512;
  const samples = options.samples ?? 64;
  const blockSize = Math.max(1, Math.floor(options.blockSize ?? 16));
  if (!(samples >= 2)) throw new InputError(`relative flatness: need at least 2 Hutchinson samples, got ${samples}`);
  const seed = options.seed ?? 0;

  const { result, cost } = await withCost(objective, async () => {
    const host = await objective.space.toArray(theta);
    const layers: LayerRelativeFlatness[] = [];
    for (const k of selected) {
      // A grouped convolution is block diagonal: kappa_l is the sum over its groups' blocks.
      let value = 0, variance = 0, directions = 0, allExact = true;
      for (const [g, block] of weightBlocks(spec, k).entries()) {
        const { offset: off, rows: out, cols: inF } = block;
        const w = host.subarray(off, off + out * inF);
        const { r, factor } = gramFactor(w, out, inF);
        const exact = options.exact ?? r * inF <= exactLimit;
        if (exact) {
          // Direction (j, i): V[s, i] = R[s, j], zero elsewhere.
          const vals = await quadraticForms(objective, theta, r * inF, (idx, into) => {
            const j = Math.floor(idx / inF);
            const i = idx % inF;
            for (let s = 0; s < out; s++) into[off + s * inF + i] = factor[s * r + j];
          }, blockSize);
          value += vals.reduce((a, b) => a + b, 0);
          directions += r * inF;
        } else {
          allExact = false;
          const rng = new Rng(seed + 7919 * (k + 1) + 104729 * g);
          const z = new Float64Array(r * inF);
          const vals = await quadraticForms(objective, theta, samples, (_j, into) => {
            for (let q = 0; q < z.length; q++) z[q] = rng.sign();
            for (let s = 0; s < out; s++) {
              for (let i = 0; i < inF; i++) {
                let acc = 0;
                for (let j = 0; j < r; j++) acc += factor[s * r + j] * z[j * inF + i];
                into[off + s * inF + i] = acc;
              }
            }
          }, blockSize);
          const mean = vals.reduce((a, b) => a + b, 0) / samples;
          value += mean;
          variance += vals.reduce((a, b) => a + (b - mean) ** 2, 0) / (samples - 1) / samples;
          directions += samples;
        }
      }
      layers.push({ layer: k, value, stderr: Math.sqrt(variance), exact: allExact, directions });
    }
    const total = layers.reduce((a, l) => a + l.value, 0);
    const totalStderr = Math.sqrt(layers.reduce((a, l) => a + l.stderr ** 2, 0));
    return { layers, total, totalStderr };
  });
  return { ...result, cost };
}
