/**
 * A size-bucketed buffer pool: buffers are rounded up to a power of two (at least 256 bytes) and
 * reused by (size, usage). Counters let tests prove that nothing leaks across thousands of calls.
 */
export interface PoolCounters {
  /** Buffers handed out and not yet released. */
  inUse: number;
  /** Bytes of those buffers. */
  bytesInUse: number;
  /** Buffers ever created by the pool (reuse keeps this flat). */
  created: number;
  /** Buffers sitting free in the pool. */
  free: number;
}

/** A size-bucketed pool of GPU buffers: sizes round up to a power of two (at least 256 bytes), released buffers are reused by (size, usage). */
export class BufferPool {
  private readonly freeLists = new Map<string, GPUBuffer[]>();
  private readonly live = new Set<GPUBuffer>();
  private createdCount = 0;
  private bytesLive = 0;

  /** A pool creating its buffers on `device`. */
  constructor(private readonly device: GPUDevice) {}

  /** The bucket a request of `bytes` falls in: the least power of two >= bytes, at least 256. */
  static bucketSize(bytes: number): number {
    let size = 256;
    while (size < bytes) size *= 2;
    return size;
  }

  /** A buffer of at least `bytes` with `usage`, reused from the pool when one is free; `label` names it (prefixed "flatness:") in WebGPU errors. */
  acquire(bytes: number, usage: GPUBufferUsageFlags, label: string): GPUBuffer {
    const size = BufferPool.bucketSize(bytes);
    const key = `${size}:${usage}`;
    let buffer = this.freeLists.get(key)?.pop();
    if (!buffer) {
      buffer = this.device.createBuffer({ size, usage, label: `flatness:${label}` });
      this.createdCount++;
    } else {
      buffer.label = `flatness:${label}`;
    }
    this.live.add(buffer);
    this.bytesLive += size;
    return buffer;
  }

  /** Returns a buffer to the pool for reuse (ignored when the pool did not hand it out or it was released already). */
  release(buffer: GPUBuffer): void {
    if (!this.live.delete(buffer)) return;
    this.bytesLive -= buffer.size;
    const key = `${buffer.size}:${buffer.usage}`;
    let list = this.freeLists.get(key);
    if (!list) this.freeLists.set(key, (list = []));
    list.push(buffer);
  }

  /** Current buffer counts and bytes (tests check that nothing leaks). */
  get counters(): PoolCounters {
    let free = 0;
    for (const l of this.freeLists.values()) free += l.length;
    return { inUse: this.live.size, bytesInUse: this.bytesLive, created: this.createdCount, free };
  }

  /** Destroys every buffer the pool created, in use or free. */
  destroyAll(): void {
    for (const b of this.live) b.destroy();
    for (const l of this.freeLists.values()) for (const b of l) b.destroy();
    this.live.clear();
    this.freeLists.clear();
    this.bytesLive = 0;
  }
}
