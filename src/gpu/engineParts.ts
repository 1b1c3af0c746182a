/**
 * What the GPU engines that replay dispatch lists share: GpuObjective and GpuConvObjective
 * (through PassObjective) and the landscape's GpuBatchLoss. The loss codes of the loss shaders,
 * the default memory budget, the cache that builds a dispatch list once and replays it, and the
 * set of storage buffers an engine makes and frees together.
 */
import type { LossKind } from "../model.ts";
import type { GpuContext } from "./context.ts";
import type { Dispatch } from "./dispatch.ts";
import { STORAGE_COPY } from "./usage.ts";

/** The LOSS constant of loss_gradient.wgsl, loss_curvature.wgsl and landscape_loss.wgsl. */
export const LOSS_CODE: Record<LossKind, number> = { ce: 0, mse: 1, logistic: 2 };

/** Default bytes of activation buffers an engine sizes its chunks or blocks for (256 MiB). */
export const DEFAULT_MEMORY_BUDGET = 256 * 2 ** 20;

/** Memoised dispatch lists: each built once per key (kind, chunk, directions...) and replayed. */
export class PlanCache {
  private readonly plans = new Map<string, Promise<Dispatch[]>>();

  /** The list under `key`, built by `build` on first use; a build that fails is forgotten, so a later call retries. */
  get(key: string, build: () => Promise<Dispatch[]>): Promise<Dispatch[]> {
    let p = this.plans.get(key);
    if (!p) {
      p = build();
      this.plans.set(key, p);
      p.catch(() => this.plans.delete(key));
    }
    return p;
  }

  clear(): void {
    this.plans.clear();
  }
}

/** The storage buffers an engine owns: made one by one (labelled `prefix` + label), freed together. */
export class StorageBuffers {
  private readonly buffers: GPUBuffer[] = [];

  constructor(private readonly ctx: GpuContext, private readonly prefix: string) {}

  /** A storage buffer of `floats` f32 values (at least 16 bytes), checked against the binding limit. */
  make(label: string, floats: number): GPUBuffer {
    this.ctx.checkBindingSize(label, floats * 4);
    const b = this.ctx.device.createBuffer({ label: `${this.prefix}${label}`, size: Math.max(16, floats * 4), usage: STORAGE_COPY });
    this.buffers.push(b);
    return b;
  }

  /** Destroys every buffer made so far. */
  destroy(): void {
    for (const b of this.buffers) b.destroy();
    this.buffers.length = 0;
  }
}
