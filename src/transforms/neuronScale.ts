/**
 * Neuron-wise rescaling, the finest function-preserving symmetry of a rectified net (Dinh et al.
 * 2017, section 3; Neyshabur et al. 2015): for hidden unit j of hidden layer k and c_j > 0,
 *   row j of W_k and b_k[j]  ->  c_j times,      column j of W_{k+1}  ->  divided by c_j.
 * Unit j's pre-activation becomes c_j z_j, its activation phi(c_j z_j) = c_j phi(z_j) by non-negative
 * homogeneity (Definition 4), and W_{k+1} / c_j undoes it, so every output is unchanged. T_alpha
 * (./alphaScale.ts) is the special case of one factor per layer applied to every unit.
 *
 * The map is linear and diagonal, theta' = D theta, and L(D theta) = L(theta) for every theta, so
 *   grad L(D theta) = D^-1 grad L(theta),   H(D theta) = D^-1 H(theta) D^-1.
 * (In the paper's convention D_alpha = D^-1: H(T_alpha theta) = D_alpha H D_alpha.)
 *
 * Convolutions: the units of a conv layer are its output channels. Scaling channel j's filter
 * W_k[j, :, :, :] and bias b_k[j] by c_j scales its whole feature map by c_j, which survives the
 * activation and the pooling (max and average pooling are positively homogeneous); the next layer
 * divides the weights that read channel j by c_j: W_{k+1}[o, j', :, :] for the output channels o of
 * channel j's group (j' its index within the group) when it is a convolution, the columns of the
 * flattened channel-j map when it is linear.
 *
 * Layers are numbered as everywhere in this toolkit: 0-based Linear index k (tensors "2k.weight",
 * "2k.bias"); hidden layers are 0..K-2, layer K-1 is the linear output layer.
 */
import { InputError, assertFinite } from "../errors.ts";
import { type ModelSpec, isConv, layerOutputShape, layerUnits, parameterLayout } from "../model.ts";
import { Rng } from "../random.ts";

/**
 * Throws an InputError unless the hidden activation is positively homogeneous
 * (phi(c z) = c phi(z) for c > 0: ReLU, and leaky ReLU with any finite slope), the property every
 * function-preserving rescaling here (T_alpha, neuron-wise, the constructions) rests on.
 * `what` names the operation in the message.
 */
export function assertHomogeneous(spec: ModelSpec, what = "this transform"): void {
  const a = spec.activation as { kind?: string; slope?: number } | undefined;
  const kind = a?.kind;
  if (kind === "relu") return;
  if (kind === "leaky_relu" && Number.isFinite(a!.slope)) return;
  const name = kind === "leaky_relu" ? `leaky_relu with slope ${a!.slope}` : `'${kind ?? "none"}'`;
  throw new InputError(
    `${what} needs a positively homogeneous activation (phi(c z) = c phi(z) for c > 0: relu or leaky_relu); ` +
      `the model's activation is ${name}, for which rescaling would change the function`,
  );
}

/** Checks that `k` names a hidden layer (one whose units feed a next layer); returns its width. */
export function checkHiddenLayer(spec: ModelSpec, k: number, what = "neuron-wise rescaling"): number {
  const K = spec.layers.length;
  if (!Number.isInteger(k) || k < 0 || k >= K) {
    throw new InputError(`${what}: layer ${k} does not exist (the model has layers 0..${K - 1})`);
  }
  if (k === K - 1) {
    throw new InputError(
      K === 1
        ? `${what}: the model has no hidden layer (one ${isConv(spec.layers[0]) ? "conv2d" : "Linear"} layer: a linear model), so there is no hidden unit to rescale`
        : `${what}: layer ${k} is the linear output layer, which has no hidden units to rescale; hidden layers are 0..${K - 2}`,
    );
  }
  return layerUnits(spec.layers[k]);
}

function checkFactors(factors: ArrayLike<number>, count: number, k: number): void {
  if (factors.length !== count) {
    throw new InputError(`neuron-wise rescaling of layer ${k} needs ${count} factors (one per unit), got ${factors.length}`);
  }
  for (let j = 0; j < count; j++) {
    const c = factors[j];
    if (!Number.isFinite(c) || !(c > 0)) {
      throw new InputError(`neuron-wise rescaling: factor c_${j} of layer ${k} must be positive and finite, got ${c}`);
    }
  }
}

/**
 * The diagonal D of neuron-wise rescaling of hidden layer `k` by `factors` (one c_j > 0 per unit),
 * in the flat layout: theta' = D ⊙ theta, and H(theta') = D^-1 H(theta) D^-1.
 */
export function neuronScaleDiagonal(spec: ModelSpec, k: number, factors: ArrayLike<number>): Float64Array {
  assertHomogeneous(spec, "neuron-wise rescaling");
  const width = checkHiddenLayer(spec, k);
  checkFactors(factors, width, k);
  const layout = parameterLayout(spec);
  const d = new Float64Array(layout.dim).fill(1);
  const l = spec.layers[k];
  const next = spec.layers[k + 1];
  const { weightOffset: w, biasOffset: b } = layout.layers[k];
  const w2 = layout.layers[k + 1].weightOffset;
  // Unit j's incoming weights: row j of a linear W_k, or filter j (W_k[j, :, :, :]) of a convolution.
  const fanIn = isConv(l) ? (l.inChannels / l.groups) * l.kernel[0] * l.kernel[1] : l.inFeatures;
  for (let j = 0; j < width; j++) {
    const c = factors[j];
    d.fill(c, w + j * fanIn, w + (j + 1) * fanIn);
    if (b >= 0) d[b + j] = c;
  }
  // Unit j's outgoing weights, divided by c_j.
  if (isConv(next)) {
    // Channel j is input channel j of the next convolution: it reaches W_{k+1}[o, j mod cg, :, :]
    // for the output channels o of its group (cg = in/groups input channels per group).
    const cg = next.inChannels / next.groups;
    const og = next.outChannels / next.groups;
    const area = next.kernel[0] * next.kernel[1];
    for (let j = 0; j < width; j++) {
      const group = Math.floor(j / cg);
      for (let o = group * og; o < (group + 1) * og; o++) {
        const at = w2 + (o * cg + (j % cg)) * area;
        d.fill(1 / factors[j], at, at + area);
      }
    }
  } else {
    // A linear W_{k+1} reads layer k's output flattened: a linear layer's unit j is column j; a
    // convolution's channel j (pooled by max or average, both positively homogeneous, so the pooled
    // map of channel j scales by c_j too) is the block of columns j·H'·W' .. (j+1)·H'·W' - 1.
    const shape = layerOutputShape(l);
    const block = isConv(l) ? shape[1] * shape[2] : 1;
    for (let j = 0; j < width; j++) {
      for (let o = 0; o < next.outFeatures; o++) {
        const at = w2 + o * next.inFeatures + j * block;
        d.fill(1 / factors[j], at, at + block);
      }
    }
  }
  return d;
}

/** Neuron-wise rescaling of hidden layer `k`: a new parameter vector with the same function. */
export function neuronScale(spec: ModelSpec, theta: Float64Array, k: number, factors: ArrayLike<number>): Float64Array {
  const d = neuronScaleDiagonal(spec, k, factors);
  if (theta.length !== d.length) throw new InputError(`theta has ${theta.length} entries, the model has ${d.length} parameters`);
  assertFinite("theta", theta);
  return theta.map((t, i) => t * d[i]);
}

/**
 * `count` seeded factors, log-uniform in [1/spread, spread] (spread > 1; default 10): random
 * neuron-wise rescalings for tests and `flatness transform neuron --seed`.
 */
export function randomNeuronFactors(count: number, seed: number, spread = 10): number[] {
  if (!Number.isInteger(count) || count < 1) throw new InputError(`factor count must be a positive integer, got ${count}`);
  if (!Number.isFinite(spread) || !(spread > 1)) throw new InputError(`spread must be a finite number > 1, got ${spread}`);
  if (!Number.isInteger(seed)) throw new InputError(`seed must be an integer, got ${seed}`);
  const rng = new Rng(seed);
  const s = Math.log(spread);
  return Array.from({ length: count }, () => Math.exp(s * (2 * rng.uniform() - 1)));
}
