/**
 * Float64 twins of the linear maps of one parametric layer, z = L(a; W) + b, for the reference
 * engine (src/reference/engine.ts). Each map is bilinear in (a, W), so every pass of the
 * R-operator is built from four products (Pearlmutter 1994):
 *   forward        z = L(a; W) + b
 *   tangent        Rz = L(Ra; W) + L(a; V) + c
 *   backProject    r = add + L_a^T(d; W)        (the data gradient; W may be V for the cross term)
 *   gradient       g_W += L_W^T(d; a),  g_b += sums of d per output unit
 * Linear layers (PyTorch nn.Linear, W [out, in]) keep the loop order the MLP engine always had, so
 * MLP results are unchanged to the last bit. Convolutions (nn.Conv2d, W [out, in/groups, kh, kw],
 * NCHW, zero padding) run over a tap table: for every output position and kernel tap, the input
 * cell it reads, or -1 where it reads padding.
 */
import { type Conv2dLayerSpec, convOutputShape, isConv, type LayerSpec, layerInputSize, layerPreactivationSize } from "../model.ts";

/** The maps of one layer; `w`/`b` are offsets into the parameter (or direction) vector, b = -1 without bias. */
export interface LayerMap {
  /** Entries per sample of the input a. */
  readonly inSize: number;
  /** Entries per sample of z. */
  readonly outSize: number;
  forward(theta: Float64Array, a: Float64Array, batch: number): Float64Array;
  tangent(theta: Float64Array, v: Float64Array, a: Float64Array, ra: Float64Array, batch: number): Float64Array;
  backProject(w: Float64Array, d: Float64Array, batch: number, add?: Float64Array): Float64Array;
  accumulateGradient(d: Float64Array, input: Float64Array, grad: Float64Array, batch: number, withBias: boolean): void;
}

/** The maps of layer `l` with its weight at `w` and bias at `b` (-1: none). */
export function layerMap(l: LayerSpec, w: number, b: number): LayerMap {
  return isConv(l) ? new ConvMap(l, w, b) : new LinearMap(l.inFeatures, l.outFeatures, w, b);
}

class LinearMap implements LayerMap {
  constructor(readonly inSize: number, readonly outSize: number, private readonly w: number, private readonly b: number) {}

  forward(theta: Float64Array, input: Float64Array, B: number): Float64Array {
    const { inSize: I, outSize: O, w, b } = this;
    const z = new Float64Array(B * O);
    for (let s = 0; s < B; s++) {
      for (let o = 0; o < O; o++) {
        let acc = b >= 0 ? theta[b + o] : 0;
        for (let i = 0; i < I; i++) acc += input[s * I + i] * theta[w + o * I + i];
        z[s * O + o] = acc;
      }
    }
    return z;
  }

  tangent(theta: Float64Array, v: Float64Array, a: Float64Array, ra: Float64Array, B: number): Float64Array {
    const { inSize: I, outSize: O, w, b } = this;
    const rz = new Float64Array(B * O);
    for (let s = 0; s < B; s++) {
      for (let o = 0; o < O; o++) {
        let acc = b >= 0 ? v[b + o] : 0;
        for (let i = 0; i < I; i++) {
          const idx = s * I + i;
          acc += ra[idx] * theta[w + o * I + i] + a[idx] * v[w + o * I + i];
        }
        rz[s * O + o] = acc;
      }
    }
    return rz;
  }

  backProject(weights: Float64Array, d: Float64Array, B: number, add?: Float64Array): Float64Array {
    const { inSize: I, outSize: O, w } = this;
    const r = new Float64Array(B * I);
    for (let s = 0; s < B; s++) {
      for (let i = 0; i < I; i++) {
        let acc = add ? add[s * I + i] : 0;
        for (let o = 0; o < O; o++) acc += d[s * O + o] * weights[w + o * I + i];
        r[s * I + i] = acc;
      }
    }
    return r;
  }

  accumulateGradient(d: Float64Array, input: Float64Array, grad: Float64Array, B: number, withBias: boolean): void {
    const { inSize: I, outSize: O, w, b } = this;
    for (let o = 0; o < O; o++) {
      for (let i = 0; i < I; i++) {
        let acc = 0;
        for (let s = 0; s < B; s++) acc += d[s * O + o] * input[s * I + i];
        grad[w + o * I + i] += acc;
      }
      if (withBias && b >= 0) {
        let acc = 0;
        for (let s = 0; s < B; s++) acc += d[s * O + o];
        grad[b + o] += acc;
      }
    }
  }
}

/**
 * For every output position p (row-major over H' x W') and tap t (row-major over kh x kw), the
 * input cell y·W + x it reads, or -1 where the tap falls on padding.
 */
export function convTapTable(l: Conv2dLayerSpec): Int32Array {
  const [, oh, ow] = convOutputShape(l);
  const [kh, kw] = l.kernel;
  const table = new Int32Array(oh * ow * kh * kw);
  let n = 0;
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          const iy = y * l.stride[0] - l.padding[0] + i * l.dilation[0];
          const ix = x * l.stride[1] - l.padding[1] + j * l.dilation[1];
          table[n++] = iy >= 0 && iy < l.inHeight && ix >= 0 && ix < l.inWidth ? iy * l.inWidth + ix : -1;
        }
      }
    }
  }
  return table;
}

class ConvMap implements LayerMap {
  readonly inSize: number;
  readonly outSize: number;
  private readonly taps: Int32Array;
  private readonly T: number; // taps per kernel
  private readonly P: number; // output positions per channel
  private readonly HW: number; // input cells per channel
  private readonly Cg: number; // input channels per group
  private readonly Og: number; // output channels per group

  constructor(private readonly l: Conv2dLayerSpec, private readonly w: number, private readonly b: number) {
    this.inSize = layerInputSize(l);
    this.outSize = layerPreactivationSize(l);
    this.taps = convTapTable(l);
    this.T = l.kernel[0] * l.kernel[1];
    this.P = this.outSize / l.outChannels;
    this.HW = l.inHeight * l.inWidth;
    this.Cg = l.inChannels / l.groups;
    this.Og = l.outChannels / l.groups;
  }

  private withBias(values: Float64Array, B: number): Float64Array {
    const z = new Float64Array(B * this.outSize);
    if (this.b < 0) return z;
    for (let s = 0; s < B; s++) {
      for (let o = 0; o < this.l.outChannels; o++) z.fill(values[this.b + o], s * this.outSize + o * this.P, s * this.outSize + (o + 1) * this.P);
    }
    return z;
  }

  /**
   * z[zi] += sum over taps of w[wi] x[xi] (+ w2[wi] x2[xi] when given): the forward product and
   * the tangent's two products, with every (weight, input, output) triple visited batch-major.
   */
  private accumulateForward(z: Float64Array, w: Float64Array, x: Float64Array, B: number, w2?: Float64Array, x2?: Float64Array): void {
    const { taps, T, P, HW, Cg, Og, inSize, outSize } = this;
    const C = this.l.outChannels;
    for (let s = 0; s < B; s++) {
      for (let o = 0; o < C; o++) {
        const cBase = Math.floor(o / Og) * Cg;
        for (let p = 0; p < P; p++) {
          const zi = s * outSize + o * P + p;
          let acc = z[zi];
          for (let cl = 0; cl < Cg; cl++) {
            const wBase = this.w + (o * Cg + cl) * T;
            const xBase = s * inSize + (cBase + cl) * HW;
            for (let t = 0; t < T; t++) {
              const cell = taps[p * T + t];
              if (cell < 0) continue;
              acc += w[wBase + t] * x[xBase + cell];
              if (w2) acc += w2[wBase + t] * x2![xBase + cell];
            }
          }
          z[zi] = acc;
        }
      }
    }
  }

  forward(theta: Float64Array, a: Float64Array, B: number): Float64Array {
    const z = this.withBias(theta, B);
    this.accumulateForward(z, theta, a, B);
    return z;
  }

  tangent(theta: Float64Array, v: Float64Array, a: Float64Array, ra: Float64Array, B: number): Float64Array {
    const rz = this.withBias(v, B);
    this.accumulateForward(rz, theta, ra, B, v, a);
    return rz;
  }

  backProject(weights: Float64Array, d: Float64Array, B: number, add?: Float64Array): Float64Array {
    const r = add ? Float64Array.from(add) : new Float64Array(B * this.inSize);
    const { taps, T, P, HW, Cg, Og, inSize, outSize } = this;
    const C = this.l.outChannels;
    for (let s = 0; s < B; s++) {
      for (let o = 0; o < C; o++) {
        const cBase = Math.floor(o / Og) * Cg;
        for (let p = 0; p < P; p++) {
          const dv = d[s * outSize + o * P + p];
          if (dv === 0) continue;
          for (let cl = 0; cl < Cg; cl++) {
            const wBase = this.w + (o * Cg + cl) * T;
            const xBase = s * inSize + (cBase + cl) * HW;
            for (let t = 0; t < T; t++) {
              const cell = taps[p * T + t];
              if (cell >= 0) r[xBase + cell] += dv * weights[wBase + t];
            }
          }
        }
      }
    }
    return r;
  }

  accumulateGradient(d: Float64Array, input: Float64Array, grad: Float64Array, B: number, withBias: boolean): void {
    const { taps, T, P, HW, Cg, Og, inSize, outSize } = this;
    const C = this.l.outChannels;
    for (let o = 0; o < C; o++) {
      const cBase = Math.floor(o / Og) * Cg;
      for (let cl = 0; cl < Cg; cl++) {
        const wBase = this.w + (o * Cg + cl) * T;
        for (let t = 0; t < T; t++) {
          let acc = 0;
          for (let s = 0; s < B; s++) {
            const dBase = s * outSize + o * P;
            const xBase = s * inSize + (cBase + cl) * HW;
            for (let p = 0; p < P; p++) {
              const cell = taps[p * T + t];
              if (cell >= 0) acc += d[dBase + p] * input[xBase + cell];
            }
          }
          grad[wBase + t] += acc;
        }
      }
    }
    if (!withBias || this.b < 0) return;
    for (let s = 0; s < B; s++) {
      for (let o = 0; o < this.l.outChannels; o++) {
        let acc = 0;
        for (let p = 0; p < this.P; p++) acc += d[s * this.outSize + o * this.P + p];
        grad[this.b + o] += acc;
      }
    }
  }
}
