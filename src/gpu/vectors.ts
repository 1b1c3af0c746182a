/**
 * Vectors that stay on the GPU: f32 storage buffers from the context's pool. Only scalars (dot
 * products) and explicit toArray() calls cross to the host. Each mutation bumps `version`, which
 * lets engines reuse work done at the same parameters (see GpuObjective's forward-state cache).
 */
import { InputError } from "../errors.ts";
import type { VectorSpace } from "../objective.ts";
import type { GpuContext, Kernel } from "./context.ts";
import { reduceGroups } from "./dispatch.ts";
import { BufferUsage, STORAGE_COPY } from "./usage.ts";

/** Dots per readback in GpuVectorSpace.dots. */
const DOTS_BATCH = 64;

export class GpuVector {
  version = 0;
  disposed = false;
  constructor(readonly buffer: GPUBuffer, readonly length: number) {}
}

export class GpuVectorSpace implements VectorSpace<GpuVector> {
  /** f32 storage. */
  readonly epsilon = 2 ** -23;
  private readonly partials: GPUBuffer;
  private readonly result: GPUBuffer;
  /** dots(): one f32 slot per dot of a batch, read back together. */
  private readonly batchResults: GPUBuffer;
  private readonly reduceParams: GPUBuffer;
  private readonly axpyParams: GPUBuffer;
  private readonly scaleParams: GPUBuffer;
  private readonly multiplyParams: GPUBuffer;
  private kernels: { reduce: Kernel; finish: Kernel; axpy: Kernel; scale: Kernel; multiply: Kernel } | null = null;

  private constructor(readonly ctx: GpuContext, readonly dim: number) {
    const d = ctx.device;
    this.partials = d.createBuffer({ label: "flatness:dot-partials", size: 256 * 4, usage: BufferUsage.STORAGE });
    this.result = d.createBuffer({ label: "flatness:dot-result", size: 256, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC });
    this.batchResults = d.createBuffer({ label: "flatness:dots-results", size: DOTS_BATCH * 4, usage: BufferUsage.COPY_DST | BufferUsage.COPY_SRC });
    const uniform = (label: string) => d.createBuffer({ label, size: 32, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST });
    this.reduceParams = uniform("flatness:dot-params");
    this.axpyParams = uniform("flatness:axpy-params");
    this.scaleParams = uniform("flatness:scale-params");
    this.multiplyParams = uniform("flatness:multiply-params");
    d.queue.writeBuffer(this.multiplyParams, 0, new Uint32Array([dim, 0, 0, 0, 0, 0, 0, 0]));
  }

  static async create(ctx: GpuContext, dim: number): Promise<GpuVectorSpace> {
    if (!Number.isInteger(dim) || dim < 1) throw new InputError(`vector dimension must be a positive integer, got ${dim}`);
    ctx.checkBindingSize(`a parameter vector of ${dim} floats`, dim * 4);
    const space = new GpuVectorSpace(ctx, dim);
    space.kernels = {
      reduce: await ctx.kernel({ shader: "reduce", bindings: ["read", "read", "write", "uniform"] }),
      finish: await ctx.kernel({ shader: "reduceFinish", bindings: ["read", "write", "uniform"] }),
      axpy: await ctx.kernel({ shader: "axpy", bindings: ["read", "write", "uniform"] }),
      scale: await ctx.kernel({ shader: "scale", bindings: ["write", "uniform"] }),
      multiply: await ctx.kernel({ shader: "multiply", bindings: ["read", "write", "uniform"] }),
    };
    return space;
  }

  zeros(): GpuVector {
    const v = this.allocate();
    const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:zeros" });
    encoder.clearBuffer(v.buffer, 0, this.dim * 4);
    this.ctx.device.queue.submit([encoder.finish()]);
    return v;
  }

  fromArray(values: ArrayLike<number>): GpuVector {
    // Checked before allocating: a refused vector must not hold a pooled buffer.
    this.checkLength(values);
    const v = this.allocate();
    this.write(v, values);
    return v;
  }

  write(v: GpuVector, values: ArrayLike<number>): void {
    this.check(v, "write target");
    this.checkLength(values);
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    this.ctx.device.queue.writeBuffer(v.buffer, 0, data.buffer as ArrayBuffer, data.byteOffset, this.dim * 4);
    v.version++;
  }

  async toArray(v: GpuVector): Promise<Float64Array> {
    this.check(v, "vector");
    return Float64Array.from(await this.ctx.readFloats(v.buffer, 0, this.dim));
  }

  async dot(a: GpuVector, b: GpuVector): Promise<number> {
    this.check(a, "first operand");
    this.check(b, "second operand");
    const k = this.kernels!;
    const groups = reduceGroups(this.dim);
    this.ctx.device.queue.writeBuffer(this.reduceParams, 0, new Uint32Array([this.dim, 0, 0, 0, groups, 0, 0, 0]));
    const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:dot" });
    const pass = encoder.beginComputePass({ label: "flatness:dot" });
    pass.setPipeline(k.reduce.pipeline);
    pass.setBindGroup(0, this.bind(k.reduce, [a.buffer, b.buffer, this.partials, this.reduceParams]));
    pass.dispatchWorkgroups(groups);
    pass.setPipeline(k.finish.pipeline);
    pass.setBindGroup(0, this.bind(k.finish, [this.partials, this.result, this.reduceParams]));
    pass.dispatchWorkgroups(1);
    pass.end();
    this.ctx.device.queue.submit([encoder.finish()]);
    return (await this.ctx.readFloats(this.result, 0, 1))[0];
  }

  /**
   * xs[i]·y for every i with one readback per batch of up to DOTS_BATCH (Gram-Schmidt against a
   * Lanczos basis needs many dots at once; one readback each would cost a round trip each). Each
   * dot runs the same two reduction stages as dot(), so it returns the same bits.
   */
  async dots(xs: GpuVector[], y: GpuVector): Promise<number[]> {
    this.check(y, "second operand");
    xs.forEach((x, i) => this.check(x, `operand ${i}`));
    const k = this.kernels!;
    const groups = reduceGroups(this.dim);
    this.ctx.device.queue.writeBuffer(this.reduceParams, 0, new Uint32Array([this.dim, 0, 0, 0, groups, 0, 0, 0]));
    const out: number[] = [];
    for (let start = 0; start < xs.length; start += DOTS_BATCH) {
      const batch = xs.slice(start, start + DOTS_BATCH);
      const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:dots" });
      const finish = this.bind(k.finish, [this.partials, this.result, this.reduceParams]);
      batch.forEach((x, i) => {
        const pass = encoder.beginComputePass({ label: "flatness:dots" });
        pass.setPipeline(k.reduce.pipeline);
        pass.setBindGroup(0, this.bind(k.reduce, [x.buffer, y.buffer, this.partials, this.reduceParams]));
        pass.dispatchWorkgroups(groups);
        pass.setPipeline(k.finish.pipeline);
        pass.setBindGroup(0, finish);
        pass.dispatchWorkgroups(1);
        pass.end();
        encoder.copyBufferToBuffer(this.result, 0, this.batchResults, i * 4, 4);
      });
      this.ctx.device.queue.submit([encoder.finish()]);
      out.push(...(await this.ctx.readFloats(this.batchResults, 0, batch.length)));
    }
    return out;
  }

  axpy(alpha: number, x: GpuVector, y: GpuVector): void {
    this.check(x, "x");
    this.check(y, "y");
    // A buffer cannot be bound read-only and read-write in one dispatch: y + alpha y = (1 + alpha) y.
    if (x === y) return this.scale(1 + alpha, y);
    this.linearCombination(alpha, x, 1, y);
  }

  /** y <- alpha x + beta y. */
  linearCombination(alpha: number, x: GpuVector, beta: number, y: GpuVector): void {
    this.check(x, "x");
    this.check(y, "y");
    if (x === y) return this.scale(alpha + beta, y);
    const words = new ArrayBuffer(32);
    new Uint32Array(words).set([this.dim, 0, 0, 0]);
    new Float32Array(words).set([alpha, beta], 4);
    this.ctx.device.queue.writeBuffer(this.axpyParams, 0, words);
    this.run("axpy", this.kernels!.axpy, [x.buffer, y.buffer, this.axpyParams]);
    y.version++;
  }

  scale(alpha: number, x: GpuVector): void {
    this.check(x, "x");
    const words = new ArrayBuffer(32);
    new Uint32Array(words).set([this.dim, 0, 0, 0]);
    new Float32Array(words)[4] = alpha;
    this.ctx.device.queue.writeBuffer(this.scaleParams, 0, words);
    this.run("scale", this.kernels!.scale, [x.buffer, this.scaleParams]);
    x.version++;
  }

  multiply(x: GpuVector, y: GpuVector): void {
    this.check(x, "x");
    this.check(y, "y");
    if (x === y) {
      // A buffer cannot be bound read-only and read-write in one dispatch: square through a copy.
      const tmp = this.allocate();
      this.copy(y, tmp);
      this.multiply(tmp, y);
      this.dispose(tmp);
      return;
    }
    this.run("multiply", this.kernels!.multiply, [x.buffer, y.buffer, this.multiplyParams]);
    y.version++;
  }

  copy(src: GpuVector, dst: GpuVector): void {
    this.check(src, "source");
    this.check(dst, "destination");
    if (src === dst) return;
    const encoder = this.ctx.device.createCommandEncoder({ label: "flatness:copy" });
    encoder.copyBufferToBuffer(src.buffer, 0, dst.buffer, 0, this.dim * 4);
    this.ctx.device.queue.submit([encoder.finish()]);
    dst.version++;
  }

  dispose(v: GpuVector): void {
    if (v.disposed) return;
    v.disposed = true;
    this.ctx.pool.release(v.buffer);
  }

  /** Frees the space's own scratch buffers (vectors are released with dispose()). */
  destroy(): void {
    for (const b of [this.partials, this.result, this.batchResults, this.reduceParams, this.axpyParams, this.scaleParams, this.multiplyParams]) b.destroy();
  }

  /** InputError unless `values` has one entry per dimension. */
  private checkLength(values: ArrayLike<number>): void {
    if (values.length !== this.dim) throw new InputError(`vector has ${values.length} entries, the parameter space has ${this.dim}`);
  }

  private allocate(): GpuVector {
    this.ctx.checkAlive();
    return new GpuVector(this.ctx.pool.acquire(this.dim * 4, STORAGE_COPY, `vector[${this.dim}]`), this.dim);
  }

  check(v: GpuVector, what: string): void {
    if (!(v instanceof GpuVector)) throw new InputError(`${what} is not a GPU vector of this space`);
    if (v.disposed) throw new InputError(`${what} was already disposed`);
    if (v.length !== this.dim) throw new InputError(`${what} has ${v.length} entries, the parameter space has ${this.dim}`);
  }

  private bind(kernel: Kernel, buffers: GPUBuffer[]): GPUBindGroup {
    return this.ctx.device.createBindGroup({
      layout: kernel.layout,
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
  }

  private run(label: string, kernel: Kernel, buffers: GPUBuffer[]): void {
    this.ctx.checkAlive();
    const total = Math.ceil(this.dim / 256);
    const x = Math.min(total, this.ctx.limits.maxComputeWorkgroupsPerDimension);
    const encoder = this.ctx.device.createCommandEncoder({ label: `flatness:${label}` });
    const pass = encoder.beginComputePass({ label: `flatness:${label}` });
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, this.bind(kernel, buffers));
    pass.dispatchWorkgroups(x, Math.ceil(total / x));
    pass.end();
    this.ctx.device.queue.submit([encoder.finish()]);
  }
}
