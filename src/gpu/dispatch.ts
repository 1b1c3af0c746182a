/**
 * Dispatch builders: each returns a ready-to-encode dispatch (pipeline, bind group with its own
 * immutable uniform buffer, workgroup counts) for one kernel in shaders/. Engines build their
 * dispatch lists once per shape and replay them, so a hot loop allocates nothing.
 */
import type { GemmVariant, GpuContext, KernelDescriptor } from "./context.ts";
import { DeviceLimitError } from "../errors.ts";
import { BufferUsage } from "./usage.ts";

export interface Dispatch {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  groups: [number, number, number];
}

/** A strided view of a matrix (or batch of matrices) inside a buffer, in f32 elements. */
export interface Operand {
  buffer: GPUBuffer;
  offset: number;
  strideRow: number;
  strideCol: number;
  strideBatch: number;
}

export interface GemmSpec {
  label: string;
  m: number;
  n: number;
  k: number;
  batch: number;
  a: Operand;
  b: Operand;
  c: Operand;
  /** Row vector added to every row of C (offset, stride between batch entries). */
  bias?: { buffer: GPUBuffer; offset: number; strideBatch: number };
  /** C is multiplied by phi'(mask) elementwise: the ReLU / leaky-ReLU derivative mask. */
  mask?: Operand;
  accumulate?: boolean;
  alpha?: number;
  slope?: number;
}

/** C elements per workgroup along rows and columns: gemm.wgsl 8x8 threads of 4x4; gemm_tiled.wgsl 64x64. */
const GEMM_KERNELS: Record<GemmVariant, { descriptor: KernelDescriptor; rows: number; cols: number }> = {
  register: { descriptor: { shader: "gemm", bindings: ["read", "read", "read", "read", "write", "uniform"] }, rows: 32, cols: 32 },
  tiled: { descriptor: { shader: "gemmTiled", bindings: ["read", "read", "read", "read", "write", "uniform"] }, rows: 64, cols: 64 },
};

/** Owns the uniform buffers of the dispatches it built; destroy() frees them. */
export class DispatchBuilder {
  private readonly uniforms: GPUBuffer[] = [];
  private dummy: GPUBuffer | null = null;

  constructor(readonly ctx: GpuContext) {}

  private placeholder(): GPUBuffer {
    if (!this.dummy) {
      this.dummy = this.ctx.device.createBuffer({ label: "flatness:unused-binding", size: 256, usage: BufferUsage.STORAGE });
      this.uniforms.push(this.dummy);
    }
    return this.dummy;
  }

  private uniform(label: string, words: ArrayBuffer): GPUBuffer {
    const u = this.ctx.uniform(label, words);
    this.uniforms.push(u);
    return u;
  }

  private checkGroups(label: string, groups: [number, number, number]): [number, number, number] {
    const max = this.ctx.limits.maxComputeWorkgroupsPerDimension;
    groups.forEach((g, axis) => {
      if (g > max) {
        throw new DeviceLimitError(
          `${label} needs ${g} workgroups along axis ${"xyz"[axis]}, the device allows ${max} ` +
            `(maxComputeWorkgroupsPerDimension); use fewer samples per chunk or fewer directions per block`,
        );
      }
    });
    return groups;
  }

  async gemm(s: GemmSpec): Promise<Dispatch> {
    const variant = GEMM_KERNELS[this.ctx.gemmVariant];
    const kernel = await this.ctx.kernel(variant.descriptor);
    const words = new ArrayBuffer(96);
    const u = new Uint32Array(words);
    const f = new Float32Array(words);
    const flags = (s.accumulate ? 1 : 0) | (s.bias ? 2 : 0) | (s.mask ? 4 : 0);
    u.set([s.m, s.n, s.k, flags]);
    u.set([s.a.offset, s.a.strideRow, s.a.strideCol, s.a.strideBatch], 4);
    u.set([s.b.offset, s.b.strideRow, s.b.strideCol, s.b.strideBatch], 8);
    u.set([s.c.offset, s.c.strideRow, s.c.strideCol, s.c.strideBatch], 12);
    u.set([s.bias?.offset ?? 0, s.bias?.strideBatch ?? 0, s.mask?.offset ?? 0, s.mask?.strideRow ?? 0], 16);
    u.set([s.mask?.strideCol ?? 0, s.mask?.strideBatch ?? 0], 20);
    f[22] = s.alpha ?? 1;
    f[23] = s.slope ?? 0;
    const entries = [s.a.buffer, s.b.buffer, s.bias?.buffer ?? this.placeholder(), s.mask?.buffer ?? this.placeholder(), s.c.buffer, this.uniform(s.label, words)];
    const groups = this.checkGroups(s.label, [Math.ceil(s.n / variant.cols), Math.ceil(s.m / variant.rows), s.batch]);
    return this.dispatch(s.label, kernel.pipeline, kernel.layout, entries, groups);
  }

  /** A[i] = phi(Z[i]) for `count` elements. */
  async activate(label: string, z: GPUBuffer, zOffset: number, a: GPUBuffer, aOffset: number, count: number, slope: number): Promise<Dispatch> {
    const kernel = await this.ctx.kernel({ shader: "activate", bindings: ["read", "write", "uniform"] });
    const words = new ArrayBuffer(16);
    new Uint32Array(words).set([count, zOffset, aOffset]);
    new Float32Array(words)[3] = slope;
    return this.dispatch(label, kernel.pipeline, kernel.layout, [z, a, this.uniform(label, words)], this.linearGroups(label, count));
  }

  /** out[b][c] (+)= sum_r X[b][r, c]. */
  async columnSum(
    label: string,
    x: GPUBuffer,
    xOffset: number,
    xStrideBatch: number,
    out: GPUBuffer,
    outOffset: number,
    outStrideBatch: number,
    rows: number,
    cols: number,
    batch: number,
    accumulate: boolean,
  ): Promise<Dispatch> {
    const kernel = await this.ctx.kernel({ shader: "columnSum", bindings: ["read", "write", "uniform"] });
    const words = new Uint32Array([rows, cols, batch, accumulate ? 1 : 0, xOffset, xStrideBatch, outOffset, outStrideBatch]);
    return this.dispatch(label, kernel.pipeline, kernel.layout, [x, out, this.uniform(label, words.buffer)], this.checkGroups(label, [Math.ceil(cols / 64), batch, 1]));
  }

  /** Per-sample loss into lossOut[lossOffset..] and dL/dz into delta, for `rows` samples. */
  async lossGradient(label: string, loss: number, z: GPUBuffer, targets: GPUBuffer, lossOut: GPUBuffer, lossOffset: number, delta: GPUBuffer, rows: number, classes: number, scale: number): Promise<Dispatch> {
    const kernel = await this.ctx.kernel({ shader: "lossGradient", bindings: ["read", "read", "write", "write", "uniform"], constants: { LOSS: loss } });
    const words = new ArrayBuffer(16);
    new Uint32Array(words).set([rows, classes, lossOffset]);
    new Float32Array(words)[3] = scale;
    return this.dispatch(label, kernel.pipeline, kernel.layout, [z, targets, lossOut, delta, this.uniform(label, words)], this.checkGroups(label, [Math.ceil(rows / 64), 1, 1]));
  }

  /** Rdelta = (d²L/dz²) Rz for `batch` directions. */
  async lossCurvature(label: string, loss: number, z: GPUBuffer, rz: GPUBuffer, rdelta: GPUBuffer, rows: number, classes: number, batch: number, scale: number): Promise<Dispatch> {
    const kernel = await this.ctx.kernel({ shader: "lossCurvature", bindings: ["read", "read", "write", "uniform"], constants: { LOSS: loss } });
    const words = new ArrayBuffer(16);
    new Uint32Array(words).set([rows, classes, batch]);
    new Float32Array(words)[3] = scale;
    return this.dispatch(label, kernel.pipeline, kernel.layout, [z, rz, rdelta, this.uniform(label, words)], this.checkGroups(label, [Math.ceil(rows / 64), batch, 1]));
  }

  /** Two dispatches summing X (or X ⊙ Y) into result[resultOffset]; `partials` holds reduceGroups(n) floats. */
  async reduce(label: string, x: GPUBuffer, xOffset: number, y: GPUBuffer | null, yOffset: number, n: number, partials: GPUBuffer, result: GPUBuffer, resultOffset: number): Promise<Dispatch[]> {
    const stage1 = await this.ctx.kernel({ shader: "reduce", bindings: ["read", "read", "write", "uniform"] });
    const stage2 = await this.ctx.kernel({ shader: "reduceFinish", bindings: ["read", "write", "uniform"] });
    const groups = reduceGroups(n);
    const words = new Uint32Array([n, xOffset, yOffset, y ? 0 : 1, groups, resultOffset, 0, 0]);
    const u = this.uniform(label, words.buffer);
    return [
      this.dispatch(`${label}:partials`, stage1.pipeline, stage1.layout, [x, y ?? x, partials, u], [groups, 1, 1]),
      this.dispatch(`${label}:finish`, stage2.pipeline, stage2.layout, [partials, result, u], [1, 1, 1]),
    ];
  }

  linearGroups(label: string, count: number): [number, number, number] {
    const total = Math.max(1, Math.ceil(count / 256));
    const x = Math.min(total, this.ctx.limits.maxComputeWorkgroupsPerDimension);
    return this.checkGroups(label, [x, Math.ceil(total / x), 1]);
  }

  dispatch(label: string, pipeline: GPUComputePipeline, layout: GPUBindGroupLayout, buffers: GPUBuffer[], groups: [number, number, number]): Dispatch {
    const bindGroup = this.ctx.device.createBindGroup({
      label: `flatness:${label}`,
      layout,
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    return { label, pipeline, bindGroup, groups };
  }

  destroy(): void {
    for (const u of this.uniforms) u.destroy();
    this.uniforms.length = 0;
    this.dummy = null;
  }
}

/** Workgroups of the first reduction stage: enough to fill a GPU, few enough for one finishing group. */
export function reduceGroups(n: number): number {
  return Math.max(1, Math.min(256, Math.ceil(n / 4096)));
}

/** Records dispatches into one compute pass. */
export function encodeDispatches(encoder: GPUCommandEncoder, dispatches: Dispatch[], label: string): void {
  if (dispatches.length === 0) return;
  const pass = encoder.beginComputePass({ label: `flatness:${label}` });
  for (const d of dispatches) {
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(d.groups[0], d.groups[1], d.groups[2]);
  }
  pass.end();
}
