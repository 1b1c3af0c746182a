/**
 * PassObjective: what the two WebGPU objectives share, GpuObjective (MLPs, every product a GEMM)
 * and GpuConvObjective (nets with convolutions). Both run the same passes over the same chunked
 * dataset (src/gpu/dataChunks.ts): forward and loss, backward, tangent, loss curvature and
 * R-backward, and a forward+backward over a gathered minibatch. They differ only in how a layer's
 * products are dispatched and in the buffers a layer needs, so each engine builds its dispatch
 * lists (forwardDispatches, backwardDispatches, hvpDispatches) and allocates its layer buffers
 * (allocateLayers); this base holds the rest, in one place so both engines keep the same
 * semantics: the parameter, direction, product and loss buffers, the memoised plans, the
 * forward-state cache (when the data is one chunk, the forward pass and deltas are kept between
 * gradient/HVP calls at the same parameters, same vector and same version), and the operations
 * (loss, gradient, hvp, hvpBlock, outputs, minibatchGradient, dispose), which encode the plans
 * in a fixed order, chunk by chunk, products accumulating in place, so results are deterministic.
 */
import type { Dataset } from "../data.ts";
import { DeviceLimitError, InputError } from "../errors.ts";
import { type LossKind, type ModelSpec, negativeSlope, outputWidth, type ParameterLayout, parameterLayout } from "../model.ts";
import { type Objective, zeroCounters } from "../objective.ts";
import type { GpuContext } from "./context.ts";
import { type Dispatch, DispatchBuilder, encodeDispatches, type Operand } from "./dispatch.ts";
import { type DataChunk, uploadDataChunks } from "./dataChunks.ts";
import { PlanCache, StorageBuffers } from "./engineParts.ts";
import { BufferPool } from "./pool.ts";
import { BufferUsage, MapMode } from "./usage.ts";
import type { GpuVector, GpuVectorSpace } from "./vectors.ts";

/** The sizes an engine's create() settled on. */
export interface PassSizes {
  /** Samples N in the dataset. */
  sampleCount: number;
  /** Samples per chunk. */
  chunkRows: number;
  /** Directions per block HVP pass. */
  maxBlock: number;
  /** Largest minibatch minibatchGradient takes (0: minibatches off). */
  minibatchRows: number;
  /** Keep the forward pass and deltas between calls at the same theta (one chunk only). */
  reuseForwardState: boolean;
}

/** Minibatch support (minibatchRows): the host data, the batch buffers and host scratch for gathering. */
interface MinibatchBuffers {
  data: Dataset;
  rows: number;
  x: GPUBuffer;
  targets: GPUBuffer;
  losses: GPUBuffer;
  xScratch: Float32Array;
  targetScratch: Float32Array;
}

/** options.maxBlock (default 8), checked. */
export function maxBlockOption(asked: number | undefined): number {
  const maxBlock = asked ?? 8;
  if (!Number.isInteger(maxBlock) || maxBlock < 1) throw new InputError(`maxBlock must be a positive integer, got ${maxBlock}`);
  return maxBlock;
}

/** options.chunkRows, checked against the `fitRows` that fit a binding and clamped to the `n` samples; `fallback` when not asked. */
export function chunkRowsOption(asked: number | undefined, fallback: number, fitRows: number, bindingLimit: number, n: number): number {
  if (asked === undefined) return fallback;
  if (!Number.isInteger(asked) || asked < 1) throw new InputError(`chunkRows must be a positive integer, got ${asked}`);
  if (asked > fitRows) {
    throw new DeviceLimitError(`chunkRows ${asked} needs bindings past maxStorageBufferBindingSize (${bindingLimit} bytes); at most ${fitRows} fit`);
  }
  return Math.min(asked, n);
}

/** options.minibatchRows, checked and clamped to the `n` samples; 0 when not asked (the engine checks its binding limit). */
export function minibatchRowsOption(asked: number | undefined, n: number): number {
  if (asked === undefined) return 0;
  if (!Number.isInteger(asked) || asked < 1) throw new InputError(`minibatchRows must be a positive integer, got ${asked}`);
  return Math.min(asked, n);
}

export abstract class PassObjective implements Objective<GpuVector> {
  readonly counters = zeroCounters();
  readonly sampleCount: number;
  readonly dim: number;
  readonly chunkRows: number;
  readonly maxBlock: number;
  protected readonly layout: ParameterLayout;
  protected readonly slope: number;
  protected readonly builder: DispatchBuilder;
  protected chunks: DataChunk[] = [];
  protected theta!: GPUBuffer;
  protected directions!: GPUBuffer; // [maxBlock, n]
  protected products!: GPUBuffer; // [maxBlock, n]
  protected sampleLosses!: GPUBuffer;
  protected partials!: GPUBuffer;
  protected scalars!: GPUBuffer;
  /** Rows the layer buffers hold: chunkRows, or the minibatch size when that is larger. */
  protected readonly rowCapacity: number;
  protected minibatch: MinibatchBuffers | null = null;
  private readonly buffers: StorageBuffers;
  private readonly plans = new PlanCache();
  private readonly minibatchRows: number;
  private readonly reuseForwardState: boolean;
  private cachedState: { vector: GpuVector; version: number } | null = null;
  private disposed = false;

  /**
   * `engine` names the class in messages; `encoderLabel` starts every command encoder's label
   * ("flatness:" then the operation). create() then calls upload(data).
   */
  protected constructor(
    private readonly engine: string,
    private readonly encoderLabel: string,
    readonly ctx: GpuContext,
    readonly spec: ModelSpec,
    readonly lossKind: LossKind,
    readonly space: GpuVectorSpace,
    sizes: PassSizes,
  ) {
    this.layout = parameterLayout(spec);
    this.dim = this.layout.dim;
    this.slope = negativeSlope(spec.activation);
    this.sampleCount = sizes.sampleCount;
    this.chunkRows = sizes.chunkRows;
    this.maxBlock = sizes.maxBlock;
    this.minibatchRows = sizes.minibatchRows;
    this.reuseForwardState = sizes.reuseForwardState;
    this.rowCapacity = Math.max(sizes.chunkRows, sizes.minibatchRows);
    this.builder = new DispatchBuilder(ctx);
    this.buffers = new StorageBuffers(ctx, "flatness:");
  }

  /** Allocates every buffer and uploads the data (one error scope); on failure frees what it made. */
  protected async upload(data: Dataset): Promise<void> {
    try {
      await this.ctx.withErrorScope("uploading the model's data", () => this.allocate(data));
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** A storage buffer of `floats` f32 values that this objective owns (dispose frees it). */
  protected buffer(label: string, floats: number): GPUBuffer {
    return this.buffers.make(label, floats);
  }

  private allocate(data: Dataset) {
    const n = this.dim;
    const d = data.features;
    const c = outputWidth(this.spec);
    const B = this.maxBlock;
    this.theta = this.buffer(`theta[${n}]`, n);
    this.directions = this.buffer(`directions[${B}x${n}]`, B * n);
    this.products = this.buffer(`products[${B}x${n}]`, B * n);
    this.sampleLosses = this.buffer(`sample-losses[${data.n}]`, data.n);
    this.partials = this.buffer("loss-partials", 256);
    this.scalars = this.buffer("scalars", 4);
    this.chunks = uploadDataChunks(this.ctx.device.queue, this.spec, data, this.lossKind, this.chunkRows, (label, floats) => this.buffer(label, floats));
    if (this.minibatchRows > 0) {
      const M = this.minibatchRows;
      const t = this.lossKind === "mse" ? M * c : M;
      this.minibatch = {
        data,
        rows: M,
        x: this.buffer(`minibatch x[${M}x${d}]`, M * d),
        targets: this.buffer(`minibatch targets[${t}]`, t),
        losses: this.buffer(`minibatch losses[${M}]`, M),
        xScratch: new Float32Array(M * d),
        targetScratch: new Float32Array(t),
      };
    }
    this.allocateLayers();
  }

  // ---- what each engine provides ---------------------------------------------------------

  /** The layer buffers (rowCapacity rows; the HVP buffers' per-direction strides stay chunkRows), after the shared ones. */
  protected abstract allocateLayers(): void;

  /**
   * Forward pass and loss of one chunk (`name` ends every label): per-sample losses into
   * lossOut[lossOffset..], and delta_{K-1} = dL/dz scaled by `scale` (1/N for the whole-data
   * mean, 1/B for a minibatch's).
   */
  protected abstract forwardDispatches(chunk: DataChunk, name: string, scale: number, lossOut: GPUBuffer, lossOffset: number): Promise<Dispatch[]>;

  /** The deltas delta_{k-1} for k = K-1..1 from delta_{K-1}; with `withGradient`, also g_W and g_b into products. */
  protected abstract backwardDispatches(chunk: DataChunk, name: string, withGradient: boolean): Promise<Dispatch[]>;

  /** Tangent forward pass, loss curvature and R-backward pass of chunk `ci` for `dirs` directions, into products[0..dirs). */
  protected abstract hvpDispatches(ci: number, dirs: number): Promise<Dispatch[]>;

  /** The output layer's z, [rows, outputs], that outputs() reads back per chunk. */
  protected abstract outputBuffer(): GPUBuffer;

  /** Frees what the engine holds besides its buffers and the shared builder (called once, by dispose). */
  protected disposeEngine(): void {}

  // ---- dispatch lists --------------------------------------------------------------------

  protected rowMajor(buffer: GPUBuffer, cols: number, strideBatch = 0, offset = 0): Operand {
    return { buffer, offset, strideRow: cols, strideCol: 1, strideBatch };
  }

  /** The factor of dL/dz for the mean loss over `rows` samples (mse: also over the outputs). */
  protected lossScale(rows: number): number {
    return this.lossKind === "mse" ? 1 / (rows * outputWidth(this.spec)) : 1 / rows;
  }

  private forwardPlan(ci: number): Promise<Dispatch[]> {
    const chunk = this.chunks[ci];
    return this.plans.get(`forward:${ci}`, () => this.forwardDispatches(chunk, `chunk${ci}`, this.lossScale(this.sampleCount), this.sampleLosses, chunk.start));
  }

  private backwardPlan(ci: number, withGradient: boolean): Promise<Dispatch[]> {
    return this.plans.get(`backward:${ci}:${withGradient}`, () => this.backwardDispatches(this.chunks[ci], `chunk${ci}`, withGradient));
  }

  private hvpPlan(ci: number, dirs: number): Promise<Dispatch[]> {
    return this.plans.get(`hvp:${ci}:${dirs}`, () => this.hvpDispatches(ci, dirs));
  }

  /** Forward, loss (mean over the minibatch) and gradient of a minibatch of `rows` samples in the batch buffers. */
  private minibatchPlan(rows: number): Promise<Dispatch[]> {
    return this.plans.get(`minibatch:${rows}`, async () => {
      const mb = this.minibatch!;
      const chunk: DataChunk = { start: 0, rows, x: mb.x, targets: mb.targets };
      const name = `minibatch[${rows}]`;
      return [...(await this.forwardDispatches(chunk, name, this.lossScale(rows), mb.losses, 0)), ...(await this.backwardDispatches(chunk, name, true))];
    });
  }

  private lossReducePlan(): Promise<Dispatch[]> {
    return this.plans.get("loss-reduce", () => this.builder.reduce("loss sum", this.sampleLosses, 0, null, 0, this.sampleCount, this.partials, this.scalars, 0));
  }

  // ---- operations ------------------------------------------------------------------------

  private get canReuse(): boolean {
    return this.reuseForwardState && this.chunks.length === 1;
  }

  private check(theta: GpuVector, what = "theta") {
    if (this.disposed) throw new InputError(`this ${this.engine} was disposed`);
    this.space.check(theta, what);
  }

  private copyIn(encoder: GPUCommandEncoder, theta: GpuVector) {
    encoder.copyBufferToBuffer(theta.buffer, 0, this.theta, 0, this.dim * 4);
  }

  private encoder(operation: string): GPUCommandEncoder {
    return this.ctx.device.createCommandEncoder({ label: `${this.encoderLabel}${operation}` });
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
      const encoder = this.encoder("loss");
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
      const encoder = this.encoder("gradient");
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
        const encoder = this.encoder("hvp");
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
    const last = this.outputBuffer();
    const bytes = this.sampleCount * c * 4;
    this.cachedState = null;
    if (BufferPool.bucketSize(bytes) <= this.ctx.limits.maxBufferSize) {
      // Every chunk's z_K copied into one staging buffer, in one submission: one round trip.
      this.ctx.checkAlive();
      const staging = this.ctx.pool.acquire(bytes, BufferUsage.MAP_READ | BufferUsage.COPY_DST, `outputs[${this.sampleCount}x${c}]`);
      try {
        await this.ctx.withErrorScope("computing outputs", async () => {
          const encoder = this.encoder("outputs");
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
        const encoder = this.encoder("outputs");
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
   * `minibatchRows`, any order, repeats allowed) into `out`. Needs the minibatchRows option. Their
   * rows are gathered on the host and written into the batch buffers, then the engine's forward
   * and backward dispatches run on them with the loss scaled by 1/B. The work is queued, not
   * awaited: nothing is read back, so a training loop does not stall on the GPU. Float64 twin:
   * ReferenceObjective.minibatchGradient.
   */
  async minibatchGradient(theta: GpuVector, indices: ArrayLike<number>, out: GpuVector): Promise<void> {
    this.check(theta);
    this.check(out, "gradient output");
    if (out === theta) throw new InputError("gradient output must be a different vector from theta");
    const mb = this.minibatch;
    if (!mb) throw new InputError(`minibatchGradient needs a ${this.engine} created with the minibatchRows option`);
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
      const encoder = this.encoder("minibatch-gradient");
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
    this.buffers.destroy();
    this.builder.destroy();
    this.disposeEngine();
    this.space.destroy();
    this.plans.clear();
    this.minibatch = null;
  }
}
