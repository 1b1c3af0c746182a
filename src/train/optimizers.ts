/**
 * Optimizers: the float64 CPU twins of shaders/sgd_momentum.wgsl and shaders/adam.wgsl (same
 * formulas, same argument order), the configuration shared by both engines, and host optimizers
 * over Float64Array parameters (CPU training and the tests' oracle). The GPU versions, whose state
 * stays on the GPU, are in gpuOptimizers.ts.
 *
 * Conventions are PyTorch's:
 *   sgd    torch.optim.SGD(lr, momentum, weight_decay), dampening 0, no Nesterov:
 *            d = g + wd θ,  v = μ v + d,  θ -= lr v                 (v = 0 before the first step)
 *   adam   torch.optim.Adam(lr, betas, eps, weight_decay), L2 decay added to the gradient:
 *            d = g + wd θ,  m = β1 m + (1-β1) d,  s = β2 s + (1-β2) d²,
 *            θ -= lr/(1-β1^t) · m / (sqrt(s)/sqrt(1-β2^t) + eps)
 *   adamw  torch.optim.AdamW: the same with decoupled decay θ *= 1 - lr wd first and d = g.
 */
import { InputError } from "../errors.ts";

/** The optimizers, with PyTorch's conventions: SGD with momentum, Adam (L2 decay), AdamW (decoupled decay). */
export type OptimizerKind = "sgd" | "adam" | "adamw";
/** Every optimizer kind. */
export const OPTIMIZER_KINDS: readonly OptimizerKind[] = ["sgd", "adam", "adamw"];

/** An optimizer's configuration (defaults as PyTorch). */
export interface OptimizerConfig {
  /** Which optimizer. */
  kind: OptimizerKind;
  /** Learning rate (> 0). */
  lr: number;
  /** SGD momentum μ (default 0: plain SGD). */
  momentum?: number;
  /** L2 penalty (sgd, adam) or decoupled decay (adamw); default 0. */
  weightDecay?: number;
  /** Adam's β1, β2, eps (defaults 0.9, 0.999, 1e-8 as PyTorch). */
  beta1?: number;
  /** Adam's β2 (default 0.999). */
  beta2?: number;
  /** Adam's eps (default 1e-8). */
  eps?: number;
}

/** The configuration with every default filled in, after checking each value. */
export type ResolvedOptimizerConfig = Required<OptimizerConfig>;

/** One step's uniforms for adam.wgsl: the bias corrections of step t folded in (float64 on the host). */
export interface AdamStepScalars {
  stepSize: number;
  sqrtBias2: number;
  decayFactor: number;
}

export function resolveOptimizerConfig(config: OptimizerConfig): ResolvedOptimizerConfig {
  const { kind } = config;
  if (!(OPTIMIZER_KINDS as readonly string[]).includes(kind)) {
    throw new InputError(`optimizer ${kind} is not one of ${OPTIMIZER_KINDS.join(", ")}`);
  }
  const r: ResolvedOptimizerConfig = {
    kind,
    lr: config.lr,
    momentum: config.momentum ?? 0,
    weightDecay: config.weightDecay ?? 0,
    beta1: config.beta1 ?? 0.9,
    beta2: config.beta2 ?? 0.999,
    eps: config.eps ?? 1e-8,
  };
  if (!(Number.isFinite(r.lr) && r.lr > 0)) throw new InputError(`the learning rate must be a positive number, got ${r.lr}`);
  if (!(r.momentum >= 0 && r.momentum < 1)) throw new InputError(`momentum must be in [0, 1), got ${r.momentum}`);
  if (!(Number.isFinite(r.weightDecay) && r.weightDecay >= 0)) throw new InputError(`weight decay must be a number >= 0, got ${r.weightDecay}`);
  if (!(r.beta1 >= 0 && r.beta1 < 1)) throw new InputError(`beta1 must be in [0, 1), got ${r.beta1}`);
  if (!(r.beta2 >= 0 && r.beta2 < 1)) throw new InputError(`beta2 must be in [0, 1), got ${r.beta2}`);
  if (!(Number.isFinite(r.eps) && r.eps > 0)) throw new InputError(`eps must be a positive number, got ${r.eps}`);
  return r;
}

/** Adam's per-step scalars for step t (1-based). */
export function adamStepScalars(config: ResolvedOptimizerConfig, t: number): AdamStepScalars {
  return {
    stepSize: config.lr / (1 - Math.pow(config.beta1, t)),
    sqrtBias2: Math.sqrt(1 - Math.pow(config.beta2, t)),
    decayFactor: 1 - config.lr * config.weightDecay,
  };
}

/** CPU twin of sgd_momentum.wgsl: one SGD-with-momentum step, in place on theta and velocity. */
export function sgdMomentumStep(
  grad: Float64Array,
  theta: Float64Array,
  velocity: Float64Array,
  params: { lr: number; momentum: number; weightDecay: number },
): void {
  const { lr, momentum, weightDecay } = params;
  for (let i = 0; i < theta.length; i++) {
    const d = grad[i] + weightDecay * theta[i];
    const v = momentum * velocity[i] + d;
    velocity[i] = v;
    theta[i] -= lr * v;
  }
}

/** CPU twin of adam.wgsl: one Adam (or AdamW with `decoupled`) step, in place on theta, m and v. */
export function adamStep(
  grad: Float64Array,
  theta: Float64Array,
  m: Float64Array,
  v: Float64Array,
  params: { beta1: number; beta2: number; eps: number; weightDecay: number; decoupled: boolean } & AdamStepScalars,
): void {
  const { beta1, beta2, eps, weightDecay, decoupled, stepSize, sqrtBias2, decayFactor } = params;
  for (let i = 0; i < theta.length; i++) {
    let th = theta[i];
    let d = grad[i];
    if (decoupled) th *= decayFactor;
    else d += weightDecay * th;
    const mi = beta1 * m[i] + (1 - beta1) * d;
    const vi = beta2 * v[i] + (1 - beta2) * d * d;
    m[i] = mi;
    v[i] = vi;
    theta[i] = th - stepSize * mi / (Math.sqrt(vi) / sqrtBias2 + eps);
  }
}

/**
 * An optimizer bound to one vector space: its state (velocity, moments) lives there too, so on
 * the GPU nothing crosses to the host. step() updates theta in place from a gradient.
 */
export interface Optimizer<V> {
  /** The configuration in use, defaults filled in. */
  readonly config: ResolvedOptimizerConfig;
  /** Steps taken so far. */
  readonly steps: number;
  /** theta <- one update from `grad` (grad is only read). */
  step(theta: V, grad: V): void;
  /** Releases the optimizer's state (momentum, moments). */
  dispose(): void;
}

/** Float64 optimizer on the host: the CPU training path and the tests' oracle for the GPU kernels. */
export class HostOptimizer implements Optimizer<Float64Array> {
  readonly config: ResolvedOptimizerConfig;
  steps = 0;
  private readonly first: Float64Array;
  private readonly second: Float64Array;

  constructor(readonly dim: number, config: OptimizerConfig) {
    this.config = resolveOptimizerConfig(config);
    this.first = new Float64Array(dim);
    this.second = new Float64Array(this.config.kind === "sgd" ? 0 : dim);
  }

  step(theta: Float64Array, grad: Float64Array): void {
    if (theta.length !== this.dim || grad.length !== this.dim) {
      throw new InputError(`optimizer step: theta has ${theta.length} and grad ${grad.length} entries, expected ${this.dim}`);
    }
    this.steps++;
    const c = this.config;
    if (c.kind === "sgd") {
      sgdMomentumStep(grad, theta, this.first, c);
    } else {
      adamStep(grad, theta, this.first, this.second, { ...c, decoupled: c.kind === "adamw", ...adamStepScalars(c, this.steps) });
    }
  }

  /** Copies of the state: the velocity (sgd), or the first and second moments (adam, adamw). */
  stateArrays(): Float64Array[] {
    return this.config.kind === "sgd" ? [this.first.slice()] : [this.first.slice(), this.second.slice()];
  }

  dispose(): void {}
}
