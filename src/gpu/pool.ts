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

export class BufferPool {
  private readonly freeLists = new Map<string, GPUBuffer[]>();
  private readonly live = new Set<GPUBuffer>();
  private createdCount = 0;
  private bytesLive = 0;

  constructor(private readonly device: GPUDevice) {}

  static bucketSize(bytes: number): number {
    let size = 256;
    while (size < bytes) size *= 2;
    return size;
  }

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

  release(buffer: GPUBuffer): void {
    if (!this.live.delete(buffer)) return;
    this.bytesLive -= buffer.size;
    const key = `${buffer.size}:${buffer.usage}`;
    let list = this.freeLists.get(key);
    if (!list) this.freeLists.set(key, (list = []));
    list.push(buffer);
  }

  get counters(): PoolCounters {
    let free = 0;
    for (const l of this.freeLists.values()) free += l.length;
    return { inUse: this.live.size, bytesInUse: this.bytesLive, created: this.createdCount, free };
  }

  destroyAll(): void {
    for (const b of this.live) b.destroy();
    for (const l of this.freeLists.values()) for (const b of l) b.destroy();
    this.live.clear();
    this.freeLists.clear();
    this.bytesLive = 0;
  }
}
