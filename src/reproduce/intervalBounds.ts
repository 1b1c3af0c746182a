/**
 * Certified upper bounds on an MLP's mean squared error over a box of parameters, by interval
 * arithmetic in float64 (claim 4 of `flatness reproduce`, Theorem 2): if the bound over a box is
 * below L(theta) + eps, every point of the box lies in the eps-sublevel set, a certificate that
 * needs no sampling and does not use T_alpha's identity L(D x) = L(x).
 *
 * Layer k: z = W a + b with W in [W_lo, W_hi] (row-major [out, in]), b in [b_lo, b_hi], a in
 * [a_lo, a_hi] (the inputs exactly at layer 0); ReLU is monotone, so it maps intervals to intervals.
 * The mse is averaged over N x C entries (the engine's "mse"); the bound per entry is the larger
 * square of the residual interval's ends.
 */
import type { Dataset } from "../data.ts";
import { type ModelSpec, parameterLayout } from "../model.ts";

/** A box of parameters: lo <= theta <= hi entry by entry. */
export interface ParameterBox {
  lo: Float64Array;
  hi: Float64Array;
}

/** The box centre +- halfWidth (entry by entry). */
export function boxAround(centre: ArrayLike<number>, halfWidth: ArrayLike<number>): ParameterBox {
  const lo = new Float64Array(centre.length), hi = new Float64Array(centre.length);
  for (let i = 0; i < centre.length; i++) {
    lo[i] = centre[i] - halfWidth[i];
    hi[i] = centre[i] + halfWidth[i];
  }
  return { lo, hi };
}

/** log of the box's volume: sum log(hi - lo). */
export function logBoxVolume(b: ParameterBox): number {
  let s = 0;
  for (let i = 0; i < b.lo.length; i++) s += Math.log(b.hi[i] - b.lo[i]);
  return s;
}

/** Whether two boxes share no point: some coordinate's intervals are apart. */
export function boxesDisjoint(a: ParameterBox, b: ParameterBox): boolean {
  for (let i = 0; i < a.lo.length; i++) if (a.hi[i] < b.lo[i] || b.hi[i] < a.lo[i]) return true;
  return false;
}

/** A uniformly random point of the box (u: uniforms in [0, 1), one per entry). */
export function pointInBox(b: ParameterBox, u: ArrayLike<number>): Float64Array {
  return b.lo.map((l, i) => l + u[i] * (b.hi[i] - l));
}

/** An upper bound on the mse of the MLP `spec` (linear layers, ReLU) over every theta in the box. */
export function mseUpperBound(spec: ModelSpec, data: Dataset, box: ParameterBox): number {
  const layout = parameterLayout(spec);
  const views = layout.views;
  const K = spec.layers.length;
  const weight = (k: number) => views.find((v) => v.layer === k && v.role === "weight")!;
  const bias = (k: number) => views.find((v) => v.layer === k && v.role === "bias");
  const d = data.features;
  const C = weight(K - 1).shape[0];
  let total = 0;
  for (let s = 0; s < data.n; s++) {
    let lo = Float64Array.from({ length: d }, (_, i) => data.x[s * d + i]);
    let hi = Float64Array.from(lo);
    for (let k = 0; k < K; k++) {
      const w = weight(k);
      const [out, inp] = w.shape;
      const b = bias(k);
      const zlo = new Float64Array(out), zhi = new Float64Array(out);
      for (let j = 0; j < out; j++) {
        let l = b ? box.lo[b.offset + j] : 0;
        let h = b ? box.hi[b.offset + j] : 0;
        for (let i = 0; i < inp; i++) {
          const wl = box.lo[w.offset + j * inp + i], wh = box.hi[w.offset + j * inp + i];
          const al = lo[i], ah = hi[i];
          const p1 = wl * al, p2 = wl * ah, p3 = wh * al, p4 = wh * ah;
          l += Math.min(p1, p2, p3, p4);
          h += Math.max(p1, p2, p3, p4);
        }
        zlo[j] = l;
        zhi[j] = h;
      }
      if (k + 1 < K) {
        lo = zlo.map((v) => Math.max(v, 0));
        hi = zhi.map((v) => Math.max(v, 0));
      } else {
        for (let c = 0; c < C; c++) {
          const t = data.targets![s * C + c];
          const rl = zlo[c] - t, rh = zhi[c] - t;
          total += Math.max(rl * rl, rh * rh);
        }
      }
    }
  }
  return total / (data.n * C);
}
