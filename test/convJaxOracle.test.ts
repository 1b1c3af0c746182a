/**
 * An independent oracle for the convolutional reference engine: jax-js (lax.convGeneralDilated,
 * lax.reduceWindow, jvp(grad(f)) on its WebAssembly backend) computes the same loss and exact HVP
 * with code that shares nothing with src/reference/. Agreement to f32 rounding checks PyTorch's
 * conventions as both read them: weight layout, groups, dilation, padding, stride, pooling.
 */
import { describe, expect, it } from "vitest";
import { parseArchitecture } from "../src/architecture.ts";
import { createJaxPeer } from "../src/bench/jaxPeer.ts";
import { parameterLayout } from "../src/model.ts";
import { Rng } from "../src/random.ts";
import { ReferenceObjective } from "../src/reference/engine.ts";
import { relativeError } from "../src/format.ts";

const NETS = [
  "conv(3,3,padding=1),relu,maxpool(2),conv(4,3,stride=2),relu,flatten,linear(5)",
  "conv(4,3,groups=2,dilation=2),leaky_relu(0.1),avgpool(2),flatten,linear(5)",
  "conv(4,2x3,stride=2x1,bias=false),relu,maxpool(3,stride=2),flatten,linear(5)",
];

describe("reference CNN engine against jax-js (wasm)", () => {
  for (const arch of NETS) {
    it(`loss and HVP agree to f32 rounding: ${arch}`, async () => {
      const spec = parseArchitecture(arch, [2, 9, 9]);
      const dim = parameterLayout(spec).dim;
      const n = 6;
      const rng = new Rng(1);
      const data = { n, features: 162, x: Float32Array.from({ length: n * 162 }, () => rng.normal()), labels: Int32Array.from({ length: n }, () => rng.int(5)) };
      const theta = Float32Array.from({ length: dim }, () => 0.3 * rng.normal());
      const v = Float32Array.from({ length: dim }, () => rng.normal());
      const peer = await createJaxPeer(spec, data, "ce", { backend: "wasm" });
      try {
        const ref = new ReferenceObjective(spec, data, "ce");
        const hv = new Float64Array(dim);
        await ref.hvp(Float64Array.from(theta), Float64Array.from(v), hv);
        expect(relativeError(await peer.hvp(theta, v), hv)).toBeLessThan(1e-5);
        expect(Math.abs((await peer.loss(theta)) - (await ref.loss(Float64Array.from(theta))))).toBeLessThan(1e-5);
        // Negative control: the same HVP along another direction is far from this one.
        expect(relativeError(await peer.hvp(theta, v.map((x) => -x + 0.1)), hv)).toBeGreaterThan(0.1);
      } finally {
        peer.dispose();
      }
    });
  }
});
