// pool2d_backward.wgsl: the transpose of a pooling, in gather form (each activation cell sums the
// gradients of the windows that read it, no atomics), times phi'(z):
//   Out[b][s, c, y, x] = phi'(Mask[s, c, y, x]) * sum_{windows (py, px) covering (y, x)} w(py, px, y, x) G[b][s, c, py, px]
// POOL (override): 0 max, w = 1 when Idx[s, c, py, px] == y*W + x (the arg-max recorded by
// pool2d_forward.wgsl) else 0; 1 avg, w = 1 / divisor(py, px).
// Backward pass delta_k = phi'(z_k) ⊙ pool^T(g) with g = L_{k+1}^T delta_{k+1} (batch 1) and the
// R-backward Rdelta_k = phi'(z_k) ⊙ pool^T(L^T(Rdelta_{k+1}; W) + L^T(delta_{k+1}; V)) (batch = directions).
// Bindings: 0 G (read, pooled layout at offIn + b*sInB), 1 Idx (read, u32; unused by avg),
//           2 Mask (read, z), 3 Out (read_write, at offOut + b*sOutB),
//           4 params (uniform PoolParams, include/pool_common.wgsl; count = batch*rows*C*H*W).
// Windows are visited in row-major order (deterministic).
// CPU twin: Pooling.backward (src/reference/pooling.ts).

// #include "elementwise.wgsl"
// #include "pool_common.wgsl"

override POOL: u32 = 0u;

@group(0) @binding(0) var<storage, read> G: array<f32>;
@group(0) @binding(1) var<storage, read> Idx: array<u32>;
@group(0) @binding(2) var<storage, read> Mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> Out: array<f32>;
@group(0) @binding(4) var<uniform> p: PoolParams;

/** Windows along one axis covering cell v: py with py*s - pad <= v <= py*s - pad + k - 1, as [lo, hi). */
fn covering(v: u32, k: u32, s: u32, pad: u32, n: u32) -> vec2<u32> {
  let top = i32(v + pad);
  let first = top - i32(k) + 1;
  let lo = select(0, (first + i32(s) - 1) / i32(s), first > 0);
  let hi = min(i32(n), top / i32(s) + 1);
  return vec2<u32>(u32(lo), u32(max(hi, lo)));
}

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = elementIndex(gid, groups);
  if (t >= p.count) {
    return;
  }
  let x = t % p.W;
  var r = t / p.W;
  let y = r % p.H;
  r = r / p.H;
  let c = r % p.C;
  r = r / p.C;
  let s = r % p.rows;
  let b = r / p.rows;
  let plane = s * p.C + c;
  let here = y * p.W + x;
  let ys = covering(y, p.kh, p.sh, p.ph, p.Hp);
  let xs = covering(x, p.kw, p.sw, p.pw, p.Wp);
  let pBase = plane * p.Hp * p.Wp;
  let gBase = p.offIn + b * p.sInB + pBase;
  var acc = 0.0;
  for (var py = ys.x; py < ys.y; py++) {
    for (var px = xs.x; px < xs.y; px++) {
      let pe = py * p.Wp + px;
      if (POOL == 0u) {
        if (Idx[pBase + pe] == here) {
          acc += G[gBase + pe];
        }
      } else {
        acc += G[gBase + pe] / avgDivisor(py, px);
      }
    }
  }
  let e = plane * p.H * p.W + here;
  let z = Mask[p.offMask + e];
  Out[p.offOut + b * p.sOutB + e] = select(p.slope * acc, acc, z > 0.0);
}
