/**
 * Optimizers whose state stays on the GPU: each step is one dispatch of shaders/sgd_momentum.wgsl
 * or shaders/adam.wgsl over the parameter vector (float64 twins: optimizers.ts). Only the step's
 * scalars (learning rate, Adam's bias corrections) are written from the host.
 */
import { InputError } from "../errors.ts";
import type { GpuContext, Kernel } from "../gpu/context.ts";
import { DispatchBuilder } from "../gpu/dispatch.ts";
import type { GpuVector, GpuVectorSpace } from "../gpu/vectors.ts";
import { adamStepScalars, type Optimizer, type OptimizerConfig, resolveOptimizerConfig, type ResolvedOptimizerConfig } from "./optimizers.ts";
import { BufferUsage } from "../gpu/usage.ts";

export class GpuOptimizer implements Optimizer<GpuVector> {
  readonly config: ResolvedOptimizerConfig;
  steps = 0;
  private readonly ctx: GpuContext;
  private readonly builder: DispatchBuilder;
  private readonly params: GPUBuffer;
  /** Velocity (sgd) or first moment (adam); second moment (adam only). */
  private readonly state: GpuVector[];
  private bindGroup: { theta: GPUBuffer; grad: GPUBuffer; group: GPUBindGroup } | null = null;
  private disposed = false;

  private constructor(readonly space: GpuVectorSpace, config: ResolvedOptimizerConfig, private readonly kernel: Kernel) {
    this.config = config;
    this.ctx = space.ctx;
    this.builder = new DispatchBuilder(this.ctx);
    this.params = this.ctx.device.createBuffer({
      label: `flatness:${config.kind}-params`,
      size: 64,
      usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST,
    });
    this.state = config.kind === "sgd" ? [space.zeros()] : [space.zeros(), space.zeros()];
  }

  /** An optimizer for vectors of `space`, its state zero-initialised on the GPU. */
  static async create(space: GpuVectorSpace, config: OptimizerConfig): Promise<GpuOptimizer> {
    const resolved = resolveOptimizerConfig(config);
    const kernel = resolved.kind === "sgd"
      ? await space.ctx.kernel({ shader: "sgdMomentum", bindings: ["read", "write", "write", "uniform"] })
      : await space.ctx.kernel({ shader: "adam", bindings: ["read", "write", "write", "write", "uniform"] });
    return new GpuOptimizer(space, resolved, kernel);
  }

  step(theta: GpuVector, grad: GpuVector): void {
    if (this.disposed) throw new InputError("this optimizer was disposed");
    this.space.check(theta, "theta");
    this.space.check(grad, "gradient");
    if (theta === grad) throw new InputError("the gradient must be a different vector from theta");
    this.steps++;
    const c = this.config;
    const words = new ArrayBuffer(64);
    const u = new Uint32Array(words);
    const f = new Float32Array(words);
    u[0] = this.space.dim;
    if (c.kind === "sgd") {
      f.set([c.lr, c.momentum, c.weightDecay], 4);
    } else {
      const s = adamStepScalars(c, this.steps);
      u[1] = c.kind === "adamw" ? 1 : 0;
      f.set([c.beta1, c.beta2, c.eps, c.weightDecay, s.stepSize, s.sqrtBias2, s.decayFactor, 1 - c.beta1, 1 - c.beta2], 4);
    }
    this.ctx.checkAlive();
    const device = this.ctx.device;
    // writeBuffer is ordered before the submit below on the queue, so each step sees its own scalars.
    device.queue.writeBuffer(this.params, 0, words);
    const label = `${c.kind} step`;
    const encoder = device.createCommandEncoder({ label: `flatness:${label}` });
    const pass = encoder.beginComputePass({ label: `flatness:${label}` });
    pass.setPipeline(this.kernel.pipeline);
    pass.setBindGroup(0, this.bind(theta.buffer, grad.buffer));
    const groups = this.builder.linearGroups(label, this.space.dim);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    pass.end();
    device.queue.submit([encoder.finish()]);
    theta.version++;
  }

  /** The optimizer state as host arrays (velocity, or first and second moments), for tests. */
  async stateArrays(): Promise<Float64Array[]> {
    return await Promise.all(this.state.map((s) => this.space.toArray(s)));
  }

  private bind(theta: GPUBuffer, grad: GPUBuffer): GPUBindGroup {
    const b = this.bindGroup;
    if (b && b.theta === theta && b.grad === grad) return b.group;
    const buffers = [grad, theta, ...this.state.map((s) => s.buffer), this.params];
    const group = this.ctx.device.createBindGroup({
      label: `flatness:${this.config.kind}-step`,
      layout: this.kernel.layout,
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    this.bindGroup = { theta, grad, group };
    return group;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of this.state) this.space.dispose(s);
    this.params.destroy();
    this.builder.destroy();
    this.bindGroup = null;
  }
}
