/**
 * Floating-point operation counts of the engine's passes (a multiply-add counts 2), from the
 * products listed in src/gpu/objective.ts. Used to report GFLOP/s.
 * With F_k = 2 B in_k out_k (for a convolution, 2 B times its multiply-adds per sample,
 * out·H'·W'·(in/groups)·kh·kw: each of its passes is a product of that size): forward = sum F_k; gradient = forward + sum F_k (weights) +
 * sum_{k>0} F_k (deltas); one HVP = forward + sum_{k>0} F_k (deltas) + tangent (sum F_k +
 * sum_{k>0} F_k) + R-backward (sum F_k + sum_{k>0} F_k for weights, 2 sum_{k>0} F_k for deltas).
 */
import { layerMultiplyAdds, type ModelSpec } from "./model.ts";

export function passFlops(spec: ModelSpec, batch: number) {
  const f = spec.layers.map((l) => 2 * batch * layerMultiplyAdds(l));
  const all = f.reduce((a, b) => a + b, 0);
  const inner = all - f[0];
  const forward = all;
  const gradient = forward + all + inner;
  const hvpDirectional = all + inner + all + inner + 2 * inner; // tangent + R-backward, per direction
  const hvp = forward + inner + hvpDirectional;
  return { forward, gradient, hvp, hvpDirectional, block: (k: number) => forward + inner + k * hvpDirectional };
}
