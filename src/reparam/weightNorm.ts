/**
 * Weight normalization (Salimans & Kingma 2016) as a reparametrization, Dinh et al. 2017,
 * section 5.1: every row of a normalized weight matrix (the incoming weights of one hidden or
 * output unit) is w = s v / ||v||_2, with the unnormalized direction v != 0 and the scale s as new
 * parameters; biases (and layers left out) are unchanged.
 *
 * Convolutions: a "row" is one output channel's filter W[o, :, :, :] (in/groups·kh·kw entries), so
 * w_o = s_o v_o / ||v_o|| with the norm over the whole filter, as torch.nn.utils.weight_norm with
 * dim=0 does for Conv2d.
 *
 * eta layout, per layer k in order: a normalized layer holds v [out, in] row-major (a convolution's
 * v has the kernel's shape [out, in/groups, kh, kw]), then s [out],
 * then its bias [out] if it has one; a layer left out holds its weight then bias as in theta
 * (src/model.ts). dimEta = dimTheta + (number of normalized units).
 *
 * Per row, with nu = ||v||, u = v/nu, P = I - u u^T:
 *   dw = (s/nu) P dv + u ds                                   (jvp)
 *   J^T: gv = (s/nu) P gw,   gs = u·gw                          (vjp)
 * Second-order term: for G = g_w (the row of grad L), F(v, s) = G·w = s (G·u):
 *   d²F/dv² dv = -(s/nu²) [ (u·dv) G + (G·dv) u + (G·u) dv - 3 (G·u)(u·dv) u ]
 *   d²F/dv ds  = P G / nu,   d²F/ds² = 0
 * so the term is  v-part: d²F/dv² dv + ds P G / nu,   s-part: (P G)·dv / nu.
 *
 * T'_alpha: v -> alpha v (alpha > 0) leaves every w, hence the function and the loss, unchanged:
 * L_eta(alpha v, s) = L_eta(v, s), so the v-block of the Hessian at (alpha v, s) is alpha^-2 times
 * the one at (v, s) (exactly, at any point): every minimum is observationally equivalent to
 * arbitrarily sharp (alpha -> 0) and arbitrarily flat (alpha -> infinity) ones.
 */
import { InputError } from "../errors.ts";
import { type ModelSpec, parameterLayout, validateSpec, weightShape } from "../model.ts";
import { type Reparametrization, checkArguments, checkVector } from "./reparametrization.ts";

/** Where one layer's tensors sit in eta (scaleOffset = -1 for a layer left out, biasOffset = -1 without bias). */
export interface WeightNormLayerLayout {
  /** Whether the layer's rows are normalized (w = s v / ||v||) or left as in theta. */
  normalized: boolean;
  /** v (or w for a layer left out), [out, in] row-major. */
  directionOffset: number;
  /** Offset of the scales s [out] in eta (-1 for a layer left out). */
  scaleOffset: number;
  /** Offset of the bias [out] in eta (-1 without bias). */
  biasOffset: number;
  /** Matching offsets in theta. */
  thetaWeightOffset: number;
  /** Offset of the bias in theta (-1 without bias). */
  thetaBiasOffset: number;
  /** Rows: the layer's output units (a convolution's output channels). */
  rows: number;
  /** Columns: the layer's input units (a convolution's in/groups·kh·kw filter entries). */
  columns: number;
}

export interface WeightNormalizationOptions {
  /** Layers (0-based Linear indices) to normalize; default all. */
  layers?: number[];
}

/** Weight normalization (Salimans & Kingma 2016) as a reparametrization theta = Phi(eta), Dinh et al. 2017 section 5.1: each row w = s v / ||v||_2. See the module comment. */
export class WeightNormalization implements Reparametrization {
  readonly name = "weight normalization";
  readonly dimEta: number;
  readonly dimTheta: number;
  /** Where each layer's tensors sit in eta and theta, per layer in order. */
  readonly layers: WeightNormLayerLayout[];

  /** Weight normalization of `spec`'s layers (options.layers, default all); InputError for a layer that does not exist. */
  constructor(readonly spec: ModelSpec, options: WeightNormalizationOptions = {}) {
    validateSpec(spec);
    const K = spec.layers.length;
    const chosen = new Set(options.layers ?? spec.layers.map((_, k) => k));
    for (const k of chosen) {
      if (!Number.isInteger(k) || k < 0 || k >= K) throw new InputError(`${this.name}: no layer ${k}; layers are 0..${K - 1}`);
    }
    const theta = parameterLayout(spec);
    this.dimTheta = theta.dim;
    let offset = 0;
    this.layers = spec.layers.map((l, k) => {
      // Rows: output units (a convolution's output channels); columns: one unit's incoming weights
      // (in, or in/groups·kh·kw for a convolution's filter W[o, :, :, :], contiguous in theta).
      const shape = weightShape(l);
      const rows = shape[0];
      const columns = shape.slice(1).reduce((a, b) => a * b, 1);
      const normalized = chosen.has(k);
      const directionOffset = offset;
      offset += rows * columns;
      const scaleOffset = normalized ? offset : -1;
      if (normalized) offset += rows;
      const biasOffset = l.bias ? offset : -1;
      if (l.bias) offset += rows;
      const t = theta.layers[k];
      return { normalized, directionOffset, scaleOffset, biasOffset, thetaWeightOffset: t.weightOffset, thetaBiasOffset: t.biasOffset, rows, columns };
    });
    this.dimEta = offset;
  }

  /** ||v|| of row o of layer k; throws on a zero row (w = s v/||v|| is undefined there). */
  private rowNorm(eta: ArrayLike<number>, L: WeightNormLayerLayout, k: number, o: number): number {
    let sq = 0;
    for (let i = 0; i < L.columns; i++) sq += eta[L.directionOffset + o * L.columns + i] ** 2;
    if (!(sq > 0)) throw new InputError(`${this.name}: layer ${k}, unit ${o} has v = 0, where w = s v/||v|| is undefined; give it a nonzero direction`);
    return Math.sqrt(sq);
  }

  /** Copies the parts that pass through unchanged (biases, layers left out) between eta and theta. */
  private passThrough(from: ArrayLike<number>, to: Float64Array, toTheta: boolean): void {
    for (const L of this.layers) {
      const size = L.rows * L.columns;
      if (!L.normalized) {
        const [src, dst] = toTheta ? [L.directionOffset, L.thetaWeightOffset] : [L.thetaWeightOffset, L.directionOffset];
        for (let i = 0; i < size; i++) to[dst + i] = from[src + i];
      }
      if (L.biasOffset >= 0) {
        const [src, dst] = toTheta ? [L.biasOffset, L.thetaBiasOffset] : [L.thetaBiasOffset, L.biasOffset];
        for (let i = 0; i < L.rows; i++) to[dst + i] = from[src + i];
      }
    }
  }

  /** Calls fn(L, o, vOffset, wOffset, nu, s) for every normalized row o of every normalized layer. */
  private forRows(eta: ArrayLike<number>, fn: (L: WeightNormLayerLayout, o: number, vo: number, wo: number, nu: number, s: number) => void) {
    this.layers.forEach((L, k) => {
      if (!L.normalized) return;
      for (let o = 0; o < L.rows; o++) {
        fn(L, o, L.directionOffset + o * L.columns, L.thetaWeightOffset + o * L.columns, this.rowNorm(eta, L, k, o), eta[L.scaleOffset + o]);
      }
    });
  }

  phi(eta: Float64Array): Float64Array {
    checkArguments(this, eta);
    const theta = new Float64Array(this.dimTheta);
    this.passThrough(eta, theta, true);
    this.forRows(eta, (L, _o, vo, wo, nu, s) => {
      for (let i = 0; i < L.columns; i++) theta[wo + i] = (s * eta[vo + i]) / nu;
    });
    return theta;
  }

  /**
   * An eta with phi(eta) = theta: v = w (or, with `directionNorm`, v = directionNorm w/||w||) and
   * s = ||w||. Throws on a zero weight row (no direction to take).
   */
  inverse(theta: Float64Array, directionNorm?: number): Float64Array {
    checkVector(this.name, "theta", theta, this.dimTheta);
    if (directionNorm !== undefined && !(Number.isFinite(directionNorm) && directionNorm > 0)) {
      throw new InputError(`${this.name}: directionNorm must be positive and finite, got ${directionNorm}`);
    }
    const eta = new Float64Array(this.dimEta);
    this.passThrough(theta, eta, false);
    this.layers.forEach((L, k) => {
      if (!L.normalized) return;
      for (let o = 0; o < L.rows; o++) {
        let sq = 0;
        for (let i = 0; i < L.columns; i++) sq += theta[L.thetaWeightOffset + o * L.columns + i] ** 2;
        if (!(sq > 0)) throw new InputError(`${this.name}: layer ${k}, unit ${o} has a zero weight row, which has no direction v; weight normalization cannot represent it`);
        const norm = Math.sqrt(sq);
        const c = directionNorm === undefined ? 1 : directionNorm / norm;
        for (let i = 0; i < L.columns; i++) eta[L.directionOffset + o * L.columns + i] = c * theta[L.thetaWeightOffset + o * L.columns + i];
        eta[L.scaleOffset + o] = norm;
      }
    });
    return eta;
  }

  /** T'_alpha: every direction v -> alpha v (alpha > 0); the function is unchanged. */
  scaleDirections(eta: Float64Array, alpha: number): Float64Array {
    checkArguments(this, eta);
    if (!(Number.isFinite(alpha) && alpha > 0)) {
      throw new InputError(`${this.name}: T'_alpha needs alpha > 0 (a negative alpha flips w unless s flips too), got ${alpha}`);
    }
    const out = Float64Array.from(eta);
    for (const L of this.layers) {
      if (L.normalized) for (let i = 0; i < L.rows * L.columns; i++) out[L.directionOffset + i] *= alpha;
    }
    return out;
  }

  /** 0/1 mask over eta of the direction coordinates v (for the Hessian block in v). */
  directionMask(): Float64Array {
    const mask = new Float64Array(this.dimEta);
    for (const L of this.layers) if (L.normalized) mask.fill(1, L.directionOffset, L.directionOffset + L.rows * L.columns);
    return mask;
  }

  jvp(eta: Float64Array, v: Float64Array): Float64Array {
    checkArguments(this, eta, { v });
    const out = new Float64Array(this.dimTheta);
    this.passThrough(v, out, true);
    this.forRows(eta, (L, o, vo, wo, nu, s) => {
      let udv = 0;
      for (let i = 0; i < L.columns; i++) udv += (eta[vo + i] / nu) * v[vo + i];
      const ds = v[L.scaleOffset + o];
      for (let i = 0; i < L.columns; i++) {
        const u = eta[vo + i] / nu;
        out[wo + i] = (s / nu) * (v[vo + i] - u * udv) + u * ds;
      }
    });
    return out;
  }

  vjp(eta: Float64Array, gw: Float64Array): Float64Array {
    checkArguments(this, eta, { u: gw });
    const out = new Float64Array(this.dimEta);
    this.passThrough(gw, out, false);
    this.forRows(eta, (L, o, vo, wo, nu, s) => {
      let ug = 0;
      for (let i = 0; i < L.columns; i++) ug += (eta[vo + i] / nu) * gw[wo + i];
      for (let i = 0; i < L.columns; i++) out[vo + i] = (s / nu) * (gw[wo + i] - (eta[vo + i] / nu) * ug);
      out[L.scaleOffset + o] = ug;
    });
    return out;
  }

  curvature(eta: Float64Array, g: Float64Array, v: Float64Array): Float64Array {
    checkArguments(this, eta, { g, v });
    const out = new Float64Array(this.dimEta);
    this.forRows(eta, (L, o, vo, wo, nu, s) => {
      let udv = 0, Gdv = 0, Gu = 0;
      for (let i = 0; i < L.columns; i++) {
        const u = eta[vo + i] / nu;
        udv += u * v[vo + i];
        Gdv += g[wo + i] * v[vo + i];
        Gu += g[wo + i] * u;
      }
      const ds = v[L.scaleOffset + o];
      let sPart = 0;
      for (let i = 0; i < L.columns; i++) {
        const u = eta[vo + i] / nu;
        const PG = g[wo + i] - Gu * u;
        out[vo + i] = (-s / (nu * nu)) * (udv * g[wo + i] + Gdv * u + Gu * v[vo + i] - 3 * Gu * udv * u) + (ds * PG) / nu;
        sPart += PG * v[vo + i];
      }
      out[L.scaleOffset + o] = sPart / nu;
    });
    return out;
  }
}
