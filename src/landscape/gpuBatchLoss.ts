/**
 * GpuBatchLoss: the mean loss at P perturbed parameter vectors theta_p = base + sum_j c_pj u_j
 * (src/landscape/batchLoss.ts) with many points per data pass, instead of one GpuObjective.loss
 * call per point. Per block of B points (B chosen from the device's limits and a memory budget):
 *
 *   1. landscape_perturb.wgsl   Theta[q] = base + sum_j C[q, j] u_j           (B vectors at once)
 *   2. per data chunk:
 *      first layer, which is linear in its parameters: one batched GEMM (gemm.wgsl) over the
 *        1 + J vectors [base, u_1, ..., u_J], Zs[j] = x W_0[j]^T + b_0[j] (the data read once), then
 *        landscape_first_layer.wgsl: a_0[q] = phi(Zs[0] + sum_j C[q, j] Zs[1 + j]) for all B points,
 *        O(rows * out) per point instead of O(rows * in * out), most of the work for wide inputs;
 *      every further layer k, one batched strided GEMM (batch = B):
 *        Z[q] = a_{k-1}[q] W_k[q]^T + b_k[q],  W_k[q], b_k[q] read in place inside Theta[q]
 *        (batch stride n), then activate.wgsl over all B at once for hidden layers;
 *   3. landscape_loss.wgsl      sums[q] (+)= sum over the chunk's samples of loss(Z_K[q], T)
 *
 * then one readback of every sum at the end. The float64 twin is SequentialBatchLoss over
 * ReferenceObjective; the tests compare the two on grids of nets (test/gpu/landscapeCases.ts).
 */
import { type Dataset, validateDataset } from "../data.ts";
import { DeviceLimitError, InputError } from "../errors.ts";
import type { GpuContext } from "../gpu/context.ts";
import { type Dispatch, DispatchBuilder, encodeDispatches } from "../gpu/dispatch.ts";
import { type LinearLayerSpec, type LossKind, type MlpSpec, type ModelSpec, negativeSlope, outputWidth, parameterLayout, requireMlp, validateSpec } from "../model.ts";
import { type BatchLoss, checkBatch, MAX_BASIS, type PerturbationBatch } from "./batchLoss.ts";
import { type DataChunk, uploadDataChunks } from "../gpu/dataChunks.ts";
import { DEFAULT_MEMORY_BUDGET, LOSS_CODE, PlanCache, StorageBuffers } from "../gpu/engineParts.ts";
import { STORAGE_COPY } from "../gpu/usage.ts";

export interface GpuBatchLossOptions {
  /** Samples per chunk (default: min(N, 4096), less when a binding would not fit). */
  chunkRows?: number;
  /** Points per pass at most (default: as many as the memory budget and the device's limits allow, at most 1024). */
  maxBatch?: number;
  /** Bytes for the B parameter vectors and activations of one block (default 256 MiB). */
  memoryBudget?: number;
}

export class GpuBatchLoss implements BatchLoss {
  evaluated = 0;
  /** Data passes run so far (one per block of points per chunk). */
  passes = 0;
  readonly dim: number;
  private readonly layout;
  private readonly slope: number;
  private readonly buffers: StorageBuffers;
  /** Dispatch lists of the forward pass per (chunk, points in the block), built once and replayed. */
  private readonly plans = new PlanCache();
  private readonly builder: DispatchBuilder;
  private chunks: DataChunk[] = [];
  /** [1 + MAX_BASIS, n]: the base vector, then the basis vectors. */
  private vectors!: GPUBuffer;
  /** [1 + MAX_BASIS, chunkRows, out_0]: the first layer of the base and basis vectors. */
  private firstLayer!: GPUBuffer;
  private thetas!: GPUBuffer;
  private z!: GPUBuffer;
  private a!: GPUBuffer;
  private disposed = false;

  private constructor(
    readonly ctx: GpuContext,
    readonly spec: MlpSpec,
    readonly lossKind: LossKind,
    readonly sampleCount: number,
    /** Samples per chunk. */
    readonly chunkRows: number,
    /** Points per data pass. */
    readonly maxBatch: number,
    private readonly widest: number,
  ) {
    this.layout = parameterLayout(spec);
    this.dim = this.layout.dim;
    this.slope = negativeSlope(spec.activation);
    this.builder = new DispatchBuilder(ctx);
    this.buffers = new StorageBuffers(ctx, "flatness:landscape:");
  }

  static async create(ctx: GpuContext, spec: ModelSpec, data: Dataset, lossKind: LossKind, options: GpuBatchLossOptions = {}): Promise<GpuBatchLoss> {
    validateSpec(spec);
    requireMlp(spec, "GpuBatchLoss (use SequentialBatchLoss over an objective for convolutional nets)");
    validateDataset(spec, data, lossKind);
    const n = parameterLayout(spec).dim;
    const linear: LinearLayerSpec[] = spec.layers;
    const widest = Math.max(...linear.map((l) => l.outFeatures));
    const limit = ctx.limits.maxStorageBufferBindingSize;
    const maxGroups = ctx.limits.maxComputeWorkgroupsPerDimension;
    const positive = (name: string, v: number | undefined) => {
      if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new InputError(`${name} must be a positive integer, got ${v}`);
      return v;
    };
    const budget = options.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
    if (!(budget > 0)) throw new InputError(`memoryBudget must be positive, got ${budget}`);
    const fitRows = Math.floor(limit / (4 * widest));
    let chunkRows = Math.min(data.n, fitRows, 4096);
    const askedRows = positive("chunkRows", options.chunkRows);
    if (askedRows !== undefined) chunkRows = Math.min(askedRows, data.n);
    if (chunkRows < 1 || chunkRows * widest * 4 > limit) {
      throw new DeviceLimitError(`a chunk of ${chunkRows} samples of a width-${widest} layer needs more than one storage binding holds (${limit} bytes, maxStorageBufferBindingSize)`);
    }
    if (4 * (1 + MAX_BASIS) * n > limit) {
      throw new DeviceLimitError(`${1 + MAX_BASIS} vectors of ${n} parameters need ${4 * (1 + MAX_BASIS) * n} bytes, more than one storage binding holds (${limit}, maxStorageBufferBindingSize)`);
    }
    if (4 * (1 + MAX_BASIS) * chunkRows * spec.layers[0].outFeatures > limit) chunkRows = Math.floor(limit / (4 * (1 + MAX_BASIS) * spec.layers[0].outFeatures));
    // Per point: its parameter vector and two activation buffers [chunkRows, widest].
    const perPoint = 4 * (n + 2 * chunkRows * widest);
    const fit = Math.min(
      Math.floor(budget / perPoint),
      Math.floor(limit / (4 * n)),
      Math.floor(limit / (4 * chunkRows * widest)),
      maxGroups,
      1024,
    );
    const maxBatch = Math.max(1, Math.min(positive("maxBatch", options.maxBatch) ?? fit, Math.max(fit, 1)));
    if (4 * n > limit) throw new DeviceLimitError(`a parameter vector of ${n} floats needs ${4 * n} bytes, more than one storage binding holds (${limit})`);
    const f = new GpuBatchLoss(ctx, spec, lossKind, data.n, chunkRows, maxBatch, widest);
    await ctx.withErrorScope("uploading the landscape's data", () => f.allocate(data));
    return f;
  }

  private buffer(label: string, floats: number): GPUBuffer {
    return this.buffers.make(label, floats);
  }

  private allocate(data: Dataset) {
    const n = this.dim;
    const queue = this.ctx.device.queue;
    this.chunks = uploadDataChunks(queue, this.spec, data, this.lossKind, this.chunkRows, (label, floats) => this.buffer(label, floats));
    const B = this.maxBatch;
    const R = this.chunkRows;
    const h = this.spec.layers[0].outFeatures;
    this.vectors = this.buffer(`base+basis[${1 + MAX_BASIS}x${n}]`, (1 + MAX_BASIS) * n);
    this.firstLayer = this.buffer(`first-layer[${1 + MAX_BASIS}x${R}x${h}]`, (1 + MAX_BASIS) * R * h);
    this.thetas = this.buffer(`thetas[${B}x${n}]`, B * n);
    this.z = this.buffer(`z[${B}x${R}x${this.widest}]`, B * R * this.widest);
    this.a = this.buffer(`a[${B}x${R}x${this.widest}]`, B * R * this.widest);
  }

  /** First layer of the 1 + J vectors [base, u_1..u_J] over one chunk: Zs[j] = x W_0[j]^T + b_0[j]. */
  private firstLayerPlan(ci: number, J: number): Promise<Dispatch[]> {
    return this.plans.get(`first:${ci}:${J}`, async () => {
      const chunk = this.chunks[ci];
      const l = this.spec.layers[0];
      const { weightOffset, biasOffset } = this.layout.layers[0];
      const n = this.dim;
      return [await this.builder.gemm({
        label: `landscape first layer chunk${ci} x${1 + J}`,
        m: chunk.rows, n: l.outFeatures, k: l.inFeatures, batch: 1 + J,
        a: { buffer: chunk.x, offset: 0, strideRow: l.inFeatures, strideCol: 1, strideBatch: 0 },
        b: { buffer: this.vectors, offset: weightOffset, strideRow: 1, strideCol: l.inFeatures, strideBatch: n },
        c: { buffer: this.firstLayer, offset: 0, strideRow: l.outFeatures, strideCol: 1, strideBatch: this.chunkRows * l.outFeatures },
        bias: biasOffset >= 0 ? { buffer: this.vectors, offset: biasOffset, strideBatch: n } : undefined,
      })];
    });
  }

  /** Layers 1..K-1 of one chunk for `count` points (a_0 -> Z of the output layer), memoised. */
  private forwardPlan(ci: number, count: number): Promise<Dispatch[]> {
    return this.plans.get(`forward:${ci}:${count}`, async () => {
      const chunk = this.chunks[ci];
      const R = this.chunkRows;
      const n = this.dim;
      const K = this.spec.layers.length;
      const out: Dispatch[] = [];
      for (let k = 1; k < K; k++) {
        const l = this.spec.layers[k];
        const { weightOffset, biasOffset } = this.layout.layers[k];
        out.push(await this.builder.gemm({
          label: `landscape z${k} chunk${ci} x${count}`,
          m: chunk.rows, n: l.outFeatures, k: l.inFeatures, batch: count,
          a: { buffer: this.a, offset: 0, strideRow: l.inFeatures, strideCol: 1, strideBatch: R * l.inFeatures },
          // W_k of point q seen as the [in, out] operand of a W^T, inside Theta[q].
          b: { buffer: this.thetas, offset: weightOffset, strideRow: 1, strideCol: l.inFeatures, strideBatch: n },
          c: { buffer: this.z, offset: 0, strideRow: l.outFeatures, strideCol: 1, strideBatch: R * l.outFeatures },
          bias: biasOffset >= 0 ? { buffer: this.thetas, offset: biasOffset, strideBatch: n } : undefined,
        }));
        if (k + 1 < K) {
          out.push(await this.builder.activate(`landscape a${k} chunk${ci} x${count}`, this.z, 0, this.a, 0, count * R * l.outFeatures, this.slope));
        }
      }
      return out;
    });
  }

  async losses(batch: PerturbationBatch): Promise<Float64Array> {
    if (this.disposed) throw new InputError("this GpuBatchLoss was disposed");
    const P = checkBatch(batch, this.dim);
    const J = batch.basis.length;
    const n = this.dim;
    const c = outputWidth(this.spec);
    const R = this.chunkRows;
    const device = this.ctx.device;
    const coefficients = Float32Array.from(J === 0 ? new Float64Array(P) : batch.coefficients);
    const perCall = new DispatchBuilder(this.ctx); // bind groups of this call's perturb / loss dispatches
    const temporary: GPUBuffer[] = []; // this call's buffers: coefficients, sums, uniforms
    const uniform = (label: string, words: Uint32Array) => {
      const u = this.ctx.uniform(label, words.buffer as ArrayBuffer);
      temporary.push(u);
      return u;
    };
    try {
      const sums = await this.ctx.withErrorScope("evaluating landscape losses", async () => {
        const queue = device.queue;
        queue.writeBuffer(this.vectors, 0, Float32Array.from(batch.base));
        batch.basis.forEach((u, j) => queue.writeBuffer(this.vectors, (1 + j) * n * 4, Float32Array.from(u)));
        const coef = device.createBuffer({ label: `flatness:landscape:coefficients[${P}x${J}]`, size: Math.max(16, coefficients.byteLength), usage: STORAGE_COPY });
        const sums = device.createBuffer({ label: `flatness:landscape:sums[${P}]`, size: Math.max(16, P * 4), usage: STORAGE_COPY });
        temporary.push(coef, sums);
        this.ctx.checkBindingSize(`coefficients[${P}x${J}]`, coefficients.byteLength);
        queue.writeBuffer(coef, 0, coefficients);
        const perturb = await this.ctx.kernel({ shader: "landscapePerturb", bindings: ["read", "read", "write", "uniform"] });
        const first0 = await this.ctx.kernel({ shader: "landscapeFirstLayer", bindings: ["read", "read", "write", "uniform"] });
        const K = this.spec.layers.length;
        const h = this.spec.layers[0].outFeatures;
        const lossKernel = await this.ctx.kernel({ shader: "landscapeLoss", bindings: ["read", "read", "write", "uniform"], constants: { LOSS: LOSS_CODE[this.lossKind] } });
        for (let first = 0; first < P; first += this.maxBatch) {
          const count = Math.min(this.maxBatch, P - first);
          const encoder = device.createCommandEncoder({ label: `flatness:landscape points ${first}+${count}` });
          if (K > 1) {
            // Theta[q] for the layers after the first.
            const words = new Uint32Array([n, count, J, first * J]);
            const [gx, gy] = perCall.linearGroups("landscape perturb", n);
            const label = `landscape perturb points ${first}+${count}`;
            const combine = perCall.dispatch(label, perturb.pipeline, perturb.layout, [this.vectors, coef, this.thetas, uniform(label, words)], [gx, gy, count]);
            encodeDispatches(encoder, [combine], "landscape perturb");
          }
          for (let ci = 0; ci < this.chunks.length; ci++) {
            const chunk = this.chunks[ci];
            const elements = chunk.rows * h;
            const fw = new ArrayBuffer(32);
            new Uint32Array(fw).set([elements, R * h, count, J, first * J, K > 1 ? 1 : 0]);
            new Float32Array(fw)[6] = this.slope;
            const fLabel = `landscape first layer chunk${ci} points ${first}+${count}`;
            const [fx, fy] = perCall.linearGroups(fLabel, elements);
            const firstLayer = perCall.dispatch(fLabel, first0.pipeline, first0.layout, [this.firstLayer, coef, K > 1 ? this.a : this.z, uniform(fLabel, new Uint32Array(fw))], [fx, fy, count]);
            const lossWords = new Uint32Array([chunk.rows, c, R * c, first, ci > 0 ? 1 : 0, 0, 0, 0]);
            const lossLabel = `landscape loss chunk${ci} points ${first}+${count}`;
            const loss = perCall.dispatch(lossLabel, lossKernel.pipeline, lossKernel.layout, [this.z, chunk.targets, sums, uniform(lossLabel, lossWords)], [count, 1, 1]);
            encodeDispatches(encoder, [...(await this.firstLayerPlan(ci, J)), firstLayer, ...(await this.forwardPlan(ci, count)), loss], `landscape chunk${ci}`);
            this.passes++;
          }
          device.queue.submit([encoder.finish()]);
        }
        return sums;
      });
      const raw = await this.ctx.readFloats(sums, 0, P);
      const out = new Float64Array(P);
      for (let p = 0; p < P; p++) {
        out[p] = raw[p] / this.sampleCount;
        if (!Number.isFinite(out[p])) {
          throw new InputError(`the loss at point ${p} is not finite (${out[p]}): the perturbation is too large for float32`);
        }
      }
      this.evaluated += P;
      return out;
    } finally {
      perCall.destroy();
      for (const b of temporary) b.destroy();
    }
  }

  /** Frees every GPU buffer this evaluator made. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.buffers.destroy();
    this.builder.destroy();
    this.plans.clear();
  }
}
