/**
 * GPUBufferUsage flags as numbers, with the values the WebGPU specification fixes for them
 * (https://www.w3.org/TR/webgpu/#buffer-usage). Modules use these instead of the global
 * `GPUBufferUsage`, so they load where WebGPU is absent (Node, a page without WebGPU) and fail only
 * when used; the Deno suite checks them against the runtime's own global.
 */
export const BufferUsage = {
  MAP_READ: 0x0001,
  MAP_WRITE: 0x0002,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  INDEX: 0x0010,
  VERTEX: 0x0020,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
  INDIRECT: 0x0100,
  QUERY_RESOLVE: 0x0200,
} as const;

/** Storage buffers that are also copied to and from: vectors, data chunks, activations. */
export const STORAGE_COPY = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST;

/** GPUMapMode flags (https://www.w3.org/TR/webgpu/#typedefdef-gpumapmodeflags). */
export const MapMode = { READ: 0x0001, WRITE: 0x0002 } as const;

/** GPUShaderStage flags (https://www.w3.org/TR/webgpu/#typedefdef-gpushaderstageflags). */
export const ShaderStage = { VERTEX: 0x1, FRAGMENT: 0x2, COMPUTE: 0x4 } as const;
