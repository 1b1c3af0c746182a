/**
 * One context per GPU device: the adapter and its limits, a pipeline cache keyed by WGSL text and
 * constants (with in-flight compile de-duplication), explicit bind-group layouts, a buffer pool
 * with counters, labelled GPU objects, and WebGPU failures turned into typed errors:
 * compile errors (with line:col), validation and out-of-memory errors (through error scopes) and
 * device loss (every later call throws DeviceLostError).
 */
import {
  DeviceLimitError,
  DeviceLostError,
  GpuValidationError,
  InputError,
  ShaderCompileError,
  WebGPUUnavailableError,
} from "../errors.ts";
import { SHADER_INCLUDES, WGSL, type ShaderName } from "./shaders.generated.ts";
import { BufferPool } from "./pool.ts";
import { preferVulkanOnLinux } from "./denoBackend.ts";
import { BufferUsage, MapMode, ShaderStage } from "./usage.ts";

/** How a kernel binds a buffer: read-only storage, read-write storage, or uniform. */
export type BindingKind = "read" | "write" | "uniform";

/** A compute kernel to compile: its shader, binding layout and pipeline-overridable constants. */
export interface KernelDescriptor {
  /** The kernel's WGSL file (shaders/<name>.wgsl, camelCased key of WGSL). */
  shader: ShaderName;
  /** WGSL to compile instead of shaders/<shader>.wgsl (for experiments and tests). */
  source?: string;
  /** Kind of each binding, by binding index (group 0). */
  bindings: BindingKind[];
  /** Values of the shader's `override` constants (e.g. the loss kind, tile sizes). */
  constants?: Record<string, number>;
}

/** A compiled kernel: its pipeline and bind-group layout. */
export interface Kernel {
  /** The compute pipeline (entry point `main`). */
  pipeline: GPUComputePipeline;
  /** The explicit bind-group layout of group 0, built from descriptor.bindings. */
  layout: GPUBindGroupLayout;
  /** The descriptor it was compiled from. */
  descriptor: KernelDescriptor;
}

/** Options of GpuContext.create (and of openBackend). */
export interface ContextOptions {
  /** Use this adapter instead of requesting one. */
  adapter?: GPUAdapter;
  /** Adapter power preference when requesting one (default "high-performance"). */
  powerPreference?: GPUPowerPreference;
  /** navigator.gpu by default; pass another GPU object (e.g. from Node's `webgpu` package). */
  gpu?: GPU;
  /**
   * Matrix-product kernel: "register" (gemm.wgsl, register blocking, no workgroup memory: best on
   * CPU-emulated WebGPU) or "tiled" (gemm_tiled.wgsl, workgroup-memory tiles: best on real GPUs).
   * Default: chosen from the adapter.
   */
  gemm?: GemmVariant;
}

/** The matrix-product kernel: "register" (gemm.wgsl, register blocking) or "tiled" (gemm_tiled.wgsl, workgroup-memory tiles). */
export type GemmVariant = "register" | "tiled";

const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|software|warp/i;

/** One WebGPU device with its pipeline cache, buffer pool and error handling: compile errors, validation and out-of-memory errors and device loss become typed errors (see the module comment). */
export class GpuContext {
  /**
   * Every context created and not yet destroyed. A process should end with none: the command line
   * and the test suites destroy what is left on the way out (closeAll), on errors and on Ctrl-C
   * too, so no device, buffer or pending map outlives its work. The registry keeps a context (and
   * its device) reachable until destroy() or close(): dropping one without them leaks the device.
   */
  private static readonly live = new Set<GpuContext>();
  private static readonly liveWatchers = new Set<(live: number) => void>();
  /** The buffer pool every GPU vector and scratch buffer comes from. */
  readonly pool: BufferPool;
  private destroyed = false;
  private readonly kernels = new Map<string, Promise<Kernel>>();
  private lostMessage: string | null = null;
  private readonly uncaptured: string[] = [];

  /** The matrix-product kernel in use (see ContextOptions.gemm). */
  readonly gemmVariant: GemmVariant;

  private constructor(
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
    readonly adapterInfo: GPUAdapterInfo,
    gemm: GemmVariant | undefined,
  ) {
    this.pool = new BufferPool(device);
    GpuContext.live.add(this);
    GpuContext.notifyLive();
    this.gemmVariant = gemm ?? (this.isSoftware ? "register" : "tiled");
    device.lost.then((info) => {
      this.lostMessage = `${info.reason}: ${info.message}`;
    });
    device.addEventListener("uncapturederror", (event) => {
      this.uncaptured.push((event as GPUUncapturedErrorEvent).error.message);
    });
  }

  /** Requests an adapter (unless one is given) and a device with the adapter's own storage limits; WebGPUUnavailableError when there is no WebGPU or no adapter. */
  static async create(options: ContextOptions = {}): Promise<GpuContext> {
    // Before the first requestAdapter: Deno's WebGPU on Linux opens Vulkan only (see denoBackend.ts).
    if (!options.gpu && !options.adapter) preferVulkanOnLinux();
    const gpu = options.gpu ?? (globalThis.navigator as Navigator | undefined)?.gpu;
    if (!gpu) {
      throw new WebGPUUnavailableError(
        "WebGPU is not available in this runtime (navigator.gpu is missing). Use Deno, or Chromium with " +
          "--enable-unsafe-webgpu; on Linux without a GPU install Mesa's Vulkan driver (apt-get install mesa-vulkan-drivers).",
      );
    }
    let adapter = options.adapter ?? null;
    // Chromium's SwiftShader rarely returns null on the first request: try twice.
    for (let attempt = 0; !adapter && attempt < 2; attempt++) {
      adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? "high-performance" });
    }
    if (!adapter) {
      throw new WebGPUUnavailableError(
        "navigator.gpu.requestAdapter() returned no adapter: no usable GPU or Vulkan driver " +
          "(on Linux without a GPU: apt-get install mesa-vulkan-drivers; Deno's WebGPU opens Vulkan only here, " +
          "DENO_WEBGPU_BACKEND=vulkan,gl also allows OpenGL).",
      );
    }
    // Ask for the adapter's own storage limits: the defaults (128 MiB bindings) are often lower.
    const requiredLimits: Record<string, number> = {};
    for (const key of ["maxStorageBufferBindingSize", "maxBufferSize", "maxStorageBuffersPerShaderStage", "maxComputeWorkgroupsPerDimension"] as const) {
      requiredLimits[key] = adapter.limits[key];
    }
    const device = await adapter.requestDevice({ requiredLimits, label: "flatness" });
    const info = adapter.info ?? ({ vendor: "", architecture: "", device: "", description: "" } as GPUAdapterInfo);
    if (options.gemm && options.gemm !== "register" && options.gemm !== "tiled") {
      throw new InputError(`gemm must be "register" or "tiled", got ${options.gemm}`);
    }
    return new GpuContext(adapter, device, info, options.gemm);
  }

  /** The device's limits (maxStorageBufferBindingSize, ...). */
  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** True on CPU-emulated WebGPU (lavapipe, SwiftShader): kernels then prefer register blocking. */
  get isSoftware(): boolean {
    const a = this.adapter as GPUAdapter & { isFallbackAdapter?: boolean };
    const infoFallback = (this.adapterInfo as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter;
    return Boolean(a.isFallbackAdapter || infoFallback) || SOFTWARE_ADAPTER.test(this.describe());
  }

  /** A one-line description of the adapter, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  describe(): string {
    const i = this.adapterInfo;
    return [i.description, i.vendor, i.architecture, i.device].filter((s) => s && s !== "0").join(" / ") || "unknown adapter";
  }

  /** Throws DeviceLostError once the device is gone, and reports errors nobody caught. */
  checkAlive(): void {
    if (this.lostMessage !== null) {
      throw new DeviceLostError(`the GPU device was lost (${this.lostMessage}); create a new GpuContext`);
    }
    if (this.uncaptured.length > 0) {
      const messages = this.uncaptured.splice(0);
      throw new GpuValidationError(`WebGPU reported: ${messages.join("; ")}`);
    }
  }

  /** Checks a storage binding against maxStorageBufferBindingSize, naming the tensor. */
  checkBindingSize(label: string, bytes: number): void {
    const limit = this.limits.maxStorageBufferBindingSize;
    if (bytes > limit) {
      throw new DeviceLimitError(
        `${label} needs a ${bytes}-byte storage binding but this device allows at most ${limit} bytes ` +
          `(maxStorageBufferBindingSize); use a smaller chunk or model`,
      );
    }
  }

  /** Compiles (once per device) and returns the pipeline for a kernel. */
  kernel(descriptor: KernelDescriptor): Promise<Kernel> {
    this.checkAlive();
    const key = JSON.stringify([descriptor.source ?? descriptor.shader, descriptor.bindings, descriptor.constants ?? {}]);
    let pending = this.kernels.get(key);
    if (!pending) {
      pending = this.compile(descriptor);
      this.kernels.set(key, pending);
      pending.catch(() => this.kernels.delete(key));
    }
    return pending;
  }

  /** Compiles a kernel's WGSL and pipeline; ShaderCompileError names the .wgsl file and line:col. */
  private async compile(descriptor: KernelDescriptor): Promise<Kernel> {
    const code = descriptor.source ?? WGSL[descriptor.shader];
    const label = `flatness:${descriptor.shader}${descriptor.constants ? JSON.stringify(descriptor.constants) : ""}`;
    this.checkAlive();
    // Compile errors arrive either as compilation messages (Chromium/Dawn) or as a validation error
    // (Deno/wgpu): both become a ShaderCompileError naming the file and line:col.
    this.device.pushErrorScope("validation");
    const module = this.device.createShaderModule({ code, label });
    const info = await module.getCompilationInfo();
    const scoped = await this.device.popErrorScope();
    const errors = info.messages.filter((m) => m.type === "error");
    if (errors.length > 0 || scoped) {
      const file = `${descriptor.shader}.wgsl`;
      const firstLine = (text: string) => text.split("\n").map((l) => l.trim()).find((l) => l.length > 0) ?? "";
      const where = (line: number, col: number | string) => `${sourceLocation(descriptor, line)}:${col}`;
      const lines = errors.length > 0
        ? errors.map((m) => `  ${where(m.lineNum, m.linePos)}: ${firstLine(m.message)}`)
        : wgpuCompileMessage(scoped!.message, where);
      throw new ShaderCompileError(`shaders/${file} failed to compile:\n${lines.join("\n")}`);
    }
    return await this.withErrorScope(`creating the ${descriptor.shader}.wgsl pipeline`, async () => {
      const layout = this.device.createBindGroupLayout({
        label,
        entries: descriptor.bindings.map((kind, binding) => ({
          binding,
          visibility: ShaderStage.COMPUTE,
          buffer: { type: kind === "uniform" ? "uniform" : kind === "read" ? "read-only-storage" : "storage" },
        })),
      });
      let pipeline: GPUComputePipeline;
      try {
        pipeline = await this.device.createComputePipelineAsync({
          label,
          layout: this.device.createPipelineLayout({ label, bindGroupLayouts: [layout] }),
          compute: { module, entryPoint: "main", constants: descriptor.constants },
        });
      } catch (e) {
        throw new ShaderCompileError(`shaders/${descriptor.shader}.wgsl: pipeline creation failed: ${(e as Error).message}`, { cause: e });
      }
      return { pipeline, layout, descriptor };
    });
  }

  /**
   * Runs `work` inside validation and out-of-memory error scopes and throws GpuValidationError
   * (naming `what`) if WebGPU reported anything.
   */
  async withErrorScope<T>(what: string, work: () => T | Promise<T>): Promise<T> {
    this.checkAlive();
    this.device.pushErrorScope("out-of-memory");
    this.device.pushErrorScope("validation");
    let result: T;
    try {
      result = await work();
    } finally {
      const validation = await this.device.popErrorScope();
      const oom = await this.device.popErrorScope();
      this.checkAlive();
      if (validation) throw new GpuValidationError(`WebGPU validation error while ${what}: ${validation.message}`);
      if (oom) throw new GpuValidationError(`out of GPU memory while ${what}: ${oom.message}`);
    }
    return result;
  }

  /** A uniform buffer holding `data` (u32/f32 words), labelled. */
  uniform(label: string, data: ArrayBuffer): GPUBuffer {
    const buffer = this.device.createBuffer({
      label: `flatness:uniform:${label}`,
      size: Math.max(16, Math.ceil(data.byteLength / 16) * 16),
      usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST,
    });
    this.device.queue.writeBuffer(buffer, 0, data);
    return buffer;
  }

  /** Reads `count` f32 values from `buffer` at element `offset` back to the host. */
  async readFloats(buffer: GPUBuffer, offset: number, count: number): Promise<Float32Array> {
    this.checkAlive();
    const bytes = count * 4;
    const staging = this.pool.acquire(bytes, BufferUsage.MAP_READ | BufferUsage.COPY_DST, "readback");
    try {
      const encoder = this.device.createCommandEncoder({ label: "flatness:readback" });
      encoder.copyBufferToBuffer(buffer, offset * 4, staging, 0, bytes);
      this.device.queue.submit([encoder.finish()]);
      try {
        await staging.mapAsync(MapMode.READ, 0, bytes);
      } catch (e) {
        this.checkAlive();
        throw new GpuValidationError(`reading ${buffer.label} back failed: ${(e as Error).message}`, { cause: e });
      }
      const out = new Float32Array(staging.getMappedRange(0, bytes).slice(0));
      staging.unmap();
      return out;
    } finally {
      this.pool.release(staging);
    }
  }

  /** Whether destroy() has run: the context must not be used after. */
  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Releases every pooled buffer and the device, at once. Safe to call twice. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    GpuContext.live.delete(this);
    GpuContext.notifyLive();
    this.pool.destroyAll();
    this.device.destroy();
  }

  /**
   * Waits for the work already submitted (so no map or dispatch is pending), then destroy().
   * A lost device has nothing pending: it is destroyed at once; a queue that does not drain within
   * `timeoutMs` (default 10 s) is destroyed anyway, so a process never hangs on its way out.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    if (this.destroyed) return;
    if (this.lostMessage === null) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      try {
        await Promise.race([this.device.queue.onSubmittedWorkDone(), this.device.lost, timeout]);
      } finally {
        clearTimeout(timer);
      }
    }
    this.destroy();
  }

  /**
   * Calls `listener` with the number of live contexts whenever it changes (the command line holds
   * its Ctrl-C handler only while a device is open). Returns the function that stops it.
   */
  static watchLive(listener: (live: number) => void): () => void {
    GpuContext.liveWatchers.add(listener);
    return () => GpuContext.liveWatchers.delete(listener);
  }

  /** Tells every watcher the new number of live contexts. */
  private static notifyLive(): void {
    for (const listener of GpuContext.liveWatchers) listener(GpuContext.live.size);
  }

  /** How many contexts are alive (created and not destroyed): tests check that none leaks. */
  static get liveCount(): number {
    return GpuContext.live.size;
  }

  /** Closes every live context (the way out of a command, a test run, or an interrupted one). */
  static async closeAll(): Promise<void> {
    await Promise.all([...GpuContext.live].map((c) => c.close()));
  }

  /** destroy() on every live context, without waiting: for a signal handler that must exit now. */
  static destroyAll(): void {
    for (const c of [...GpuContext.live]) c.destroy();
  }
}

/** "file.wgsl:line" for a line of a kernel's compiled text, mapping appended includes back to their files. */
function sourceLocation(descriptor: KernelDescriptor, line: number): string {
  if (!descriptor.source) {
    const include = (SHADER_INCLUDES[descriptor.shader] ?? []).filter((i) => line >= i.firstLine).at(-1);
    if (include) return `include/${include.file}:${line - include.firstLine + 1}`;
  }
  return `${descriptor.shader}.wgsl:${line}`;
}

/**
 * wgpu reports a WGSL error as text with a source excerpt ("┌─ wgsl:4:10"); turn it into
 * "file:line:col: message" lines.
 */
function wgpuCompileMessage(message: string, where: (line: number, col: string) => string): string[] {
  const headline = message.split("\n").find((l) => /error/i.test(l))?.trim() ?? message.trim();
  const positions = [...message.matchAll(/wgsl:(\d+):(\d+)/g)].map((m) => where(Number(m[1]), m[2]));
  return positions.length > 0 ? positions.map((p) => `  ${p}: ${headline}`) : [`  ${message.trim()}`];
}
