// pool2d_forward.wgsl: 2-D pooling of a hidden activation, one pooled cell per thread.
// POOL (override):
//   0 max:    Out[s, c, py, px] = max over the window's in-image cells of In; Idx records the
//             arg-max (y*W + x), the FIRST maximum in row-major (i, then j) order (PyTorch's rule;
//             padded cells never win). Forward pass a_{k+1} = maxpool(h_k) (batch 1).
//   1 avg:    Out = sum over the window's in-image cells of In / divisor (kh*kw with
//             countIncludePad, else the in-image count). Forward pass, and the tangent
//             Ra_{k+1} = avgpool(phi'(z) ⊙ Rz) (avg pooling is linear; batch = directions).
//   2 gather: Out[b][s, c, py, px] = In[b][s, c, Idx[s, c, py, px]]: the tangent of max pooling,
//             Ra_{k+1} = the recorded arg-max cells of phi'(z) ⊙ Rz (batch = directions).
// Bindings: 0 In (read), 1 Out (read_write), 2 Idx (read_write, u32; written by POOL 0, read by 2,
//           unused by 1), 3 params (uniform PoolParams, include/pool_common.wgsl;
//           count = batch*rows*C*Hp*Wp).
// CPU twin: Pooling.forward / Pooling.tangent (src/reference/pooling.ts).

// #include "elementwise.wgsl"
// #include "pool_common.wgsl"

override POOL: u32 = 0u;

@group(0) @binding(0) var<storage, read> In: array<f32>;
@group(0) @binding(1) var<storage, read_write> Out: array<f32>;
@group(0) @binding(2) var<storage, read_write> Idx: array<u32>;
@group(0) @binding(3) var<uniform> p: PoolParams;

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let t = elementIndex(gid, groups);
  if (t >= p.count) {
    return;
  }
  let px = t % p.Wp;
  var r = t / p.Wp;
  let py = r % p.Hp;
  r = r / p.Hp;
  let c = r % p.C;
  r = r / p.C;
  let s = r % p.rows;
  let b = r / p.rows;
  let plane = (s * p.C + c);
  let inBase = p.offIn + b * p.sInB + plane * p.H * p.W;
  let pe = (plane * p.Hp + py) * p.Wp + px;
  let oi = p.offOut + b * p.sOutB + pe;
  if (POOL == 2u) {
    Out[oi] = In[inBase + Idx[pe]];
    return;
  }
  let y0 = i32(py * p.sh) - i32(p.ph);
  let x0 = i32(px * p.sw) - i32(p.pw);
  var best = 0.0;
  var arg = 0u;
  var found = false;
  var sum = 0.0;
  for (var i = 0u; i < p.kh; i++) {
    let y = y0 + i32(i);
    if (y < 0 || y >= i32(p.H)) {
      continue;
    }
    for (var j = 0u; j < p.kw; j++) {
      let x = x0 + i32(j);
      if (x < 0 || x >= i32(p.W)) {
        continue;
      }
      let cell = u32(y) * p.W + u32(x);
      let v = In[inBase + cell];
      if (POOL == 0u) {
        if (!found || v > best) {
          best = v;
          arg = cell;
          found = true;
        }
      } else {
        sum += v;
      }
    }
  }
  if (POOL == 0u) {
    Out[oi] = best;
    Idx[pe] = arg;
  } else {
    Out[oi] = sum / avgDivisor(py, px);
  }
}
