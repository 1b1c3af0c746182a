/**
 * Sensitivities related to Dinh et al. (2017):
 *  - layerGradientNorms: ||grad_{W_k} L|| and ||grad_{b_k} L|| per tensor and layer. Since
 *    grad L(T_alpha theta) = D_alpha^-1 grad L(theta) (src/transforms/alphaScale.ts), the weight
 *    gradient of layer k scales as 1/alpha_k and the bias gradient as 1/prod_{j<=k} alpha_j: with
 *    small alpha_k the gradient (and so any Lipschitz-type bound) blows up while the function is
 *    unchanged (the non-Lipschitz point of Dinh et al. §4 and the thesis).
 *  - inputGradientNorms: sensitivity to the INPUT, ||d f(x)/dx||_F (Frobenius norm of the [C, d]
 *    Jacobian J = W_{K-1} D_{K-2} W_{K-2} ... D_0 W_0, D_k = diag(phi'(z_k)), phi'(0) = slope as the
 *    engines) or ||d l(x)/dx||_2 for the per-sample loss l (no 1/N; mse with its 1/C), per sample,
 *    with the mean and max over the dataset. It depends only on the function, so it is unchanged by
 *    T_alpha and neuron-wise rescaling, and it changes under input reparametrizations (Dinh et al.
 *    §5.2). Computed on the host in float64 by backward passes over the ReLU masks (and the
 *    poolings of a convolutional net: J then includes the convolutions' and poolings' linear maps).
 */
import { type Dataset, validateDataset } from "../data.ts";
import { InputError } from "../errors.ts";
import { inputWidth, type LossKind, type ModelSpec, outputWidth, parameterLayout } from "../model.ts";
import type { Objective } from "../objective.ts";
import { type MetricCost, withCost } from "./cost.ts";
import { layerMask } from "./operator.ts";
import { hostBackToInput, hostCost, hostForward, perSampleLossGradient } from "./normBased.ts";

/** The gradient norm of one tensor. */
export interface TensorGradientNorm {
  /** PyTorch-style tensor name ("2k.weight", "2k.bias"). */
  name: string;
  /** 0-based layer index. */
  layer: number;
  /** Weight or bias. */
  role: "weight" | "bias";
  /** ||grad L|| restricted to the tensor. */
  norm: number;
}

/** The gradient norms of one layer. */
export interface LayerGradientNorm {
  /** 0-based layer index. */
  layer: number;
  /** ||grad_{W_k} L||. */
  weight: number;
  /** null when the layer has no bias. */
  bias: number | null;
  /** sqrt(weight² + bias²). */
  norm: number;
}

/** Per-tensor and per-layer norms of grad L(theta); they scale as 1/alpha_k under T_alpha (Dinh et al. 2017 section 4). */
export interface LayerGradientNormsResult {
  /** L(theta). */
  loss: number;
  /** Per tensor, in theta order. */
  tensors: TensorGradientNorm[];
  /** Per layer. */
  layers: LayerGradientNorm[];
  /** ||grad L||. */
  total: number;
  /** Passes and wall time of the computation. */
  cost: MetricCost;
}

/** One gradient on the device; each tensor norm is a masked dot product (only scalars come back). */
export async function layerGradientNorms<V>(objective: Objective<V>, theta: V): Promise<LayerGradientNormsResult> {
  const spec = objective.spec;
  const layout = parameterLayout(spec);
  const space = objective.space;
  const { result, cost } = await withCost(objective, async () => {
    const g = space.zeros();
    const tmp = space.zeros();
    try {
      const loss = await objective.gradient(theta, g);
      const tensors: TensorGradientNorm[] = [];
      for (const view of layout.views) {
        const mask = space.fromArray(layerMask(spec, [view.name]));
        try {
          space.copy(g, tmp);
          space.multiply(mask, tmp);
          const sq = await space.dot(tmp, tmp);
          tensors.push({ name: view.name, layer: view.layer, role: view.role, norm: Math.sqrt(Math.max(sq, 0)) });
        } finally {
          space.dispose(mask);
        }
      }
      const layers: LayerGradientNorm[] = spec.layers.map((_, k) => {
        const weight = tensors.find((t) => t.layer === k && t.role === "weight")!.norm;
        const b = tensors.find((t) => t.layer === k && t.role === "bias");
        return { layer: k, weight, bias: b ? b.norm : null, norm: Math.hypot(weight, b ? b.norm : 0) };
      });
      const total = Math.sqrt(tensors.reduce((s, t) => s + t.norm * t.norm, 0));
      return { loss, tensors, layers, total };
    } finally {
      space.dispose(g);
      space.dispose(tmp);
    }
  });
  return { ...result, cost };
}

/** Options of inputGradientNorms. */
export interface InputGradientOptions {
  /** "output": ||df/dx||_F (default); "loss": ||dl/dx||_2 (needs `loss`). */
  of?: "output" | "loss";
  /** The loss of the per-sample l (needed for of = "loss"). */
  loss?: LossKind;
}

/** Input-gradient norms over the dataset (Dinh et al. 2017 section 5.2: they change under input reparametrizations). */
export interface InputGradientNormsResult {
  /** What was differentiated: the outputs f or the per-sample loss l. */
  of: "output" | "loss";
  /** The norm per sample, in data order. */
  perSample: Float64Array;
  /** Mean over the samples. */
  mean: number;
  /** Max over the samples. */
  max: number;
  /** Wall time (host computation, no objective passes). */
  cost: MetricCost;
}

/** Per-sample input sensitivities ||df(x)/dx||_F (or ||dl(x)/dx||_2), computed on the host in float64; a function of f alone, so unchanged by T_alpha and neuron-wise rescaling, changed by input reparametrizations (Dinh et al. 2017 section 5.2). */
export function inputGradientNorms(
  spec: ModelSpec,
  theta: Float64Array,
  data: Dataset,
  options: InputGradientOptions = {},
): Promise<InputGradientNormsResult> {
  const of = options.of ?? "output";
  if (of === "loss" && !options.loss) throw new InputError("input gradient of the loss needs the loss kind (options.loss)");
  return hostCost(() => {
    const d = inputWidth(spec);
    if (data.features !== d) {
      throw new InputError(`data has ${data.features} features per sample but the model's first layer takes ${d}`);
    }
    if (of === "loss") validateDataset(spec, data, options.loss!);
    const fw = hostForward(spec, theta, data.x);
    const c = outputWidth(spec);
    const f = fw.z[fw.z.length - 1];
    const sq = new Float64Array(data.n);
    const accumulate = (g: Float64Array) => {
      for (let s = 0; s < data.n; s++) for (let i = 0; i < d; i++) sq[s] += g[s * d + i] ** 2;
    };
    if (of === "loss") {
      accumulate(hostBackToInput(spec, theta, fw, perSampleLossGradient(options.loss!, f, data, c)));
    } else {
      // One batched backward pass per output r: row r of every sample's Jacobian.
      const cov = new Float64Array(data.n * c);
      for (let r = 0; r < c; r++) {
        cov.fill(0);
        for (let s = 0; s < data.n; s++) cov[s * c + r] = 1;
        accumulate(hostBackToInput(spec, theta, fw, cov));
      }
    }
    const perSample = sq.map(Math.sqrt);
    const mean = perSample.reduce((a, b) => a + b, 0) / data.n;
    const max = perSample.reduce((a, b) => Math.max(a, b), 0);
    return { of, perSample, mean, max };
  }).then(({ result, cost }) => ({ ...result, cost }));
}
