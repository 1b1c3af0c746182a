/**
 * Float64 twin of 2-D pooling (PyTorch's MaxPool2d and AvgPool2d, floor mode) for the reference
 * engine. Both are positively homogeneous, so T_alpha keeps a pooled net's function:
 *   max pooling  y = x[argmax of the window]: values, gradients and tangents all route through the
 *                arg-max recorded in the forward pass (the first maximum in row-major order, as
 *                PyTorch; padded cells never win). Almost everywhere it is locally linear, so its
 *                second derivative is zero, like ReLU's.
 *   avg pooling  y = (sum of the window) / divisor: linear; its transpose spreads d / divisor.
 */
import { type Pool2dSpec, poolOutputShape } from "../model.ts";

/** Pooling of [B, C, H, W] images, with the window table built once. */
export class Pooling {
  /** Entries per sample of the input. */
  readonly inSize: number;
  /** Entries per sample of the output. */
  readonly outSize: number;
  private readonly cells: Int32Array; // per output position, per window cell: input cell y·W + x, or -1
  private readonly window: number;
  private readonly divisors: Float64Array; // avg: per output position
  private readonly P: number;
  private readonly HW: number;

  constructor(readonly pool: Pool2dSpec, private readonly channels: number, height: number, width: number) {
    const [, oh, ow] = poolOutputShape(pool, [channels, height, width]);
    const [kh, kw] = pool.kernel;
    this.window = kh * kw;
    this.P = oh * ow;
    this.HW = height * width;
    this.inSize = channels * this.HW;
    this.outSize = channels * this.P;
    this.cells = new Int32Array(this.P * this.window);
    this.divisors = new Float64Array(this.P);
    let n = 0;
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        let inside = 0;
        for (let i = 0; i < kh; i++) {
          for (let j = 0; j < kw; j++) {
            const iy = y * pool.stride[0] - pool.padding[0] + i;
            const ix = x * pool.stride[1] - pool.padding[1] + j;
            const ok = iy >= 0 && iy < height && ix >= 0 && ix < width;
            this.cells[n++] = ok ? iy * width + ix : -1;
            if (ok) inside++;
          }
        }
        this.divisors[y * ow + x] = pool.countIncludePad === false ? inside : this.window;
      }
    }
  }

  /** Pools h [B, inSize]; for max pooling also returns the arg-max (index into h) of every output. */
  forward(h: Float64Array, B: number): { out: Float64Array; argmax: Int32Array | null } {
    const out = new Float64Array(B * this.outSize);
    const argmax = this.pool.kind === "max" ? new Int32Array(B * this.outSize) : null;
    for (let s = 0; s < B; s++) {
      for (let c = 0; c < this.channels; c++) {
        const base = s * this.inSize + c * this.HW;
        for (let p = 0; p < this.P; p++) {
          const o = s * this.outSize + c * this.P + p;
          if (argmax) {
            let best = -Infinity;
            let at = -1;
            for (let t = 0; t < this.window; t++) {
              const cell = this.cells[p * this.window + t];
              if (cell >= 0 && h[base + cell] > best) {
                best = h[base + cell];
                at = base + cell;
              }
            }
            out[o] = best;
            argmax[o] = at;
          } else {
            let acc = 0;
            for (let t = 0; t < this.window; t++) {
              const cell = this.cells[p * this.window + t];
              if (cell >= 0) acc += h[base + cell];
            }
            out[o] = acc / this.divisors[p];
          }
        }
      }
    }
    return { out, argmax };
  }

  /** The same linear map as forward at the recorded arg-max, applied to a tangent Rh. */
  tangent(rh: Float64Array, argmax: Int32Array | null, B: number): Float64Array {
    if (argmax) return Float64Array.from(argmax, (i) => rh[i]);
    return this.forward(rh, B).out;
  }

  /** The transpose: spreads d [B, outSize] back over the windows, [B, inSize]. */
  transpose(d: Float64Array, argmax: Int32Array | null, B: number): Float64Array {
    const r = new Float64Array(B * this.inSize);
    if (argmax) {
      for (let o = 0; o < d.length; o++) r[argmax[o]] += d[o];
      return r;
    }
    for (let s = 0; s < B; s++) {
      for (let c = 0; c < this.channels; c++) {
        const base = s * this.inSize + c * this.HW;
        for (let p = 0; p < this.P; p++) {
          const share = d[s * this.outSize + c * this.P + p] / this.divisors[p];
          for (let t = 0; t < this.window; t++) {
            const cell = this.cells[p * this.window + t];
            if (cell >= 0) r[base + cell] += share;
          }
        }
      }
    }
    return r;
  }

  /**
   * Max pooling: the smallest nonzero gap between a window's maximum and its runner-up, over every
   * window (Infinity for average pooling). Like a ReLU kink, a near tie is where f32 and f64 may
   * route differently; exact ties (zeros after ReLU) go to the same first cell on every engine.
   */
  minGap(h: Float64Array, B: number): number {
    if (this.pool.kind !== "max") return Infinity;
    let gap = Infinity;
    for (let s = 0; s < B; s++) {
      for (let c = 0; c < this.channels; c++) {
        const base = s * this.inSize + c * this.HW;
        for (let p = 0; p < this.P; p++) {
          let best = -Infinity;
          let second = -Infinity;
          for (let t = 0; t < this.window; t++) {
            const cell = this.cells[p * this.window + t];
            if (cell < 0) continue;
            const v = h[base + cell];
            if (v > best) {
              second = best;
              best = v;
            } else if (v > second) second = v;
          }
          const g = best - second;
          if (g > 0 && g < gap) gap = g;
        }
      }
    }
    return gap;
  }
}
