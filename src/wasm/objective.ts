/**
 * The WebAssembly CPU engine: loss, gradient and exact Hessian-vector products (Pearlmutter's
 * R-operator) of rectified MLPs and CNNs in float32, with every product done by the SIMD GEMM of
 * src/wasm/kernels.ts on the runtime's threads (src/wasm/runtime.ts). The passes are those of the
 * float64 reference (src/reference/engine.ts, whose header derives them):
 *   forward      z_k = L_k(a_k; W_k) + b_k,  a_{k+1} = P_k(phi(z_k))
 *   loss         delta_{K-1} = dL/dz_{K-1}
 *   backward     delta_{k-1} = phi'(z_{k-1}) ⊙ P_{k-1}^T(L_k^T(delta_k; W_k)),  g_W += L_W^T(delta_k; a_k)
 *   tangent      Rz_k = L_k(Ra_k; W_k) + L_k(a_k; V_k) + c_k,  Ra_{k+1} = P_k(phi'(z_k) ⊙ Rz_k)
 *   R-backward   Rdelta_{k-1} = phi'(z_{k-1}) ⊙ P_{k-1}^T(L_k^T(Rdelta_k; W_k) + L_k^T(delta_k; V_k))
 *                (Hv)_W += L_W^T(Rdelta_k; a_k) + L_W^T(delta_k; Ra_k),  (Hv)_b += sums of Rdelta_k
 * A linear layer's three products are gemms with strides (a·W^T, d·W, d^T·a). A convolution runs
 * as im2col + gemm: activations are kept channels-last ([sample][y][x][channel]) so that a
 * sample-position row of the column matrix is, per kernel tap, a contiguous run of channels, and
 * the weights are kept [out][tap][in/groups]; the linear layer after the last convolution takes
 * its columns permuted to match (PyTorch's Flatten reads NCHW). Parameters, directions and
 * products are permuted to and from that internal layout at the boundary (theta in, gradients
 * and HVPs out), so callers see the usual flat layout of src/model.ts.
 *
 * The data is copied once into wasm memory and processed in chunks of rows in a fixed order
 * (gradients accumulate in place), so results are deterministic. With one chunk, the forward
 * pass and the deltas are kept between calls at the same parameters, so a run of HVPs at one
 * point (Lanczos, Hutchinson) skips them. Biases, the activations of unpooled layers and the
 * rectifier's derivative in the tangent and backward passes come with the GEMMs (their bias and
 * epilogues); bias gradients, im2col and the remaining rectifier passes are wasm kernels on the
 * calling thread; pooling and losses run in JavaScript there (the softmax probabilities of the
 * loss are kept for the curvature of the R-operator).
 *
 * Vectors are host Float64Array (WasmVectorSpace, unit roundoff 2^-23: what the f32 products
 * resolve), so the host optimizers and every metric run on this engine unchanged.
 */
import { type Dataset, validateDataset } from "../data.ts";
import { assertFinite, InputError } from "../errors.ts";
import { HostVectorSpace } from "../hostVectorSpace.ts";
import {
  type Conv2dLayerSpec,
  convOutputShape,
  isConv,
  layerInputSize,
  layerOutputSize,
  layerPreactivationSize,
  type LossKind,
  type ModelSpec,
  negativeSlope,
  outputWidth,
  parameterLayout,
  poolOutputShape,
  validateSpec,
} from "../model.ts";
import { type Objective, zeroCounters } from "../objective.ts";
import type { MinibatchObjective } from "../train/trainer.ts";
import type { GemmArgs, WasmRuntime } from "./runtime.ts";

type Epilogue = NonNullable<GemmArgs["epilogue"]>;

/** Host float64 vectors whose products come from an f32 engine: unit roundoff 2^-23. */
export class WasmVectorSpace extends HostVectorSpace {
  override readonly epsilon = 2 ** -23;
}

/** Options of WasmObjective.create (those of the WebGPU engine, where they apply). */
export interface WasmObjectiveOptions {
  /** Samples per chunk (default: what keeps the chunk's buffers near 256 MiB, at most 4096). */
  chunkRows?: number;
  /** Accepted for the seam's sake: block HVPs share one forward pass whatever the block. */
  maxBlock?: number;
  /** Keep the forward pass and deltas between calls at the same theta (default true; one chunk only). */
  reuseForwardState?: boolean;
  /** Largest minibatch minibatchGradient takes (enables it). */
  minibatchRows?: number;
}

interface ConvPlan {
  Cin: number;
  Cout: number;
  P: number; // output positions
  T: number; // kernel taps
  Cg: number;
  Og: number;
  groups: number;
  CinT: number; // columns of the im2col matrix
  TCg: number; // columns per group
  taps: Int32Array; // [P*T]: input cell or -1
  inSize: number; // input floats per sample
  tapsAt: number; // byte address of taps in wasm memory
}

interface PoolPlan {
  max: boolean;
  C: number;
  P2: number; // output positions
  window: number;
  cells: Int32Array; // [P2*window]: input cell or -1
  divisors: Float32Array; // [P2]
}

interface LayerPlan {
  inSize: number;
  zSize: number;
  outSize: number;
  w: number; // element offset of the weight in theta
  b: number; // of the bias, -1 without
  O: number;
  conv: ConvPlan | null;
  pool: PoolPlan | null;
}

interface Chunk {
  x: number; // byte address of the rows
  rows: number;
  labels?: Int32Array;
  targets?: Float32Array;
}

function convPlan(l: Conv2dLayerSpec): ConvPlan {
  const [, oh, ow] = convOutputShape(l);
  const [kh, kw] = l.kernel;
  const T = kh * kw;
  const taps = new Int32Array(oh * ow * T);
  let n = 0;
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          const iy = y * l.stride[0] - l.padding[0] + i * l.dilation[0];
          const ix = x * l.stride[1] - l.padding[1] + j * l.dilation[1];
          taps[n++] = iy >= 0 && iy < l.inHeight && ix >= 0 && ix < l.inWidth ? iy * l.inWidth + ix : -1;
        }
      }
    }
  }
  const Cg = l.inChannels / l.groups;
  return { Cin: l.inChannels, Cout: l.outChannels, P: oh * ow, T, Cg, Og: l.outChannels / l.groups, groups: l.groups, CinT: l.inChannels * T, TCg: T * Cg, taps, inSize: l.inChannels * l.inHeight * l.inWidth, tapsAt: 0 };
}

function poolPlan(l: Conv2dLayerSpec): PoolPlan | null {
  const pool = l.pool;
  if (!pool) return null;
  const [c, h, w] = convOutputShape(l);
  const [, oh, ow] = poolOutputShape(pool, [c, h, w]);
  const [kh, kw] = pool.kernel;
  const window = kh * kw;
  const cells = new Int32Array(oh * ow * window);
  const divisors = new Float32Array(oh * ow);
  let n = 0;
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let inside = 0;
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          const iy = y * pool.stride[0] - pool.padding[0] + i;
          const ix = x * pool.stride[1] - pool.padding[1] + j;
          const ok = iy >= 0 && iy < h && ix >= 0 && ix < w;
          cells[n++] = ok ? iy * w + ix : -1;
          if (ok) inside++;
        }
      }
      divisors[y * ow + x] = pool.countIncludePad === false ? inside : window;
    }
  }
  return { max: pool.kind === "max", C: c, P2: oh * ow, window, cells, divisors };
}

/**
 * internal[i] = external[perm[i]] for the whole parameter vector, or null when the layouts agree
 * (MLPs): conv weights [out][in/g][tap] -> [out][tap][in/g]; the linear layer after a convolution
 * has its columns c·HW + p -> p·C + c.
 */
function parameterPermutation(spec: ModelSpec): Int32Array | null {
  if (!spec.layers.some(isConv)) return null;
  const layout = parameterLayout(spec);
  const perm = new Int32Array(layout.dim);
  for (let i = 0; i < perm.length; i++) perm[i] = i;
  spec.layers.forEach((l, k) => {
    const w = layout.layers[k].weightOffset;
    if (isConv(l)) {
      const T = l.kernel[0] * l.kernel[1];
      const Cg = l.inChannels / l.groups;
      for (let o = 0; o < l.outChannels; o++) {
        for (let t = 0; t < T; t++) for (let c = 0; c < Cg; c++) perm[w + o * T * Cg + t * Cg + c] = w + o * Cg * T + c * T + t;
      }
    } else if (k > 0 && isConv(spec.layers[k - 1])) {
      const prev = spec.layers[k - 1] as Conv2dLayerSpec;
      const [C, H, W] = prev.pool ? poolOutputShape(prev.pool, convOutputShape(prev)) : convOutputShape(prev);
      const P = H * W;
      for (let o = 0; o < l.outFeatures; o++) {
        for (let p = 0; p < P; p++) for (let c = 0; c < C; c++) perm[w + o * P * C + p * C + c] = w + o * P * C + c * P + p;
      }
    }
  });
  return perm;
}

export class WasmObjective implements Objective<Float64Array>, MinibatchObjective<Float64Array> {
  readonly counters = zeroCounters();
  readonly space: WasmVectorSpace;
  readonly sampleCount: number;
  readonly dim: number;
  readonly chunkRows: number;
  private readonly plans: LayerPlan[];
  private readonly perm: Int32Array | null;
  /** Per sample: internal position of external output j (a last convolution is channels-last inside). */
  private readonly outIndex: Int32Array | null;
  private readonly C: number;
  private readonly slope: number;
  private readonly allocations: number[] = [];
  private readonly hostTheta: Float32Array;
  private readonly labels?: Int32Array;
  private readonly targets?: Float32Array;
  private dataX = 0;
  private theta = 0;
  private dir = 0;
  private grad = 0;
  // per layer, rows of capacity R
  private z: number[] = [];
  private act: number[] = []; // act[k]: a_{k+1} (hidden layers)
  private argmax: number[] = [];
  private delta: number[] = [];
  private ra: number[] = []; // ra[k]: Ra_{k+1}
  private rz = 0;
  private rdelta: number[] = [];
  private back = 0;
  private hbuf = 0;
  private sumScratch = 0; // f64 column sums (bias gradients)
  /** Softmax probabilities of the rows at probsFor (internal order), kept by lossChunk for lossCurvature. */
  private probs = new Float64Array(0);
  private probsFor = -1;
  private cols: number[] = [];
  private keptCols: number[] = []; // per conv layer: im2col(a_k) from the last forward pass
  private currentInput: number[] = []; // per layer: the input address keptCols[k] was made from
  private mbX = 0;
  private readonly mbRows: number;
  private stateValid: "none" | "forward" | "deltas" = "none";
  private stateLoss = NaN;
  private disposed = false;

  private constructor(
    private readonly rt: WasmRuntime,
    readonly spec: ModelSpec,
    private readonly data: Dataset,
    readonly lossKind: LossKind,
    chunkRows: number,
    minibatchRows: number,
    private readonly reuseForwardState: boolean,
  ) {
    const layout = parameterLayout(spec);
    this.dim = layout.dim;
    this.space = new WasmVectorSpace(layout.dim);
    this.sampleCount = data.n;
    this.chunkRows = chunkRows;
    this.mbRows = minibatchRows;
    this.slope = negativeSlope(spec.activation);
    this.C = outputWidth(spec);
    this.perm = parameterPermutation(spec);
    this.hostTheta = new Float32Array(layout.dim);
    this.plans = spec.layers.map((l, k) => {
      const conv = isConv(l) ? convPlan(l) : null;
      const O = isConv(l) ? l.outChannels : l.outFeatures;
      return {
        inSize: layerInputSize(l),
        zSize: layerPreactivationSize(l),
        outSize: layerOutputSize(l),
        w: layout.layers[k].weightOffset,
        b: layout.layers[k].biasOffset,
        O,
        conv,
        pool: isConv(l) ? poolPlan(l) : null,
      };
    });
    const last = spec.layers[spec.layers.length - 1];
    if (isConv(last)) {
      const [c, h, w] = convOutputShape(last);
      const P = h * w;
      this.outIndex = new Int32Array(c * P);
      for (let o = 0; o < c; o++) for (let p = 0; p < P; p++) this.outIndex[o * P + p] = p * c + o;
    } else this.outIndex = null;
    if (data.labels) this.labels = Int32Array.from(data.labels);
    if (data.targets) this.targets = Float32Array.from(data.targets);
  }

  /** An objective over `data` on the runtime `rt` (the data is copied into wasm memory). */
  static create(rt: WasmRuntime, spec: ModelSpec, data: Dataset, lossKind: LossKind, options: WasmObjectiveOptions = {}): WasmObjective {
    validateSpec(spec);
    validateDataset(spec, data, lossKind);
    if (options.maxBlock !== undefined && !(Number.isInteger(options.maxBlock) && options.maxBlock >= 1)) {
      throw new InputError(`maxBlock must be a positive integer, got ${options.maxBlock}`);
    }
    const perRow = WasmObjective.floatsPerRow(spec);
    const fit = Math.max(1, Math.floor((64 * 2 ** 20) / perRow));
    let chunkRows = Math.min(data.n, fit, 4096);
    if (options.chunkRows !== undefined) {
      if (!Number.isInteger(options.chunkRows) || options.chunkRows < 1) throw new InputError(`chunkRows must be a positive integer, got ${options.chunkRows}`);
      chunkRows = Math.min(options.chunkRows, data.n);
    }
    let mb = 0;
    if (options.minibatchRows !== undefined) {
      if (!Number.isInteger(options.minibatchRows) || options.minibatchRows < 1) throw new InputError(`minibatchRows must be a positive integer, got ${options.minibatchRows}`);
      mb = Math.min(options.minibatchRows, data.n);
    }
    const o = new WasmObjective(rt, spec, data, lossKind, chunkRows, mb, options.reuseForwardState ?? true);
    try {
      o.allocate();
    } catch (e) {
      o.dispose();
      throw e;
    }
    return o;
  }

  /** Floats of layer and scratch buffers per row of a chunk. */
  private static floatsPerRow(spec: ModelSpec): number {
    let s = 0;
    let widest = 0;
    let cols = 0;
    for (const l of spec.layers) {
      const z = layerPreactivationSize(l);
      s += 3 * z + 3 * layerOutputSize(l);
      widest = Math.max(widest, z, layerInputSize(l));
      if (isConv(l)) {
        const [, h, w] = convOutputShape(l);
        const c = h * w * l.inChannels * l.kernel[0] * l.kernel[1];
        cols = Math.max(cols, c);
        s += c;
      }
    }
    return s + 5 * widest + 2 * cols;
  }

  private alloc(floats: number): number {
    const p = this.rt.alloc(floats);
    this.allocations.push(p);
    return p;
  }

  private allocate(): void {
    const { data, spec } = this;
    const d = data.features;
    this.theta = this.alloc(this.dim);
    this.dir = this.alloc(this.dim);
    this.grad = this.alloc(this.dim);
    this.dataX = this.alloc(data.n * d);
    const f = this.rt.f32;
    const first = spec.layers[0];
    if (isConv(first)) {
      // NCHW -> channels-last
      const C = first.inChannels;
      const HW = first.inHeight * first.inWidth;
      const base = this.dataX / 4;
      for (let s = 0; s < data.n; s++) {
        for (let c = 0; c < C; c++) {
          const src = s * d + c * HW;
          const dst = base + s * d + c;
          for (let p = 0; p < HW; p++) f[dst + p * C] = data.x[src + p];
        }
      }
    } else f.set(data.x, this.dataX / 4);
    const R = Math.max(this.chunkRows, this.mbRows);
    let widest = 0;
    let cols = 0;
    let zMax = 0;
    this.plans.forEach((p, k) => {
      const hidden = k + 1 < this.plans.length;
      this.z.push(this.alloc(R * p.zSize));
      this.delta.push(this.alloc(R * p.zSize));
      this.act.push(hidden ? this.alloc(R * p.outSize) : 0);
      this.ra.push(hidden ? this.alloc(R * p.outSize) : 0);
      this.argmax.push(hidden && p.pool?.max ? this.alloc(R * p.outSize) : 0);
      widest = Math.max(widest, p.inSize, p.zSize);
      zMax = Math.max(zMax, p.zSize);
      this.keptCols.push(p.conv ? this.alloc(R * p.conv.P * p.conv.CinT) : 0);
      if (p.conv) {
        cols = Math.max(cols, p.conv.P * p.conv.CinT);
        p.conv.tapsAt = this.alloc(p.conv.taps.length);
        this.rt.i32.set(p.conv.taps, p.conv.tapsAt / 4);
      }
    });
    this.rz = this.alloc(R * zMax);
    this.rdelta = [this.alloc(R * zMax), this.alloc(R * zMax)];
    this.back = this.alloc(R * widest);
    this.hbuf = this.alloc(R * zMax);
    this.sumScratch = this.alloc(2 * Math.max(...this.plans.map((p) => p.O)));
    if (this.lossKind === "ce") this.probs = new Float64Array(R * this.C);
    if (cols > 0) this.cols = [this.alloc(R * cols), this.alloc(R * cols)];
    if (this.mbRows > 0) this.mbX = this.alloc(this.mbRows * d);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const p of this.allocations) this.rt.release(p);
    this.allocations.length = 0;
  }

  // ---- the Objective interface ------------------------------------------------------------------

  async loss(theta: Float64Array): Promise<number> {
    this.counters.forward++;
    const changed = this.upload(theta);
    if (!changed && this.stateValid !== "none") return this.stateLoss;
    let total = 0;
    for (const ch of this.chunks()) {
      this.forward(ch);
      total += this.lossChunk(ch, this.sampleCount, false);
    }
    this.keepState("forward", total);
    return this.finiteLoss(total);
  }

  async outputs(theta: Float64Array): Promise<Float64Array> {
    this.counters.forward++;
    this.upload(theta);
    const out = new Float64Array(this.sampleCount * this.C);
    const K = this.plans.length;
    let row = 0;
    for (const ch of this.chunks()) {
      this.forward(ch);
      const f = this.rt.f32;
      const z = this.z[K - 1] / 4;
      const C = this.C;
      for (let s = 0; s < ch.rows; s++) {
        for (let j = 0; j < C; j++) out[(row + s) * C + j] = f[z + s * C + (this.outIndex ? this.outIndex[j] : j)];
      }
      row += ch.rows;
    }
    this.stateValid = "none";
    return out;
  }

  async gradient(theta: Float64Array, out: Float64Array): Promise<number> {
    if (out === theta) throw new InputError("gradient output must be a different vector from theta");
    this.checkOut(out, "gradient output");
    this.counters.gradient++;
    const changed = this.upload(theta);
    this.zero(this.grad, this.dim);
    let total: number;
    if (!changed && this.stateValid === "deltas") {
      total = this.stateLoss;
      this.weightGradients(this.singleChunk(), this.grad);
    } else {
      total = 0;
      for (const ch of this.chunks()) {
        this.forward(ch);
        total += this.lossChunk(ch, this.sampleCount, true);
        this.backward(ch);
        this.weightGradients(ch, this.grad);
      }
      this.keepState("deltas", total);
    }
    this.finiteLoss(total);
    this.download(this.grad, out);
    return total;
  }

  async hvp(theta: Float64Array, v: Float64Array, out: Float64Array): Promise<void> {
    if (out === theta) throw new InputError("HVP output must be a different vector from theta");
    this.counters.hvp++;
    this.hvps(theta, [v], [out]);
    return;
  }

  async hvpBlock(theta: Float64Array, vs: Float64Array[], outs: Float64Array[]): Promise<void> {
    if (vs.length !== outs.length) throw new InputError(`hvpBlock got ${vs.length} vectors but ${outs.length} outputs`);
    outs.forEach((o, j) => {
      if (o === theta) throw new InputError(`output ${j} must be a different vector from theta`);
    });
    this.counters.blockHvpDirections += vs.length;
    if (vs.length > 0) this.hvps(theta, vs, outs);
    return;
  }

  /**
   * The gradient of the mean loss over the samples at `indices` (any order) into `out`; returns
   * that mean loss. Needs the minibatchRows option.
   */
  async minibatchGradient(theta: Float64Array, indices: ArrayLike<number>, out: Float64Array): Promise<number> {
    const B = indices.length;
    if (B < 1) throw new InputError("a minibatch must have at least one sample");
    if (this.mbRows === 0) throw new InputError("minibatchGradient needs a WasmObjective created with the minibatchRows option");
    if (B > this.mbRows) throw new InputError(`a minibatch of ${B} samples exceeds minibatchRows ${this.mbRows}`);
    this.checkOut(out, "gradient output");
    this.counters.gradient++;
    this.upload(theta);
    const d = this.data.features;
    const f = this.rt.f32;
    const ch: Chunk = { x: this.mbX, rows: B };
    if (this.labels) ch.labels = new Int32Array(B);
    if (this.targets) ch.targets = new Float32Array(B * this.C);
    for (let r = 0; r < B; r++) {
      const i = indices[r];
      if (!(Number.isInteger(i) && i >= 0 && i < this.sampleCount)) throw new InputError(`minibatch index ${i} is outside the dataset's ${this.sampleCount} samples`);
      f.copyWithin(this.mbX / 4 + r * d, this.dataX / 4 + i * d, this.dataX / 4 + (i + 1) * d);
      if (ch.labels) ch.labels[r] = this.labels![i];
      if (ch.targets) ch.targets.set(this.targets!.subarray(i * this.C, (i + 1) * this.C), r * this.C);
    }
    this.stateValid = "none";
    this.zero(this.grad, this.dim);
    this.forward(ch);
    const total = this.lossChunk(ch, B, true);
    this.finiteLoss(total);
    this.backward(ch);
    this.weightGradients(ch, this.grad);
    this.download(this.grad, out);
    return total;
  }

  // ---- passes -----------------------------------------------------------------------------------

  private hvps(theta: Float64Array, vs: Float64Array[], outs: Float64Array[]): void {
    for (const v of vs) {
      if (v.length !== this.dim) throw new InputError(`v has ${v.length} entries, the model has ${this.dim} parameters`);
    }
    outs.forEach((o) => this.checkOut(o, "HVP output"));
    const changed = this.upload(theta);
    const single = this.chunkCount() === 1;
    if (single && (changed || this.stateValid !== "deltas")) {
      const ch = this.singleChunk();
      this.forward(ch);
      const total = this.lossChunk(ch, this.sampleCount, true);
      this.backward(ch);
      this.keepState("deltas", total);
    }
    for (let j = 0; j < vs.length; j++) {
      this.toInternal(vs[j], this.rt.f32.subarray(this.dir / 4, this.dir / 4 + this.dim));
      this.zero(this.grad, this.dim);
      if (single) this.rOperator(this.singleChunk(), this.grad);
      else {
        for (const ch of this.chunks()) {
          this.forward(ch);
          this.lossChunk(ch, this.sampleCount, true);
          this.backward(ch);
          this.rOperator(ch, this.grad);
        }
        this.stateValid = "none";
      }
      this.download(this.grad, outs[j]);
    }
  }

  private chunkCount(): number {
    return Math.ceil(this.sampleCount / this.chunkRows);
  }

  private chunk(i: number): Chunk {
    const r0 = i * this.chunkRows;
    const rows = Math.min(this.chunkRows, this.sampleCount - r0);
    const ch: Chunk = { x: this.dataX + 4 * r0 * this.data.features, rows };
    if (this.labels) ch.labels = this.labels.subarray(r0, r0 + rows);
    if (this.targets) ch.targets = this.targets.subarray(r0 * this.C, (r0 + rows) * this.C);
    return ch;
  }

  private singleChunk(): Chunk {
    return this.chunk(0);
  }

  private *chunks(): Generator<Chunk> {
    const n = this.chunkCount();
    for (let i = 0; i < n; i++) yield this.chunk(i);
  }

  private keepState(kind: "forward" | "deltas", loss: number) {
    if (this.reuseForwardState && this.chunkCount() === 1) {
      this.stateValid = kind;
      this.stateLoss = loss;
    } else this.stateValid = "none";
  }

  private finiteLoss(total: number): number {
    if (!Number.isFinite(total)) throw new InputError(`the loss is not finite (${total}): check theta and the data for huge or non-finite values`);
    return total;
  }

  /** Input of layer k for a chunk: the data rows, or a_k. */
  private input(ch: Chunk, k: number): number {
    return k === 0 ? ch.x : this.act[k - 1];
  }

  private forward(ch: Chunk): void {
    const K = this.plans.length;
    const R = ch.rows;
    this.probsFor = -1;
    for (let k = 0; k < K; k++) {
      const p = this.plans[k];
      if (p.conv) {
        this.im2col(p.conv, this.input(ch, k), this.keptCols[k], R);
        this.currentInput[k] = this.input(ch, k);
      }
      const hidden = k + 1 < K;
      // The activation of an unpooled hidden layer comes with the gemm (its epilogue).
      const epilogue: Epilogue | undefined = hidden && !p.pool ? { kind: "rectify", Z: this.act[k], slope: this.slope } : undefined;
      this.linearMap(k, [[this.theta, this.input(ch, k)]], this.theta, this.z[k], R, epilogue);
      if (!hidden) break;
      if (p.pool) {
        this.rt.rectify(this.hbuf, this.z[k], this.z[k], R * p.zSize, this.slope);
        this.poolForward(p, this.hbuf, this.act[k], this.argmax[k], R);
      }
    }
  }

  /** Loss of a chunk (sum over its rows divided by N, in float64); with `delta`, dL/dz into delta[K-1]. */
  private lossChunk(ch: Chunk, N: number, withDelta: boolean): number {
    const K = this.plans.length;
    const f = this.rt.f32;
    const z = this.z[K - 1] / 4;
    const dl = this.delta[K - 1] / 4;
    const C = this.C;
    const map = this.outIndex;
    const at = (j: number) => (map ? map[j] : j);
    let total = 0;
    if (this.lossKind === "ce") {
      const p = new Float64Array(C);
      const probs = this.probs;
      const idx = map ?? Int32Array.from({ length: C }, (_, j) => j);
      const labels = ch.labels!;
      for (let s = 0; s < ch.rows; s++) {
        const row = z + s * C;
        let m = -Infinity;
        for (let j = 0; j < C; j++) m = Math.max(m, f[row + idx[j]]);
        let sum = 0;
        for (let j = 0; j < C; j++) {
          p[j] = Math.exp(f[row + idx[j]] - m);
          sum += p[j];
        }
        const y = labels[s];
        total += m + Math.log(sum) - f[row + idx[y]];
        if (withDelta) {
          for (let j = 0; j < C; j++) {
            const q = p[j] / sum;
            probs[s * C + idx[j]] = q;
            f[dl + s * C + idx[j]] = (q - (j === y ? 1 : 0)) / N;
          }
        }
      }
      if (withDelta) this.probsFor = ch.x;
      return total / N;
    }
    if (this.lossKind === "mse") {
      const t = ch.targets!;
      const scale = 2 / (N * C);
      for (let s = 0; s < ch.rows; s++) {
        for (let j = 0; j < C; j++) {
          const i = s * C + at(j);
          const r = f[z + i] - t[s * C + j];
          total += r * r;
          if (withDelta) f[dl + i] = scale * r;
        }
      }
      return total / (N * C);
    }
    for (let s = 0; s < ch.rows; s++) {
      const v = f[z + s];
      const y = ch.labels![s];
      total += Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v))) - y * v;
      if (withDelta) f[dl + s] = (sigmoid(v) - y) / N;
    }
    return total / N;
  }

  /** d²L/dz² applied to Rz (the rz buffer), into rdelta. */
  private lossCurvature(ch: Chunk, N: number, out: number): void {
    const K = this.plans.length;
    const f = this.rt.f32;
    const z = this.z[K - 1] / 4;
    const rz = this.rz / 4;
    const o = out / 4;
    const C = this.C;
    const R = ch.rows;
    if (this.lossKind === "ce" && this.probsFor === ch.x) {
      const probs = this.probs;
      for (let s = 0; s < R; s++) {
        const row = s * C;
        let pr = 0;
        for (let j = 0; j < C; j++) pr += probs[row + j] * f[rz + row + j];
        for (let j = 0; j < C; j++) f[o + row + j] = (probs[row + j] * (f[rz + row + j] - pr)) / N;
      }
    } else if (this.lossKind === "ce") {
      // The softmax curvature does not depend on the order of a row's entries.
      const p = new Float64Array(C);
      for (let s = 0; s < R; s++) {
        const row = s * C;
        let m = -Infinity;
        for (let j = 0; j < C; j++) m = Math.max(m, f[z + row + j]);
        let sum = 0;
        for (let j = 0; j < C; j++) {
          p[j] = Math.exp(f[z + row + j] - m);
          sum += p[j];
        }
        let pr = 0;
        for (let j = 0; j < C; j++) {
          p[j] /= sum;
          pr += p[j] * f[rz + row + j];
        }
        for (let j = 0; j < C; j++) f[o + row + j] = (p[j] * (f[rz + row + j] - pr)) / N;
      }
    } else if (this.lossKind === "mse") {
      const scale = 2 / (N * C);
      for (let i = 0; i < R * C; i++) f[o + i] = scale * f[rz + i];
    } else {
      for (let s = 0; s < R; s++) {
        const q = sigmoid(f[z + s]);
        f[o + s] = (q * (1 - q) * f[rz + s]) / N;
      }
    }
  }

  /** delta_{k-1} for k = K-1..1, from delta_{K-1}. */
  private backward(ch: Chunk): void {
    for (let k = this.plans.length - 1; k > 0; k--) {
      this.backProject(k, [[this.theta, this.delta[k]]], this.delta[k - 1], ch.rows);
    }
  }

  /** g_W += L_W^T(delta_k; a_k) and g_b += sums of delta_k for every layer. */
  private weightGradients(ch: Chunk, grad: number): void {
    this.plans.forEach((_, k) => this.layerGradient(k, [[this.delta[k], this.input(ch, k)]], grad, ch.rows, this.delta[k]));
  }

  /** Tangent forward pass along dir, then the R-backward pass accumulating Hv into out. */
  private rOperator(ch: Chunk, out: number): void {
    const K = this.plans.length;
    const R = ch.rows;
    for (let k = 0; k < K; k++) {
      const p = this.plans[k];
      const pairs: [number, number][] = [[this.dir, this.input(ch, k)]];
      if (k > 0) pairs.push([this.theta, this.ra[k - 1]]);
      if (k + 1 < K && !p.pool) {
        // Ra = phi'(z) ⊙ Rz straight from the gemm (its epilogue).
        this.linearMap(k, pairs, this.dir, this.ra[k], R, { kind: "mask", Z: this.z[k], slope: this.slope });
        continue;
      }
      this.linearMap(k, pairs, this.dir, this.rz, R);
      if (k + 1 === K) break;
      // Rh = phi'(z) ⊙ Rz, then the pooling's tangent.
      this.mask(this.rz, this.z[k], R * p.zSize);
      this.poolTangent(p, this.rz, this.ra[k], this.argmax[k], R);
    }
    let cur = 0;
    this.lossCurvature(ch, this.sampleCount, this.rdelta[cur]);
    for (let k = K - 1; k >= 0; k--) {
      const pairs: [number, number][] = [[this.rdelta[cur], this.input(ch, k)]];
      if (k > 0) pairs.push([this.delta[k], this.ra[k - 1]]);
      this.layerGradient(k, pairs, out, R, this.rdelta[cur]);
      if (k > 0) {
        this.backProject(k, [[this.theta, this.rdelta[cur]], [this.dir, this.delta[k]]], this.rdelta[1 - cur], R);
        cur = 1 - cur;
      }
    }
  }

  // ---- layer maps -------------------------------------------------------------------------------

  /**
   * z = sum over pairs of L_k(input; weights) + bias (bias taken from `biasFrom` at the layer's
   * bias offset): the forward pass (one pair) and the tangent (two pairs).
   */
  private linearMap(k: number, pairs: [number, number][], biasFrom: number, out: number, R: number, epilogue?: Epilogue): void {
    const p = this.plans[k];
    const hasBias = p.b >= 0;
    const c = p.conv;
    const bias = hasBias ? biasFrom + 4 * p.b : 0;
    const rows = c ? R * c.P : R;
    pairs.forEach(([weights, input], i) => {
      // The first product overwrites the output and adds the bias (the gemm's, with the first block of the sum).
      const accumulate = i > 0;
      const withBias = i === 0 && hasBias ? bias : undefined;
      const wAt = weights + 4 * p.w;
      const last = i + 1 === pairs.length;
      if (!c) {
        this.rt.gemm({ M: R, N: p.O, K: p.inSize, A: input, rsA: p.inSize, csA: 1, B: wAt, rsB: 1, csB: p.inSize, C: out, ldc: p.O, accumulate, bias: withBias, epilogue: last ? epilogue : undefined });
        return;
      }
      const cols = this.colsFor(k, c, input, i, R);
      for (let g = 0; g < c.groups; g++) {
        this.rt.gemm({
          M: rows, N: c.Og, K: c.TCg,
          A: cols + 4 * g * c.TCg, rsA: c.CinT, csA: 1,
          B: wAt + 4 * g * c.Og * c.TCg, rsB: 1, csB: c.TCg,
          C: out + 4 * g * c.Og, ldc: c.Cout, accumulate,
          bias: withBias === undefined ? undefined : withBias + 4 * g * c.Og,
          epilogue: last && epilogue ? { ...epilogue, Z: epilogue.Z + 4 * g * c.Og } : undefined,
        });
      }
    });
  }

  /**
   * out = phi'(z_{k-1}) ⊙ P_{k-1}^T(sum over pairs of L_k^T(d; weights)): the data gradient of
   * layer k brought back to layer k-1's pre-activation.
   */
  private backProject(k: number, pairs: [number, number][], out: number, R: number): void {
    const p = this.plans[k];
    const prev = this.plans[k - 1];
    const c = p.conv;
    // With pooling before this layer, the product lands in `back` and is spread into out.
    const target = prev.pool ? this.back : out;
    if (!c) {
      // Without pooling, phi'(z_{k-1}) comes with the last gemm (its epilogue).
      const fused = !prev.pool;
      pairs.forEach(([weights, d], i) => {
        const epilogue: Epilogue | undefined = fused && i + 1 === pairs.length ? { kind: "mask", Z: this.z[k - 1], slope: this.slope } : undefined;
        this.rt.gemm({ M: R, N: p.inSize, K: p.O, A: d, rsA: p.O, csA: 1, B: weights + 4 * p.w, rsB: p.inSize, csB: 1, C: target, ldc: p.inSize, accumulate: i > 0, epilogue });
      });
      if (fused) return;
    } else {
      const dcols = this.cols[0];
      pairs.forEach(([weights, d], i) => {
        for (let g = 0; g < c.groups; g++) {
          this.rt.gemm({
            M: R * c.P, N: c.TCg, K: c.Og,
            A: d + 4 * g * c.Og, rsA: c.Cout, csA: 1,
            B: weights + 4 * (p.w + g * c.Og * c.TCg), rsB: c.TCg, csB: 1,
            C: dcols + 4 * g * c.TCg, ldc: c.CinT, accumulate: i > 0,
          });
        }
      });
      this.col2im(c, dcols, target, R);
    }
    if (prev.pool) this.poolTranspose(prev, this.back, out, this.argmax[k - 1], R);
    this.mask(out, this.z[k - 1], R * prev.zSize);
  }

  /** grad_W += sum over pairs of L_W^T(d; input); grad_b += sums of `biasD`. */
  private layerGradient(k: number, pairs: [number, number][], grad: number, R: number, biasD: number): void {
    const p = this.plans[k];
    const c = p.conv;
    pairs.forEach(([d, input], i) => {
      if (!c) {
        this.rt.gemm({ M: p.O, N: p.inSize, K: R, A: d, rsA: 1, csA: p.O, B: input, rsB: p.inSize, csB: 1, C: grad + 4 * p.w, ldc: p.inSize, accumulate: true });
        return;
      }
      const cols = this.colsFor(k, c, input, i, R);
      for (let g = 0; g < c.groups; g++) {
        this.rt.gemm({
          M: c.Og, N: c.TCg, K: R * c.P,
          A: d + 4 * g * c.Og, rsA: 1, csA: c.Cout,
          B: cols + 4 * g * c.TCg, rsB: c.CinT, csB: 1,
          C: grad + 4 * (p.w + g * c.Og * c.TCg), ldc: c.TCg, accumulate: true,
        });
      }
    });
    if (p.b < 0) return;
    this.rt.colSums(grad + 4 * p.b, biasD, c ? R * c.P : R, p.O, this.sumScratch);
  }

  // ---- element-wise passes (JavaScript) ---------------------------------------------------------

  /** r <- phi'(z) ⊙ r over n entries. */
  private mask(r: number, z: number, n: number): void {
    if (this.slope !== 1) this.rt.rectify(r, r, z, n, this.slope);
  }

  private zero(at: number, n: number): void {
    this.rt.f32.fill(0, at / 4, at / 4 + n);
  }

  /**
   * The im2col matrix of `input` for conv layer k: the one kept from the forward pass when the
   * input is a_k (or the data rows) of the current chunk, else computed into scratch `slot`.
   */
  private colsFor(k: number, c: ConvPlan, input: number, slot: number, R: number): number {
    if (input === this.currentInput[k]) return this.keptCols[k];
    this.im2col(c, input, this.cols[slot], R);
    return this.cols[slot];
  }

  /** cols[(s, p)][g][t][c] = input[s][tap(p, t)][g·Cg + c], 0 on padding (kernels.ts). */
  private im2col(c: ConvPlan, input: number, cols: number, R: number): void {
    this.rt.im2col(input, cols, R, c.P, c.T, c.Cin, c.Cg, c.groups, c.tapsAt, c.inSize);
  }

  /** out[s][cell][g·Cg + c] = sum of dcols over the (p, t) that read it (the transpose of im2col). */
  private col2im(c: ConvPlan, dcols: number, out: number, R: number): void {
    this.rt.col2im(out, dcols, R, c.P, c.T, c.Cin, c.Cg, c.groups, c.tapsAt, c.inSize);
  }

  /** Max or average pooling of h [R, zSize] (channels-last) into out [R, outSize]; max records its arg-max. */
  private poolForward(p: LayerPlan, h: number, out: number, argmax: number, R: number): void {
    const q = p.pool!;
    const f = this.rt.f32;
    const ints = this.rt.i32;
    const { C, P2, window, cells, divisors } = q;
    const h4 = h / 4;
    const o4 = out / 4;
    const am = argmax / 4;
    for (let s = 0; s < R; s++) {
      const hs = s * p.zSize;
      for (let p2 = 0; p2 < P2; p2++) {
        const ob = s * p.outSize + p2 * C;
        for (let ch = 0; ch < C; ch++) {
          if (q.max) {
            let best = -Infinity;
            let at = -1;
            for (let t = 0; t < window; t++) {
              const cell = cells[p2 * window + t];
              if (cell < 0) continue;
              const i = hs + cell * C + ch;
              if (f[h4 + i] > best) {
                best = f[h4 + i];
                at = i;
              }
            }
            f[o4 + ob + ch] = best;
            ints[am + ob + ch] = at;
          } else {
            let acc = 0;
            for (let t = 0; t < window; t++) {
              const cell = cells[p2 * window + t];
              if (cell >= 0) acc += f[h4 + hs + cell * C + ch];
            }
            f[o4 + ob + ch] = acc / divisors[p2];
          }
        }
      }
    }
  }

  /** The pooling's tangent: Rh routed through the recorded arg-max (max) or averaged (avg). */
  private poolTangent(p: LayerPlan, rh: number, out: number, argmax: number, R: number): void {
    const q = p.pool!;
    if (!q.max) {
      this.poolForward(p, rh, out, 0, R);
      return;
    }
    const f = this.rt.f32;
    const ints = this.rt.i32;
    const n = R * p.outSize;
    const o4 = out / 4;
    const r4 = rh / 4;
    const am = argmax / 4;
    for (let i = 0; i < n; i++) f[o4 + i] = f[r4 + ints[am + i]];
  }

  /** The pooling's transpose: d [R, outSize] spread back to [R, zSize]. */
  private poolTranspose(p: LayerPlan, d: number, out: number, argmax: number, R: number): void {
    const q = p.pool!;
    const f = this.rt.f32;
    const o4 = out / 4;
    const d4 = d / 4;
    f.fill(0, o4, o4 + R * p.zSize);
    if (q.max) {
      const ints = this.rt.i32;
      const am = argmax / 4;
      const n = R * p.outSize;
      for (let i = 0; i < n; i++) f[o4 + ints[am + i]] += f[d4 + i];
      return;
    }
    const { C, P2, window, cells, divisors } = q;
    for (let s = 0; s < R; s++) {
      for (let p2 = 0; p2 < P2; p2++) {
        for (let ch = 0; ch < C; ch++) {
          const share = f[d4 + s * p.outSize + p2 * C + ch] / divisors[p2];
          for (let t = 0; t < window; t++) {
            const cell = cells[p2 * window + t];
            if (cell >= 0) f[o4 + s * p.zSize + cell * C + ch] += share;
          }
        }
      }
    }
  }

  // ---- parameters in and out --------------------------------------------------------------------

  private toInternal(v: Float64Array, out: Float32Array): void {
    const perm = this.perm;
    if (perm) for (let i = 0; i < out.length; i++) out[i] = v[perm[i]];
    else out.set(v);
  }

  /** Copies theta into wasm memory; false when it equals what is there (the kept state stays valid). */
  private upload(theta: Float64Array): boolean {
    if (this.disposed) throw new InputError("the objective was disposed");
    if (theta.length !== this.dim) throw new InputError(`theta has ${theta.length} entries, the model has ${this.dim} parameters`);
    // Any infinity or NaN makes the sum NaN; assertFinite then names the first (a fast check first).
    let probe = 0;
    for (let i = 0; i < theta.length; i++) probe += theta[i] * 0;
    if (probe !== 0) assertFinite("theta", theta);
    const t = this.hostTheta;
    this.toInternal(theta, t);
    const f = this.rt.f32;
    const at = this.theta / 4;
    let same = this.stateValid !== "none";
    if (same) {
      for (let i = 0; i < t.length; i++) {
        if (f[at + i] !== t[i]) {
          same = false;
          break;
        }
      }
    }
    if (!same) {
      f.set(t, at);
      this.stateValid = "none";
    }
    return !same;
  }

  private download(at: number, out: Float64Array): void {
    const f = this.rt.f32;
    const a = at / 4;
    const perm = this.perm;
    if (perm) for (let i = 0; i < this.dim; i++) out[perm[i]] = f[a + i];
    else out.set(f.subarray(a, a + this.dim));
  }

  private checkOut(out: Float64Array, what: string): void {
    if (out.length !== this.dim) throw new InputError(`${what} has ${out.length} entries, the model has ${this.dim} parameters`);
  }
}

function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}
