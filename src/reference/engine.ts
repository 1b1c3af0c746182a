/**
 * Float64 CPU reference engine: forward pass, loss, gradient (backpropagation) and exact
 * Hessian-vector products by Pearlmutter's R-operator (Pearlmutter 1994), written as plain loops
 * so each line can be checked against the derivation. It mirrors the WGSL kernels in `shaders/`
 * step by step (same layouts, same order of passes) and is the oracle the GPU engine is tested
 * against; it is also an explicit fallback where WebGPU is missing.
 *
 * Notation (per layer k = 0..K-1, batch of B samples):
 *   z_k = a_{k-1} W_k^T + b_k,   a_k = phi(z_k) (hidden layers),   a_{-1} = x,   output y = z_{K-1}
 *   delta_k = dL/dz_k:   delta_{k-1} = (delta_k W_k) ⊙ phi'(z_{k-1})
 *   dL/dW_k = delta_k^T a_{k-1},   dL/db_k = sum over samples of delta_k
 * R-operator along v = (V_k, c_k):
 *   Rz_k = Ra_{k-1} W_k^T + a_{k-1} V_k^T + c_k,   Ra_k = phi'(z_k) ⊙ Rz_k   (phi'' = 0 a.e.)
 *   Rdelta_{K-1} = d²L/dz² · Rz_{K-1}   (loss curvature, below)
 *   Rdelta_{k-1} = (Rdelta_k W_k + delta_k V_k) ⊙ phi'(z_{k-1})
 *   (Hv)_{W_k} = Rdelta_k^T a_{k-1} + delta_k^T Ra_{k-1},   (Hv)_{b_k} = sum over samples of Rdelta_k
 * The delta_k V_k and delta_k^T Ra_{k-1} terms are the cross-layer terms that Gauss-Newton drops.
 *
 * Convolutional nets run the same passes with W_k a convolution (src/reference/layerMaps.ts holds
 * both linear maps and their transposes) and a pooling P_k after the activation of a hidden layer
 * (src/reference/pooling.ts): a_k = P_k(phi(z_k)), so the backward pass becomes
 *   delta_{k-1} = phi'(z_{k-1}) ⊙ P_{k-1}^T(delta_k W_k)
 * and the tangents Ra_k = P_k(phi'(z_k) ⊙ Rz_k), P being linear (average) or the arg-max routing
 * recorded in the forward pass (max), whose second derivative vanishes almost everywhere.
 */
import { type Dataset, subsetDataset, validateDataset } from "../data.ts";
import { InputError, assertFinite } from "../errors.ts";
import { convOutputShape, isConv, type LossKind, type ModelSpec, negativeSlope, outputWidth, parameterLayout, validateSpec } from "../model.ts";
import type { Objective } from "../objective.ts";
import { HostVectorSpace } from "../hostVectorSpace.ts";
import { zeroCounters } from "../objective.ts";
import { lossCurvature, lossValueAndGradient } from "./losses.ts";
import { type LayerMap, layerMap } from "./layerMaps.ts";
import { Pooling } from "./pooling.ts";

interface ForwardState {
  /** z_k per layer, [B, size of z_k] */
  z: Float64Array[];
  /** a[k] is the input of layer k: a[0] = x, a[k+1] = P_k(phi(z_k)). */
  a: Float64Array[];
  /** Per hidden layer with max pooling: the arg-max (index into phi(z_k)) of every pooled output. */
  argmax: (Int32Array | null)[];
}

export class ReferenceObjective implements Objective<Float64Array> {
  readonly space: HostVectorSpace;
  readonly counters = zeroCounters();
  readonly sampleCount: number;
  private readonly layout;
  private readonly slope: number;
  private readonly x: Float64Array;
  private readonly maps: LayerMap[];
  private readonly pools: (Pooling | null)[];

  constructor(readonly spec: ModelSpec, readonly data: Dataset, readonly lossKind: LossKind) {
    validateSpec(spec);
    validateDataset(spec, data, lossKind);
    this.layout = parameterLayout(spec);
    this.space = new HostVectorSpace(this.layout.dim);
    this.slope = negativeSlope(spec.activation);
    this.sampleCount = data.n;
    this.x = Float64Array.from(data.x);
    this.maps = spec.layers.map((l, k) => layerMap(l, this.layout.layers[k].weightOffset, this.layout.layers[k].biasOffset));
    this.pools = spec.layers.map((l) => {
      if (!isConv(l) || !l.pool) return null;
      const [c, h, w] = convOutputShape(l);
      return new Pooling(l.pool, c, h, w);
    });
  }

  loss(theta: Float64Array): Promise<number> {
    this.checkTheta(theta);
    this.counters.forward++;
    const st = this.forward(theta);
    return Promise.resolve(this.lossAndDelta(st).loss);
  }

  outputs(theta: Float64Array): Promise<Float64Array> {
    this.checkTheta(theta);
    this.counters.forward++;
    const st = this.forward(theta);
    return Promise.resolve(st.z[st.z.length - 1]);
  }

  gradient(theta: Float64Array, out: Float64Array): Promise<number> {
    this.checkTheta(theta);
    this.counters.gradient++;
    const st = this.forward(theta);
    const { loss, delta } = this.lossAndDelta(st);
    out.fill(0);
    this.backward(theta, st, delta, out);
    return Promise.resolve(loss);
  }

  hvp(theta: Float64Array, v: Float64Array, out: Float64Array): Promise<void> {
    this.checkTheta(theta);
    this.counters.hvp++;
    const st = this.forward(theta);
    const { delta } = this.lossAndDelta(st);
    const deltas = this.backwardDeltas(theta, st, delta);
    this.rOperator(theta, v, st, deltas, out);
    return Promise.resolve();
  }

  /**
   * The generalized Gauss-Newton product G v = J^T (d²L/dz²) J v (Schraudolph 2002): the R-operator
   * without the cross-layer terms delta_k V_k and delta_k^T Ra_{k-1}. G is positive semi-definite
   * for the convex losses here and equals H wherever the output deltas vanish.
   */
  gaussNewtonProduct(theta: Float64Array, v: Float64Array, out: Float64Array): Promise<void> {
    this.checkTheta(theta);
    this.counters.hvp++;
    const st = this.forward(theta);
    const { delta } = this.lossAndDelta(st);
    const deltas = this.backwardDeltas(theta, st, delta);
    this.rOperator(theta, v, st, deltas, out, true);
    return Promise.resolve();
  }

  async hvpBlock(theta: Float64Array, vs: Float64Array[], outs: Float64Array[]): Promise<void> {
    if (vs.length !== outs.length) throw new InputError(`hvpBlock got ${vs.length} vectors but ${outs.length} outputs`);
    this.checkTheta(theta);
    this.counters.blockHvpDirections += vs.length;
    const st = this.forward(theta);
    const { delta } = this.lossAndDelta(st);
    const deltas = this.backwardDeltas(theta, st, delta);
    vs.forEach((v, j) => this.rOperator(theta, v, st, deltas, outs[j]));
  }

  /**
   * Writes the gradient of the mean loss over the samples at `indices` (a minibatch, any order)
   * into `out`; returns that mean loss. The float64 twin of GpuObjective.minibatchGradient.
   */
  async minibatchGradient(theta: Float64Array, indices: ArrayLike<number>, out: Float64Array): Promise<number> {
    if (indices.length < 1) throw new InputError("a minibatch must have at least one sample");
    const batch = new ReferenceObjective(this.spec, subsetDataset(this.data, indices), this.lossKind);
    this.counters.gradient++;
    return await batch.gradient(theta, out);
  }

  dispose(): void {}

  /** Dense Hessian by n HVPs against the unit vectors (tiny nets only). Row-major [n, n]. */
  async denseHessian(theta: Float64Array): Promise<Float64Array> {
    const n = this.layout.dim;
    const h = new Float64Array(n * n);
    const e = new Float64Array(n);
    const col = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      e.fill(0);
      e[i] = 1;
      await this.hvp(theta, e, col);
      h.set(col, i * n);
    }
    return h;
  }

  /**
   * Minimum nonzero |z| over every hidden pre-activation, and the minimum nonzero gap between the
   * two largest values of every max-pooling window: how close the data sits to a kink of ReLU or
   * of max pooling. Exact zeros and exact ties (a dead unit feeding a bias-free one, windows of
   * zeros after ReLU) are skipped: f32 and f64 agree on those.
   */
  minHiddenPreactivation(theta: Float64Array): number {
    const st = this.forward(theta);
    let m = Infinity;
    for (let k = 0; k + 1 < st.z.length; k++) {
      for (const v of st.z[k]) if (v !== 0) m = Math.min(m, Math.abs(v));
      const pool = this.pools[k];
      if (pool) m = Math.min(m, pool.minGap(this.activate(st.z[k]), this.B));
    }
    return m;
  }

  private checkTheta(theta: Float64Array) {
    if (theta.length !== this.layout.dim) {
      throw new InputError(`theta has ${theta.length} entries, the model has ${this.layout.dim} parameters`);
    }
    assertFinite("theta", theta);
  }

  private get B(): number {
    return this.data.n;
  }

  private activate(z: Float64Array): Float64Array {
    return z.map((v) => (v > 0 ? v : this.slope * v));
  }

  /** phi'(z) ⊙ r, in place. */
  private mask(r: Float64Array, z: Float64Array): Float64Array {
    for (let i = 0; i < r.length; i++) if (!(z[i] > 0)) r[i] *= this.slope;
    return r;
  }

  private forward(theta: Float64Array): ForwardState {
    const K = this.spec.layers.length;
    const st: ForwardState = { z: [], a: [this.x], argmax: [] };
    for (let k = 0; k < K; k++) {
      const zk = this.maps[k].forward(theta, st.a[k], this.B);
      st.z.push(zk);
      if (k + 1 === K) break;
      const h = this.activate(zk);
      const pool = this.pools[k];
      if (pool) {
        const { out, argmax } = pool.forward(h, this.B);
        st.a.push(out);
        st.argmax.push(argmax);
      } else {
        st.a.push(h);
        st.argmax.push(null);
      }
    }
    return st;
  }

  private lossAndDelta(st: ForwardState): { loss: number; delta: Float64Array } {
    return lossValueAndGradient(this.lossKind, st.z[st.z.length - 1], this.data, outputWidth(this.spec));
  }

  /** delta_k for every layer, from delta_{K-1} = dL/dz_{K-1}. */
  private backwardDeltas(theta: Float64Array, st: ForwardState, deltaOut: Float64Array): Float64Array[] {
    const K = this.spec.layers.length;
    const deltas: Float64Array[] = new Array(K);
    deltas[K - 1] = deltaOut;
    for (let k = K - 1; k > 0; k--) {
      deltas[k - 1] = this.backProject(theta, k, deltas[k], st, undefined);
    }
    return deltas;
  }

  /** phi'(z_{k-1}) ⊙ P_{k-1}^T(add + d W_k): d of layer k's output shape, projected to z_{k-1}. */
  private backProject(w: Float64Array, k: number, d: Float64Array, st: ForwardState, add: Float64Array | undefined) {
    let r = this.maps[k].backProject(w, d, this.B, add);
    const pool = this.pools[k - 1];
    if (pool) r = pool.transpose(r, st.argmax[k - 1], this.B);
    return this.mask(r, st.z[k - 1]);
  }

  private backward(theta: Float64Array, st: ForwardState, deltaOut: Float64Array, grad: Float64Array) {
    const deltas = this.backwardDeltas(theta, st, deltaOut);
    this.maps.forEach((m, k) => m.accumulateGradient(deltas[k], st.a[k], grad, this.B, true));
  }

  /** Pearlmutter's R-operator: writes H v (or the Gauss-Newton product) into out. */
  private rOperator(theta: Float64Array, v: Float64Array, st: ForwardState, deltas: Float64Array[], out: Float64Array, gaussNewton = false) {
    if (v.length !== this.layout.dim) throw new InputError(`v has ${v.length} entries, the model has ${this.layout.dim} parameters`);
    const K = this.spec.layers.length;
    // Tangent forward pass: Ra[k] is the tangent of the input of layer k (Ra[0] = 0: x does not move).
    const Ra: Float64Array[] = [new Float64Array(this.x.length)];
    let RzOut: Float64Array = new Float64Array(0);
    for (let k = 0; k < K; k++) {
      const rz = this.maps[k].tangent(theta, v, st.a[k], Ra[k], this.B);
      if (k + 1 === K) {
        RzOut = rz;
        break;
      }
      const rh = this.mask(rz, st.z[k]);
      const pool = this.pools[k];
      Ra.push(pool ? pool.tangent(rh, st.argmax[k], this.B) : rh);
    }
    // Backward pass of the tangents.
    let Rdelta = lossCurvature(this.lossKind, st.z[K - 1], RzOut, this.data.n, outputWidth(this.spec));
    out.fill(0);
    for (let k = K - 1; k >= 0; k--) {
      this.maps[k].accumulateGradient(Rdelta, st.a[k], out, this.B, true);
      if (!gaussNewton) this.maps[k].accumulateGradient(deltas[k], Ra[k], out, this.B, false);
      if (k > 0) {
        const crossTerm = gaussNewton ? new Float64Array(this.B * this.maps[k].inSize) : this.maps[k].backProject(v, deltas[k], this.B);
        Rdelta = this.backProject(theta, k, Rdelta, st, crossTerm);
      }
    }
  }
}

