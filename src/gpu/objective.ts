/**
 * The WebGPU engine: loss, gradient and exact Hessian-vector products of a rectified MLP over a
 * dataset kept on the GPU. It runs the same passes as the float64 reference
 * (src/reference/engine.ts, whose header derives them), with every product done by gemm.wgsl:
 *   forward      z_k = a_{k-1} W_k^T + b_k,  a_k = phi(z_k)
 *   loss         per-sample loss, delta_{K-1} = dL/dz
 *   backward     delta_{k-1} = (delta_k W_k) ⊙ phi'(z_{k-1}),  g_W += delta_k^T a_{k-1},  g_b += colsum delta_k
 *   tangent      Ra_k = phi'(z_k) ⊙ (Ra_{k-1} W_k^T + a_{k-1} V_k^T + c_k)           (k directions at once)
 *   R-backward   Rdelta_{k-1} = (Rdelta_k W_k + delta_k V_k) ⊙ phi'(z_{k-1})
 *                (Hv)_W += Rdelta_k^T a_{k-1} + delta_k^T Ra_{k-1},  (Hv)_b += colsum Rdelta_k
 * Data larger than one chunk is processed chunk by chunk in a fixed order, gradients accumulating
 * in place, so results are deterministic. When the whole dataset is one chunk, the forward pass
 * and the deltas are kept between calls at the same parameters (same vector, same version), so a
 * run of HVPs at one point (Lanczos, Hutchinson) skips them.
 *
 * Minibatches (training): with `minibatchRows`, minibatchGradient(theta, indices, out) writes the
 * gradient of the mean loss over the samples at `indices` (a minibatch, in any order). Their rows
 * are gathered on the host and written into a batch buffer of that many rows (B·(d + C) floats a
 * step, what a data loader uploads), then the same forward and backward kernels run on it with
 * the loss scaled by 1/B; the dispatch lists are built once per batch size, and no readback
 * happens, so a training loop queues work without waiting for the GPU. The full-data chunks are
 * left as they are, so loss, gradient, hvp and outputs over the whole dataset are unchanged.
 */
import { type Dataset, validateDataset } from "../data.ts";
import { DeviceLimitError, InputError } from "../errors.ts";
import { type LinearLayerSpec, type LossKind, type MlpSpec, type ModelSpec, negativeSlope, outputWidth, parameterLayout, requireMlp, validateSpec } from "../model.ts";
import { type Objective, zeroCounters } from "../objective.ts";
import type { GpuContext } from "./context.ts";
import { type Dispatch, DispatchBuilder, encodeDispatches, type Operand, reduceGroups } from "./dispatch.ts";
import { BufferPool } from "./pool.ts";
import { GpuVector, GpuVectorSpace } from "./vectors.ts";
import { type DataChunk, uploadDataChunks } from "./dataChunks.ts";
import { BufferUsage, MapMode, STORAGE_COPY } from "./usage.ts";

export interface GpuObjectiveOptions {
  /** Samples per chunk (default: as many as fit, at most 4096). */
  chunkRows?: number;
  /** Directions per block HVP pass (default 8). Larger blocks are split. */
  maxBlock?: number;
  /**
   * Keep the forward pass and deltas between gradient/HVP calls at the same theta (default true;
   * only when the data is one chunk). Benchmarks turn it off to time full HVPs.
   */
  reuseForwardState?: boolean;
  /**
   * Largest minibatch minibatchGradient will take (enables it; clamped to the sample count). The
   * objective then keeps a reference to the dataset's arrays to gather minibatch rows from:
   * do not change them while it lives.
   */
  minibatchRows?: number;
}

const LOSS_CODE: Record<LossKind, number> = { ce: 0, mse: 1, logistic: 2 };

type Chunk = DataChunk;

interface LayerBuffers {
  z: GPUBuffer; // [rows, out]
  a: GPUBuffer | null; // phi(z), hidden layers only
  delta: GPUBuffer; // [rows, out]
  ra: GPUBuffer; // [maxBlock, rows, out]: Ra_k for hidden layers, Rz for the output layer
  rdelta: GPUBuffer; // [maxBlock, rows, out]
}

export class GpuObjective implements Objective<GpuVector> {
  readonly counters = zeroCounters();
  readonly sampleCount: number;
  readonly dim: number;
  private readonly layout;
  private readonly slope: number;
  private readonly buffers: GPUBuffer[] = [];
  private readonly builder: DispatchBuilder;
  private readonly plans = new Map<string, Promise<Dispatch[]>>();
  private chunks: Chunk[] = [];
  private layers: LayerBuffers[] = [];
  private theta!: GPUBuffer;
  private directions!: GPUBuffer; // [maxBlock, n]
  private products!: GPUBuffer; // [maxBlock, n]
  private sampleLosses!: GPUBuffer;
  private partials!: GPUBuffer;
  private scalars!: GPUBuffer;
  private cachedState: { vector: GpuVector; version: number } | null = null;
  private disposed = false;
  /** Rows the layer buffers hold: chunkRows, or the minibatch size when that is larger. */
  private rowCapacity: number;
  /** Minibatch support (minibatchRows): the host data, the batch buffers and host scratch for gathering. */
  private minibatch: {
    data: Dataset;
    rows: number;
    x: GPUBuffer;
    targets: GPUBuffer;
    losses: GPUBuffer;
    xScratch: Float32Array;
    targetScratch: Float32Array;
  } | null = null;

  private constructor(
    readonly ctx: GpuContext,
    readonly spec: MlpSpec,
    readonly lossKind: LossKind,
    readonly space: GpuVectorSpace,
    readonly chunkRows: number,
    readonly maxBlock: number,
    private readonly reuseForwardState: boolean,
  ) {
    this.layout = parameterLayout(spec);
    this.dim = this.layout.dim;
    this.slope = negativeSlope(spec.activation);
    this.sampleCount = 0;
    this.rowCapacity = chunkRows;
    this.builder = new DispatchBuilder(ctx);
  }

  static async create(ctx: GpuContext, spec: ModelSpec, data: Dataset, lossKind: LossKind, options: GpuObjectiveOptions = {}): Promise<GpuObjective> {
    validateSpec(spec);
    requireMlp(spec, "GpuObjective (the WebGPU MLP engine; GpuConvObjective takes convolutional nets)");
    validateDataset(spec, data, lossKind);
    const maxBlock = options.maxBlock ?? 8;
    if (!Number.isInteger(maxBlock) || maxBlock < 1) throw new InputError(`maxBlock must be a positive integer, got ${maxBlock}`);
    const linear: LinearLayerSpec[] = spec.layers;
    const widest = Math.max(...linear.map((l) => Math.max(l.inFeatures, l.outFeatures)));
    const bindingLimit = ctx.limits.maxStorageBufferBindingSize;
    const fitRows = Math.floor(bindingLimit / (4 * maxBlock * widest));
    if (fitRows < 1) {
      throw new DeviceLimitError(
        `a layer of width ${widest} with ${maxBlock} HVP directions does not fit one storage binding ` +
          `(${bindingLimit} bytes, maxStorageBufferBindingSize); lower maxBlock`,
      );
    }
    let chunkRows = Math.min(data.n, fitRows, 4096);
    if (options.chunkRows !== undefined) {
      if (!Number.isInteger(options.chunkRows) || options.chunkRows < 1) throw new InputError(`chunkRows must be a positive integer, got ${options.chunkRows}`);
      if (options.chunkRows > fitRows) {
        throw new DeviceLimitError(`chunkRows ${options.chunkRows} needs bindings past maxStorageBufferBindingSize (${bindingLimit} bytes); at most ${fitRows} fit`);
      }
      chunkRows = Math.min(options.chunkRows, data.n);
    }
    let minibatchRows = 0;
    if (options.minibatchRows !== undefined) {
      if (!Number.isInteger(options.minibatchRows) || options.minibatchRows < 1) throw new InputError(`minibatchRows must be a positive integer, got ${options.minibatchRows}`);
      minibatchRows = Math.min(options.minibatchRows, data.n);
      if (minibatchRows > fitRows) {
        throw new DeviceLimitError(`a minibatch of ${minibatchRows} samples needs bindings past maxStorageBufferBindingSize (${bindingLimit} bytes); at most ${fitRows} fit`);
      }
    }
    const space = await GpuVectorSpace.create(ctx, parameterLayout(spec).dim);
    const objective = new GpuObjective(ctx, spec, lossKind, space, chunkRows, maxBlock, options.reuseForwardState ?? true);
    (objective as { sampleCount: number }).sampleCount = data.n;
    objective.rowCapacity = Math.max(chunkRows, minibatchRows);
    await ctx.withErrorScope("uploading the model's data", () => objective.allocate(data, minibatchRows));
    return objective;
  }

  private buffer(label: string, floats: number): GPUBuffer {
    this.ctx.checkBindingSize(label, floats * 4);
    const b = this.ctx.device.createBuffer({ label: `flatness:${label}`, size: Math.max(16, floats * 4), usage: STORAGE_COPY });
    this.buffers.push(b);
    return b;
  }

  private allocate(data: Dataset, minibatchRows: number) {
    const n = this.dim;
    const d = data.features;
    const c = outputWidth(this.spec);
    this.theta = this.buffer(`theta[${n}]`, n);
    this.directions = this.buffer(`directions[${this.maxBlock}x${n}]`, this.maxBlock * n);
    this.products = this.buffer(`products[${this.maxBlock}x${n}]`, this.maxBlock * n);
    this.sampleLosses = this.buffer(`sample-losses[${data.n}]`, data.n);
    this.partials = this.buffer("loss-partials", 256);
    this.scalars = this.buffer("scalars", 4);
    const queue = this.ctx.device.queue;
    this.chunks = uploadDataChunks(queue, this.spec, data, this.lossKind, this.chunkRows, (label, floats) => this.buffer(label, floats));
    if (minibatchRows > 0) {
      const B = minibatchRows;
      const t = this.lossKind === "mse" ? B * c : B;
      this.minibatch = {
        data,
        rows: B,
        x: this.buffer(`minibatch x[${B}x${d}]`, B * d),
        targets: this.buffer(`minibatch targets[${t}]`, t),
        losses: this.buffer(`minibatch losses[${B}]`, B),
        xScratch: new Float32Array(B * d),
        targetScratch: new Float32Array(t),
      };
    }
    // Layer buffers hold rowCapacity rows; the HVP plans' per-direction strides stay chunkRows.
    const R = this.rowCapacity;
    const linear: LinearLayerSpec[] = this.spec.layers;
    this.layers = linear.map((l, k) => {
      const hidden = k + 1 < this.spec.layers.length;
      const w = l.outFeatures;
      return {
        z: this.buffer(`z${k}[${R}x${w}]`, R * w),
        a: hidden ? this.buffer(`a${k}[${R}x${w}]`, R * w) : null,
        delta: this.buffer(`delta${k}[${R}x${w}]`, R * w),
        ra: this.buffer(`${hidden ? "Ra" : "Rz"}${k}[${this.maxBlock}x${R}x${w}]`, this.maxBlock * R * w),
        rdelta: this.buffer(`Rdelta${k}[${this.maxBlock}x${R}x${w}]`, this.maxBlock * R * w),
      };
    });
  }

  // ---- dispatch lists --------------------------------------------------------------------

  /** Memoised dispatch list: built once per (kind, chunk, directions) and replayed. */
  private plan(key: string, build: () => Promise<Dispatch[]>): Promise<Dispatch[]> {
    let p = this.plans.get(key);
    if (!p) {
      p = build();
      this.plans.set(key, p);
      p.catch(() => this.plans.delete(key));
    }
    return p;
  }

  /** Input of layer k for a chunk: the data for k = 0, else a_{k-1}. [rows, in_k] row-major. */
  private input(chunk: Chunk, k: number): GPUBuffer {
    return k === 0 ? chunk.x : this.layers[k - 1].a!;
  }

  private rowMajor(buffer: GPUBuffer, cols: number, strideBatch = 0, offset = 0): Operand {
    return { buffer, offset, strideRow: cols, strideCol: 1, strideBatch };
  }

  /** W_k seen as the [in, out] right operand of a·W^T, inside `buffer` (theta or directions) at `base`. */
  private weightTransposed(buffer: GPUBuffer, k: number, strideBatch = 0): Operand {
    const l = this.spec.layers[k];
    return { buffer, offset: this.layout.layers[k].weightOffset, strideRow: 1, strideCol: l.inFeatures, strideBatch };
  }

  /** W_k as the [out, in] right operand of delta·W. */
  private weight(buffer: GPUBuffer, k: number, strideBatch = 0): Operand {
    const l = this.spec.layers[k];
    return { buffer, offset: this.layout.layers[k].weightOffset, strideRow: l.inFeatures, strideCol: 1, strideBatch };
  }

  private forwardPlan(ci: number): Promise<Dispatch[]> {
    const c = outputWidth(this.spec);
    const scale = this.lossKind === "mse" ? 1 / (this.sampleCount * c) : 1 / this.sampleCount;
    const chunk = this.chunks[ci];
    return this.plan(`forward:${ci}`, () => this.forwardDispatches(chunk, `chunk${ci}`, scale, this.sampleLosses, chunk.start));
  }

  /**
   * Forward pass and loss of one chunk (`name` ends every label): per-sample losses into
   * lossOut[lossOffset..], and delta_{K-1} = dL/dz scaled by `scale` (1/N for the whole-data
   * mean, 1/B for a minibatch's).
   */
  private async forwardDispatches(chunk: Chunk, name: string, scale: number, lossOut: GPUBuffer, lossOffset: number): Promise<Dispatch[]> {
    const out: Dispatch[] = [];
    const K = this.spec.layers.length;
    for (let k = 0; k < K; k++) {
      const l = this.spec.layers[k];
      const L = this.layers[k];
      const biasOffset = this.layout.layers[k].biasOffset;
      out.push(await this.builder.gemm({
        label: `forward z${k} ${name}`,
        m: chunk.rows, n: l.outFeatures, k: l.inFeatures, batch: 1,
        a: this.rowMajor(this.input(chunk, k), l.inFeatures),
        b: this.weightTransposed(this.theta, k),
        c: this.rowMajor(L.z, l.outFeatures),
        bias: biasOffset >= 0 ? { buffer: this.theta, offset: biasOffset, strideBatch: 0 } : undefined,
      }));
      if (L.a) out.push(await this.builder.activate(`forward a${k} ${name}`, L.z, 0, L.a, 0, chunk.rows * l.outFeatures, this.slope));
    }
    const c = outputWidth(this.spec);
    out.push(await this.builder.lossGradient(`loss ${name}`, LOSS_CODE[this.lossKind], this.layers[K - 1].z, chunk.targets, lossOut, lossOffset, this.layers[K - 1].delta, chunk.rows, c, scale));
    return out;
  }

  /** delta_{k-1} = (delta_k W_k) ⊙ phi'(z_{k-1}) for k = K-1..1. With `withGradient`, also g_W and g_b. */
  private backwardPlan(ci: number, withGradient: boolean): Promise<Dispatch[]> {
    return this.plan(`backward:${ci}:${withGradient}`, () => this.backwardDispatches(this.chunks[ci], `chunk${ci}`, withGradient));
  }

  private async backwardDispatches(chunk: Chunk, name: string, withGradient: boolean): Promise<Dispatch[]> {
    const out: Dispatch[] = [];
    for (let k = this.spec.layers.length - 1; k >= 0; k--) {
      const l = this.spec.layers[k];
      const L = this.layers[k];
      if (withGradient) out.push(...(await this.weightGradient(`grad layer${k} ${name}`, chunk, k, L.delta, 0, this.input(chunk, k), 0, 1)));
      if (k > 0) {
        out.push(await this.builder.gemm({
          label: `backward delta${k - 1} ${name}`,
          m: chunk.rows, n: l.inFeatures, k: l.outFeatures, batch: 1,
          a: this.rowMajor(L.delta, l.outFeatures),
          b: this.weight(this.theta, k),
          c: this.rowMajor(this.layers[k - 1].delta, l.inFeatures),
          mask: this.rowMajor(this.layers[k - 1].z, l.inFeatures),
          slope: this.slope,
        }));
      }
    }
    return out;
  }

  /** Forward, loss (mean over the minibatch) and gradient of a minibatch of `rows` samples in the batch buffers. */
  private minibatchPlan(rows: number): Promise<Dispatch[]> {
    return this.plan(`minibatch:${rows}`, async () => {
      const mb = this.minibatch!;
      const chunk: Chunk = { start: 0, rows, x: mb.x, targets: mb.targets };
      const c = outputWidth(this.spec);
      const scale = this.lossKind === "mse" ? 1 / (rows * c) : 1 / rows;
      const name = `minibatch[${rows}]`;
      return [...(await this.forwardDispatches(chunk, name, scale, mb.losses, 0)), ...(await this.backwardDispatches(chunk, name, true))];
    });
  }

  /**
   * products[b][W_k] += D[b]^T In[b] and products[b][b_k] += colsum D[b] (bias only when `withBias`),
   * for `batch` directions; strides 0 broadcast D or In over the directions.
   */
  private async weightGradient(label: string, chunk: Chunk, k: number, d: GPUBuffer, dStride: number, input: GPUBuffer, inStride: number, batch: number, withBias = true): Promise<Dispatch[]> {
    const l = this.spec.layers[k];
    const { weightOffset, biasOffset } = this.layout.layers[k];
    const out = [await this.builder.gemm({
      label,
      m: l.outFeatures, n: l.inFeatures, k: chunk.rows, batch,
      a: { buffer: d, offset: 0, strideRow: 1, strideCol: l.outFeatures, strideBatch: dStride },
      b: this.rowMajor(input, l.inFeatures, inStride),
      c: { buffer: this.products, offset: weightOffset, strideRow: l.inFeatures, strideCol: 1, strideBatch: this.dim },
      accumulate: true,
    })];
    if (withBias && biasOffset >= 0) {
      out.push(await this.builder.columnSum(`${label} bias`, d, 0, dStride, this.products, biasOffset, this.dim, chunk.rows, l.outFeatures, batch, true));
    }
    return out;
  }

  /** Tangent forward pass, loss curvature and R-backward pass for `dirs` directions. */
  private hvpPlan(ci: number, dirs: number): Promise<Dispatch[]> {
    return this.plan(`hvp:${ci}:${dirs}`, async () => {
      const chunk = this.chunks[ci];
      const R = this.chunkRows;
      const K = this.spec.layers.length;
      const n = this.dim;
      const out: Dispatch[] = [];
      // Tangent forward: Ra_k = phi'(z_k) ⊙ (a_{k-1} V_k^T + c_k + Ra_{k-1} W_k^T).
      for (let k = 0; k < K; k++) {
        const l = this.spec.layers[k];
        const L = this.layers[k];
        const hidden = k + 1 < K;
        const biasOffset = this.layout.layers[k].biasOffset;
        const mask = hidden ? this.rowMajor(L.z, l.outFeatures) : undefined;
        const target = this.rowMajor(L.ra, l.outFeatures, R * l.outFeatures);
        out.push(await this.builder.gemm({
          label: `tangent a·V^T layer${k} chunk${ci}`,
          m: chunk.rows, n: l.outFeatures, k: l.inFeatures, batch: dirs,
          a: this.rowMajor(this.input(chunk, k), l.inFeatures),
          b: this.weightTransposed(this.directions, k, n),
          c: target,
          bias: biasOffset >= 0 ? { buffer: this.directions, offset: biasOffset, strideBatch: n } : undefined,
          mask: k === 0 ? mask : undefined,
          slope: this.slope,
        }));
        if (k > 0) {
          const prev = this.layers[k - 1];
          out.push(await this.builder.gemm({
            label: `tangent Ra·W^T layer${k} chunk${ci}`,
            m: chunk.rows, n: l.outFeatures, k: l.inFeatures, batch: dirs,
            a: this.rowMajor(prev.ra, l.inFeatures, R * l.inFeatures),
            b: this.weightTransposed(this.theta, k),
            c: target,
            accumulate: true,
            mask,
            slope: this.slope,
          }));
        }
      }
      const c = outputWidth(this.spec);
      const scale = this.lossKind === "mse" ? 1 / (this.sampleCount * c) : 1 / this.sampleCount;
      const last = this.layers[K - 1];
      out.push(await this.builder.lossCurvature(`loss curvature chunk${ci}`, LOSS_CODE[this.lossKind], last.z, last.ra, last.rdelta, R, c, dirs, scale));
      // R-backward.
      for (let k = K - 1; k >= 0; k--) {
        const l = this.spec.layers[k];
        const L = this.layers[k];
        out.push(...(await this.weightGradient(`Hv Rdelta^T a layer${k} chunk${ci}`, chunk, k, L.rdelta, R * l.outFeatures, this.input(chunk, k), 0, dirs)));
        if (k === 0) continue; // Ra_{-1} = 0 and no Rdelta_{-1} is needed
        const prev = this.layers[k - 1];
        out.push(...(await this.weightGradient(`Hv delta^T Ra layer${k} chunk${ci}`, chunk, k, L.delta, 0, prev.ra, R * l.inFeatures, dirs, false)));
        const target = this.rowMajor(prev.rdelta, l.inFeatures, R * l.inFeatures);
        out.push(await this.builder.gemm({
          label: `R-backward delta·V layer${k} chunk${ci}`,
          m: chunk.rows, n: l.inFeatures, k: l.outFeatures, batch: dirs,
          a: this.rowMajor(L.delta, l.outFeatures),
          b: this.weight(this.directions, k, n),
          c: target,
        }));
        out.push(await this.builder.gemm({
          label: `R-backward Rdelta·W layer${k} chunk${ci}`,
          m: chunk.rows, n: l.inFeatures, k: l.outFeatures, batch: dirs,
          a: this.rowMajor(L.rdelta, l.outFeatures, R * l.outFeatures),
          b: this.weight(this.theta, k),
          c: target,
          accumulate: true,
          mask: this.rowMajor(prev.z, l.inFeatures),
          slope: this.slope,
        }));
      }
      return out;
    });
  }

  private lossReducePlan(): Promise<Dispatch[]> {
    return this.plan("loss-reduce", () => this.builder.reduce("loss sum", this.sampleLosses, 0, null, 0, this.sampleCount, this.partials, this.scalars, 0));
  }

  // ---- operations ------------------------------------------------------------------------

  private get canReuse(): boolean {
    return this.reuseForwardState && this.chunks.length === 1;
  }

  private check(theta: GpuVector, what = "theta") {
    if (this.disposed) throw new InputError("this GpuObjective was disposed");
    this.space.check(theta, what);
  }

  private copyIn(encoder: GPUCommandEncoder, theta: GpuVector) {
    encoder.copyBufferToBuffer(theta.buffer, 0, this.theta, 0, this.dim * 4);
  }

  private async readLoss(): Promise<number> {
    const sum = (await this.ctx.readFloats(this.scalars, 0, 1))[0];
    const loss = sum / this.sampleCount;
    if (!Number.isFinite(loss)) throw new InputError(`the loss is not finite (${loss}): check theta and the data for huge or non-finite values`);
    return loss;
  }

  async loss(theta: GpuVector): Promise<number> {
    this.check(theta);
    this.counters.forward++;
    await this.ctx.withErrorScope("computing the loss", async () => {
      const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:loss" });
      this.copyIn(encoder, theta);
      for (let ci = 0; ci < this.chunks.length; ci++) encodeDispatches(encoder, await this.forwardPlan(ci), `forward chunk${ci}`);
      encodeDispatches(encoder, await this.lossReducePlan(), "loss reduce");
      this.ctx.device.queue.submit([encoder.finish()]);
    });
    // The loss pass leaves z and delta_{K-1} but not the hidden deltas: only gradients and HVPs cache state.
    this.cachedState = null;
    return await this.readLoss();
  }

  async gradient(theta: GpuVector, out: GpuVector): Promise<number> {
    this.check(theta);
    this.check(out, "gradient output");
    if (out === theta) throw new InputError("gradient output must be a different vector from theta");
    this.counters.gradient++;
    await this.ctx.withErrorScope("computing the gradient", async () => {
      const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:gradient" });
      this.copyIn(encoder, theta);
      encoder.clearBuffer(this.products, 0, this.dim * 4);
      for (let ci = 0; ci < this.chunks.length; ci++) {
        encodeDispatches(encoder, [...(await this.forwardPlan(ci)), ...(await this.backwardPlan(ci, true))], `gradient chunk${ci}`);
      }
      encodeDispatches(encoder, await this.lossReducePlan(), "loss reduce");
      encoder.copyBufferToBuffer(this.products, 0, out.buffer, 0, this.dim * 4);
      this.ctx.device.queue.submit([encoder.finish()]);
    });
    out.version++;
    this.cachedState = this.canReuse ? { vector: theta, version: theta.version } : null;
    return await this.readLoss();
  }

  hvp(theta: GpuVector, v: GpuVector, out: GpuVector): Promise<void> {
    return this.hvpBlockInternal(theta, [v], [out], false);
  }

  hvpBlock(theta: GpuVector, vs: GpuVector[], outs: GpuVector[]): Promise<void> {
    return this.hvpBlockInternal(theta, vs, outs, true);
  }

  private async hvpBlockInternal(theta: GpuVector, vs: GpuVector[], outs: GpuVector[], block: boolean): Promise<void> {
    this.check(theta);
    if (vs.length !== outs.length) throw new InputError(`hvpBlock got ${vs.length} vectors but ${outs.length} outputs`);
    vs.forEach((v, j) => this.check(v, `direction ${j}`));
    outs.forEach((o, j) => {
      this.check(o, `output ${j}`);
      if (o === theta) throw new InputError(`output ${j} must be a different vector from theta`);
    });
    if (block) this.counters.blockHvpDirections += vs.length;
    else this.counters.hvp++;
    const n = this.dim;
    for (let first = 0; first < vs.length; first += this.maxBlock) {
      const dirs = Math.min(this.maxBlock, vs.length - first);
      const reuse = this.cachedState !== null && this.cachedState.vector === theta && this.cachedState.version === theta.version;
      await this.ctx.withErrorScope("computing Hessian-vector products", async () => {
        const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:hvp" });
        if (!reuse) this.copyIn(encoder, theta);
        for (let j = 0; j < dirs; j++) encoder.copyBufferToBuffer(vs[first + j].buffer, 0, this.directions, j * n * 4, n * 4);
        encoder.clearBuffer(this.products, 0, dirs * n * 4);
        for (let ci = 0; ci < this.chunks.length; ci++) {
          const state = reuse ? [] : [...(await this.forwardPlan(ci)), ...(await this.backwardPlan(ci, false))];
          encodeDispatches(encoder, [...state, ...(await this.hvpPlan(ci, dirs))], `hvp chunk${ci}`);
        }
        for (let j = 0; j < dirs; j++) encoder.copyBufferToBuffer(this.products, j * n * 4, outs[first + j].buffer, 0, n * 4);
        this.ctx.device.queue.submit([encoder.finish()]);
      });
      for (let j = 0; j < dirs; j++) outs[first + j].version++;
      this.cachedState = this.canReuse ? { vector: theta, version: theta.version } : null;
    }
  }

  async outputs(theta: GpuVector): Promise<Float64Array> {
    this.check(theta);
    this.counters.forward++;
    const c = outputWidth(this.spec);
    const result = new Float64Array(this.sampleCount * c);
    const last = this.layers[this.layers.length - 1].z;
    const bytes = this.sampleCount * c * 4;
    this.cachedState = null;
    if (BufferPool.bucketSize(bytes) <= this.ctx.limits.maxBufferSize) {
      // Every chunk's z_K copied into one staging buffer, in one submission: one round trip.
      this.ctx.checkAlive();
      const staging = this.ctx.pool.acquire(bytes, BufferUsage.MAP_READ | BufferUsage.COPY_DST, `outputs[${this.sampleCount}x${c}]`);
      try {
        await this.ctx.withErrorScope("computing outputs", async () => {
          const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:outputs" });
          this.copyIn(encoder, theta);
          for (let ci = 0; ci < this.chunks.length; ci++) {
            const chunk = this.chunks[ci];
            encodeDispatches(encoder, await this.forwardPlan(ci), `forward chunk${ci}`);
            encoder.copyBufferToBuffer(last, 0, staging, chunk.start * c * 4, chunk.rows * c * 4);
          }
          this.ctx.device.queue.submit([encoder.finish()]);
        });
        await staging.mapAsync(MapMode.READ, 0, bytes);
        result.set(new Float32Array(staging.getMappedRange(0, bytes)));
        staging.unmap();
      } finally {
        this.ctx.pool.release(staging);
      }
      return result;
    }
    for (let ci = 0; ci < this.chunks.length; ci++) {
      await this.ctx.withErrorScope("computing outputs", async () => {
        const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:outputs" });
        if (ci === 0) this.copyIn(encoder, theta);
        encodeDispatches(encoder, await this.forwardPlan(ci), `forward chunk${ci}`);
        this.ctx.device.queue.submit([encoder.finish()]);
      });
      const chunk = this.chunks[ci];
      result.set(await this.ctx.readFloats(last, 0, chunk.rows * c), chunk.start * c);
    }
    return result;
  }

  /**
   * Writes the gradient of the mean loss over the samples at `indices` (a minibatch of at most
   * `minibatchRows`, any order, repeats allowed) into `out`. Needs the minibatchRows option. The
   * work is queued, not awaited: nothing is read back, so a training loop does not stall on the
   * GPU. Float64 twin: ReferenceObjective.minibatchGradient.
   */
  async minibatchGradient(theta: GpuVector, indices: ArrayLike<number>, out: GpuVector): Promise<void> {
    this.check(theta);
    this.check(out, "gradient output");
    if (out === theta) throw new InputError("gradient output must be a different vector from theta");
    const mb = this.minibatch;
    if (!mb) throw new InputError("minibatchGradient needs a GpuObjective created with the minibatchRows option");
    const rows = indices.length;
    if (rows < 1 || rows > mb.rows) throw new InputError(`a minibatch must have 1 to ${mb.rows} samples (minibatchRows), got ${rows}`);
    const d = mb.data.features;
    const c = outputWidth(this.spec);
    const mse = this.lossKind === "mse";
    for (let r = 0; r < rows; r++) {
      const i = indices[r];
      if (!(Number.isInteger(i) && i >= 0 && i < this.sampleCount)) throw new InputError(`minibatch index ${i} is outside the dataset's ${this.sampleCount} samples`);
      mb.xScratch.set(mb.data.x.subarray(i * d, (i + 1) * d), r * d);
      if (mse) mb.targetScratch.set(mb.data.targets!.subarray(i * c, (i + 1) * c), r * c);
      else mb.targetScratch[r] = mb.data.labels![i];
    }
    this.counters.gradient++;
    await this.ctx.withErrorScope("computing a minibatch gradient", async () => {
      const queue = this.ctx.device.queue;
      // writeBuffer copies the scratch now and is ordered before the submit below.
      queue.writeBuffer(mb.x, 0, mb.xScratch.buffer as ArrayBuffer, 0, rows * d * 4);
      queue.writeBuffer(mb.targets, 0, mb.targetScratch.buffer as ArrayBuffer, 0, (mse ? rows * c : rows) * 4);
      const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:minibatch-gradient" });
      this.copyIn(encoder, theta);
      encoder.clearBuffer(this.products, 0, this.dim * 4);
      encodeDispatches(encoder, await this.minibatchPlan(rows), `minibatch gradient [${rows}]`);
      encoder.copyBufferToBuffer(this.products, 0, out.buffer, 0, this.dim * 4);
      queue.submit([encoder.finish()]);
    });
    out.version++;
    // The layer buffers now hold the minibatch's pass, not the dataset's.
    this.cachedState = null;
  }

  /** Frees every GPU buffer this objective made (vectors from `space` are the caller's). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of this.buffers) b.destroy();
    this.buffers.length = 0;
    this.builder.destroy();
    this.space.destroy();
    this.plans.clear();
    this.minibatch = null;
  }
}
