// landscape_perturb.wgsl: P perturbed parameter vectors at once for loss-landscape grids.
//   Theta[q][i] = V[0][i] + sum_{j < J} Coef[coefOffset + q*J + j] * V[1 + j][i],   q < count, i < n
// (V[0] the base vector theta, V[1..J] the basis vectors u_j).
// (theta_p = theta + a_p d1 + b_p d2 is J = 2; a T_alpha orbit point is theta + (e^t - 1) u+ + (e^-t - 1) u-).
// The terms are added in order j = 0..J-1 with fma, so results are deterministic.
// Bindings: 0 V (read, [1 + J, n] row-major), 1 Coef (read, [P, J] row-major),
//           2 Theta (read_write, [count, n]: point-major, each a flat parameter vector), 3 params (uniform).
// Workgroup 256 threads along i; grid x + y * groups.x covers n (2-D so large n fits the per-dimension
// limit), z = q (one slice per point).
// CPU twin: the theta_p loop of SequentialBatchLoss.losses (src/landscape/batchLoss.ts).

// #include "elementwise.wgsl"

struct Params {
  n: u32, count: u32, basis: u32, coefOffset: u32,
}

@group(0) @binding(0) var<storage, read> V: array<f32>;
@group(0) @binding(1) var<storage, read> Coef: array<f32>;
@group(0) @binding(2) var<storage, read_write> Theta: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = elementIndex(gid, groups);
  let q = gid.z;
  if (i >= p.n || q >= p.count) {
    return;
  }
  var value = V[i];
  let c0 = p.coefOffset + q * p.basis;
  for (var j = 0u; j < p.basis; j++) {
    value = fma(Coef[c0 + j], V[(1u + j) * p.n + i], value);
  }
  Theta[q * p.n + i] = value;
}
