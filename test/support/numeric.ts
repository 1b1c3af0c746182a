/** Shared numeric test helpers (runtime-neutral: used by vitest, Deno tests and the browser page). */
import type { Dataset } from "../../src/data.ts";
import { initParameters, randomDataset } from "../../src/init.ts";
import { type Activation, type LossKind, type ModelSpec, mlpSpec } from "../../src/model.ts";
import { ReferenceObjective } from "../../src/reference/engine.ts";

export interface CaseOptions {
  widths: number[];
  batch: number;
  loss: LossKind;
  bias?: boolean;
  activation?: Activation;
  seed?: number;
  /** Reject draws whose hidden pre-activations come closer than this to the ReLU kink (f32 vs f64 masks could disagree). */
  kinkMargin?: number;
}

export interface TestCase {
  spec: ModelSpec;
  data: Dataset;
  theta: Float64Array;
  reference: ReferenceObjective;
  seed: number;
}

/** A seeded problem whose parameters are exactly representable in f32 (so both engines see the same theta). */
export function makeCase(o: CaseOptions): TestCase {
  const spec = mlpSpec(o.widths, { bias: o.bias ?? true, activation: o.activation });
  for (let attempt = 0; attempt < 200; attempt++) {
    const seed = (o.seed ?? 1) + 1000 * attempt;
    const data = randomDataset(spec, o.batch, o.loss, seed);
    const theta = Float64Array.from(Float32Array.from(initParameters(spec, seed + 7)));
    const reference = new ReferenceObjective(spec, data, o.loss);
    if (spec.layers.length === 1 || reference.minHiddenPreactivation(theta) >= (o.kinkMargin ?? 0)) {
      return { spec, data, theta, reference, seed };
    }
  }
  throw new Error(`no draw kept a kink margin of ${o.kinkMargin} for ${JSON.stringify(o)}`);
}

/** max_i |got_i - ref_i| / (atol + rtol * max|ref|): <= 1 passes. Returns the ratio and worst index. */
export function compareVectors(got: ArrayLike<number>, ref: ArrayLike<number>, rtol: number, atol = 0) {
  if (got.length !== ref.length) throw new Error(`length ${got.length} != ${ref.length}`);
  let scale = 0;
  for (let i = 0; i < ref.length; i++) scale = Math.max(scale, Math.abs(ref[i]));
  const bound = atol + rtol * scale;
  let worst = 0;
  let worstIndex = -1;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(got[i] - ref[i]);
    if (!(e <= worst) || worstIndex < 0) {
      worst = e;
      worstIndex = i;
    }
  }
  const ratio = bound > 0 ? worst / bound : worst === 0 ? 0 : Infinity;
  return { ratio, worst, worstIndex, got: got[worstIndex], ref: ref[worstIndex], scale };
}

/** Throws with the worst entry when got is not within tolerance of ref. */
export function assertClose(label: string, got: ArrayLike<number>, ref: ArrayLike<number>, rtol: number, atol = 0) {
  const c = compareVectors(got, ref, rtol, atol);
  if (!(c.ratio <= 1)) {
    throw new Error(
      `${label}: worst |got - ref| = ${c.worst.toExponential(3)} at [${c.worstIndex}] (got ${c.got}, ref ${c.ref}); ` +
        `allowed ${(atol + rtol * c.scale).toExponential(3)} (rtol ${rtol}, max|ref| ${c.scale.toExponential(3)})`,
    );
  }
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
