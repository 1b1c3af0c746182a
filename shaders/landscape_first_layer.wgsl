// landscape_first_layer.wgsl: the first layer of `count` perturbed nets from the first layer of
// 1 + J shared ones. z_0 = x W_0^T + b_0 is linear in (W_0, b_0), so for
// theta_q = base + sum_j c_qj u_j
//   Z_q = Zs[0] + sum_{j < J} c_qj Zs[1 + j],   Zs[0] = x W_base^T + b_base,  Zs[1 + j] = x U_j^T + c_j
// (Zs by one batched GEMM over the 1 + J vectors, gemm.wgsl): each point then costs O(rows * out)
// instead of O(rows * in * out), which is most of the work when the input is wide (images).
//   Out[q][e] = phi(Z_q[e]) when `activate` (a hidden layer), else Z_q[e] (a one-layer net's output),
//   phi(z) = z > 0 ? z : slope * z, for e < elements (= rows * out, row-major [rows, out]).
// The terms are added in order j = 0..J-1 with fma: deterministic.
// Bindings: 0 Zs (read, [1 + J, stride]), 1 Coef (read, [P, J] row-major), 2 Out (read_write,
//           [count, stride]), 3 params (uniform).
// Workgroup 256 threads along e; grid x + y * groups.x covers the elements, z = q.
// CPU twin: the layer-0 loop of ReferenceObjective.forward at each theta_q (SequentialBatchLoss).

// #include "elementwise.wgsl"

struct Params {
  elements: u32, stride: u32, count: u32, basis: u32,
  coefOffset: u32, activate: u32, slope: f32, pad0: u32,
}

@group(0) @binding(0) var<storage, read> Zs: array<f32>;
@group(0) @binding(1) var<storage, read> Coef: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let e = elementIndex(gid, groups);
  let q = gid.z;
  if (e >= p.elements || q >= p.count) {
    return;
  }
  var v = Zs[e];
  let c0 = p.coefOffset + q * p.basis;
  for (var j = 0u; j < p.basis; j++) {
    v = fma(Coef[c0 + j], Zs[(1u + j) * p.stride + e], v);
  }
  if (p.activate != 0u) {
    v = select(p.slope * v, v, v > 0.0);
  }
  Out[q * p.stride + e] = v;
}
