/**
 * What every claim of `flatness reproduce` shares: the engine (an objective factory: WebGPU or
 * the float64 reference), the seed, the quick/full setting, progress, and the seeded problems the
 * claims are checked on. The main problem is a teacher-student regression: data x ~ N(0, I) and
 * targets the teacher's own outputs, so the teacher's parameters are an exact global minimum
 * (L = 0 up to f32 rounding of the targets, gradient 0): the "minimum" of the paper's theorems,
 * with no training needed.
 */
import type { Dataset } from "../data.ts";
import type { Backend } from "../backend/types.ts";
import { formatNumber } from "../format.ts";
import { initParameters } from "../init.ts";
import { inputWidth, type LossKind, type ModelSpec, mlpSpec, outputWidth, parameterLayout } from "../model.ts";
import { homogeneousAlphaScale } from "../transforms/alphaScale.ts";
import { type Objective, withVectors } from "../objective.ts";
import { Rng } from "../random.ts";
import { ReferenceObjective } from "../reference/engine.ts";
import { compareOutputs } from "../transforms/constructionSupport.ts";
import type { ClaimRecord, PlotSpec } from "./html.ts";

/** What every claim of `flatness reproduce` runs with. */
export interface ReproduceContext {
  /** Where every objective is built and claim 15 trains (src/backend/); its precision sets the tolerances. */
  backend: Backend;
  /** Seed of the claims' problems. */
  seed: number;
  /** Quick run: smaller problems and fewer samples. */
  quick: boolean;
  /** Reports what the claim is doing (one line). */
  progress: (message: string) => void;
  /**
   * A negative control's id (one of the running claim's `controls`): the claim runs with that one
   * ingredient deliberately broken, and must then FAIL. Absent on the real run.
   */
  control?: string;
}

/** True on an f32 backend: identities are checked to f32 rounding. */
export function isF32(ctx: ReproduceContext): boolean {
  return ctx.backend.precision === "f32";
}

/** What a claim returns; the runner adds id, claim text and timing. */
export interface ClaimOutcome {
  /** What was measured, as text. */
  measured: string;
  /** What the paper predicts, as text. */
  expected: string;
  /** Whether the measurement agrees with the prediction. */
  pass: boolean;
  /** Numbers behind the verdict, shown as a key/value table. */
  details?: Record<string, unknown>;
  /** Plots of the claim. */
  plots?: PlotSpec[];
}

/**
 * A negative control of a claim: the same check with one ingredient deliberately wrong (a T_alpha
 * that scales biases wrongly, an HVP without its cross-layer terms, a Lanczos that stops early, a
 * perturbation that leaves the ball, ...). A verdict earns its PASS only if every control makes it FAIL.
 */
export interface NegativeControl {
  /** Short id, passed as ReproduceContext.control (e.g. "gauss-newton"). */
  id: string;
  /** The broken ingredient, in one sentence. */
  breaks: string;
}

/** One checkable claim of Dinh et al. 2017 (a theorem, definition or section's statement) and the experiment that checks it. */
export interface Claim {
  /** The claim's number (1-based, its position in CLAIMS). */
  id: number;
  /** The claim, in one sentence. */
  claim: string;
  /** Its negative controls (at least one): run with ctx.control set to each id, the claim must fail. */
  controls?: NegativeControl[];
  /** Runs the check on `ctx`'s backend and seed. */
  run(ctx: ReproduceContext): Promise<ClaimOutcome>;
}

export type { ClaimRecord };

/** Relative tolerance for identities that hold exactly in real arithmetic. */
export function identityTolerance(ctx: ReproduceContext): number {
  return isF32(ctx) ? 1e-4 : 1e-9;
}

/** Relative tolerance for a model's outputs that a function-preserving map must keep: rounding of the engine's precision. */
export function outputTolerance(ctx: ReproduceContext): number {
  return isF32(ctx) ? 1e-5 : 1e-10;
}

/** Data x ~ N(0, I) (f32) with targets the outputs of `theta` on it: theta is an exact minimum of the mse. */
export async function teacherProblem(spec: ModelSpec, n: number, seed: number): Promise<{ spec: ModelSpec; data: Dataset; theta: Float64Array }> {
  const rng = new Rng(seed);
  const d = inputWidth(spec);
  const x = Float32Array.from(rng.normals(n * d));
  const theta = Float64Array.from(Float32Array.from(initParameters(spec, seed + 1)));
  const probe: Dataset = { n, features: d, x, targets: new Float32Array(n * outputWidth(spec)) };
  const targets = Float32Array.from(await new ReferenceObjective(spec, probe, "mse").outputs(theta));
  return { spec, data: { n, features: d, x, targets }, theta };
}

/** The default teacher net of the claims: one hidden layer or deep, with biases. */
export function teacherSpec(depth: "shallow" | "deep"): ModelSpec {
  return depth === "shallow" ? mlpSpec([4, 16, 2]) : mlpSpec([4, 12, 12, 12, 2]);
}

/** Runs `work` with an objective from the context's engine and a device copy of each host vector. */
export async function withObjective<T>(
  ctx: ReproduceContext,
  spec: ModelSpec,
  data: Dataset,
  loss: LossKind,
  hosts: Float64Array[],
  work: (objective: Objective<unknown>, vs: unknown[]) => Promise<T>,
): Promise<T> {
  const objective = await ctx.backend.objective(spec, data, loss);
  try {
    return await withVectors(objective, hosts, (vs) => work(objective, vs));
  } finally {
    objective.dispose();
  }
}

/** max |a - b| / max |b|. */
export function relativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const { maxAbsDifference: d, maxAbsOutput: s } = compareOutputs(b, a);
  return s > 0 ? d / s : d;
}

/** ||a - b|| / ||b|| (Euclidean). */
export function normwiseDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d += (a[i] - b[i]) ** 2;
    s += b[i] ** 2;
  }
  return s > 0 ? Math.sqrt(d / s) : Math.sqrt(d);
}

/** A number in a claim's measured text: `digits` significant digits, exponent form outside [1e-3, 1e5). */
export function fmt(x: number, digits = 3): string {
  return formatNumber(x, { digits });
}

/** Seeded alphas with product 1 (log-uniform in [1/spread, spread], the last one compensating). */
export function randomAlphas(k: number, seed: number, spread = 5): number[] {
  const rng = new Rng(seed);
  const logs = Array.from({ length: k - 1 }, () => (2 * rng.uniform() - 1) * Math.log(spread));
  logs.push(-logs.reduce((s, l) => s + l, 0));
  return logs.map(Math.exp);
}

/** [a, 1, ..., 1, 1/a]: T_alpha moving weight from the last layer to the first. */
export function endAlphas(k: number, a: number): number[] {
  return Array.from({ length: k }, (_, i) => (i === 0 ? a : i === k - 1 ? 1 / a : 1));
}

/** True when the claim runs as its negative control `id` (the ingredient it names is broken). */
export function isControl(ctx: ReproduceContext, id: string): boolean {
  return ctx.control === id;
}

/**
 * A WRONG T_alpha, for negative controls: the weights of layer k scale by alpha_k as they should,
 * but every bias by its own layer's alpha_k instead of prod_{j<=k} alpha_j (Appendix B). The
 * function then changes wherever a bias sits after a rescaled layer.
 */
export function singleAlphaBiasScale(spec: ModelSpec, theta: Float64Array, alphas: number[]): Float64Array {
  const out = Float64Array.from(theta);
  for (const v of parameterLayout(spec).views) {
    for (let i = v.offset; i < v.offset + v.size; i++) out[i] = theta[i] * alphas[v.layer];
  }
  return out;
}

/** The negative control of a T_alpha whose biases are scaled wrongly (singleAlphaBiasScale). */
export const BIAS_CONTROL: NegativeControl = {
  id: "bias-single-alpha",
  breaks: "T_alpha scales each bias by its own layer's alpha_k instead of prod_{j<=k} alpha_j (Appendix B)",
};

/** T_alpha as the claim runs it: the right one, or under the bias-single-alpha control the wrong one. */
export function claimAlphaScale(ctx: ReproduceContext, spec: ModelSpec, theta: Float64Array, alphas: number[]): Float64Array {
  return isControl(ctx, BIAS_CONTROL.id) ? singleAlphaBiasScale(spec, theta, alphas) : homogeneousAlphaScale(spec, theta, alphas);
}

const caches = new WeakMap<object, Map<string, Promise<unknown>>>();

/**
 * Memoises an expensive deterministic intermediate result (trained minima and their measurements)
 * per backend, keyed by `key` plus the seed and the quick setting, so that a claim's negative
 * controls, which re-run the claim, only redo the part they break. A failed computation is not kept.
 */
export function cached<T>(ctx: ReproduceContext, key: string, compute: () => Promise<T>): Promise<T> {
  let map = caches.get(ctx.backend);
  if (!map) caches.set(ctx.backend, (map = new Map()));
  const full = `${key}|seed ${ctx.seed}|${ctx.quick ? "quick" : "full"}`;
  let p = map.get(full) as Promise<T> | undefined;
  if (!p) {
    p = compute();
    map.set(full, p);
    p.catch(() => map!.delete(full));
  }
  return p;
}

/**
 * An objective whose Hessian-vector product is replaced by `hvp` (negative controls: an HVP without
 * cross-layer terms, Gauss-Newton in place of the Hessian, ...); everything else is `inner`'s.
 */
export function withHvp<V>(inner: Objective<V>, hvp: (theta: V, v: V, out: V) => Promise<void>, release: () => void = () => {}): Objective<V> {
  return {
    get spec() { return inner.spec; },
    get lossKind() { return inner.lossKind; },
    get sampleCount() { return inner.sampleCount; },
    get space() { return inner.space; },
    get counters() { return inner.counters; },
    loss: (t) => inner.loss(t),
    gradient: (t, out) => inner.gradient(t, out),
    outputs: (t) => inner.outputs(t),
    hvp,
    async hvpBlock(t, vs, outs) {
      for (let j = 0; j < vs.length; j++) await hvp(t, vs[j], outs[j]);
    },
    dispose: () => {
      release();
      inner.dispose();
    },
  };
}

/** The Hessian with its cross-layer blocks dropped: sum_k M_k H M_k v (M_k the 0/1 mask of layer k's tensors), K HVPs per product. */
export function blockDiagonalHvp<V>(inner: Objective<V>): Objective<V> {
  const s = inner.space;
  const layout = parameterLayout(inner.spec);
  const masks = inner.spec.layers.map((_, k) => {
    const m = new Float64Array(layout.dim);
    for (const v of layout.views) if (v.layer === k) m.fill(1, v.offset, v.offset + v.size);
    return s.fromArray(m);
  });
  // The masks live on the objective's device: released with it.
  return withHvp(inner, async (t, v, out) => {
    const u = s.zeros(), hu = s.zeros();
    try {
      s.scale(0, out);
      for (const m of masks) {
        s.copy(v, u);
        s.multiply(m, u);
        await inner.hvp(t, u, hu);
        s.multiply(m, hu);
        s.axpy(1, hu, out);
      }
    } finally {
      s.dispose(u);
      s.dispose(hu);
    }
  }, () => masks.forEach((m) => s.dispose(m)));
}
