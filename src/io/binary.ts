/**
 * Byte-level helpers shared by the binary formats (npy, safetensors): copying little- or
 * big-endian numbers out of a byte slice into a fresh, aligned typed array, and decoding the
 * 16-bit float formats. Runtime-neutral: only typed arrays and DataView.
 */

/** True on little-endian hosts (every platform WebGPU runs on today, but we do not assume it). */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Copies `count` elements of `itemSize` bytes starting at `offset` into a new buffer, swapping
 * byte order when the file's order differs from the host's. Copying (rather than viewing) keeps
 * the result aligned whatever the file's header length or the input's byteOffset, and detaches
 * it from the caller's bytes.
 */
export function copyElements(
  bytes: Uint8Array,
  offset: number,
  count: number,
  itemSize: number,
  littleEndian: boolean,
): ArrayBuffer {
  const out = new Uint8Array(count * itemSize);
  out.set(bytes.subarray(offset, offset + count * itemSize));
  if (itemSize > 1 && littleEndian !== HOST_LITTLE_ENDIAN) {
    for (let i = 0; i < out.length; i += itemSize) {
      for (let a = i, b = i + itemSize - 1; a < b; a++, b--) {
        const t = out[a];
        out[a] = out[b];
        out[b] = t;
      }
    }
  }
  return out.buffer;
}

/** Writes a typed array's elements as little-endian bytes (a plain copy on little-endian hosts). */
export function littleEndianBytes(data: Float32Array | Float64Array | Int32Array): Uint8Array {
  const out = new Uint8Array(data.byteLength);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  if (!HOST_LITTLE_ENDIAN) {
    const k = data.BYTES_PER_ELEMENT;
    for (let i = 0; i < out.length; i += k) out.subarray(i, i + k).reverse();
  }
  return out;
}

/** Decodes IEEE 754 half precision (binary16) bit patterns to float32. */
export function float16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) out[i] = sign * frac * 2 ** -24; // zero and subnormals
    else if (exp === 0x1f) out[i] = frac ? NaN : sign * Infinity;
    else out[i] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
}

/** Decodes bfloat16 bit patterns to float32: bf16 is the top half of a float32, so shift it up. */
export function bfloat16ToFloat32(bits: Uint16Array): Float32Array {
  const wide = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) wide[i] = bits[i] << 16;
  return new Float32Array(wide.buffer);
}

/** Product of a shape's extents (1 for a scalar shape []). */
export function shapeSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Formats a shape as `[2, 3]` for error messages. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
