// activate.wgsl: A[i] = phi(Z[i]) elementwise, phi(z) = z > 0 ? z : slope * z (ReLU: slope 0).
// Bindings: 0 Z (read), 1 A (read_write), 2 params (uniform). One element per thread, 256 per group,
// 2-D grid (x + y * 65535 groups) so large tensors fit the per-dimension dispatch limit.
// CPU twin: the a.push(z.map(phi)) line of ReferenceObjective.forward.

// #include "elementwise.wgsl"

struct Params {
  count: u32, offZ: u32, offA: u32, slope: f32,
}

@group(0) @binding(0) var<storage, read> Z: array<f32>;
@group(0) @binding(1) var<storage, read_write> A: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = elementIndex(gid, groups);
  if (i >= p.count) {
    return;
  }
  let z = Z[p.offZ + i];
  A[p.offA + i] = select(p.slope * z, z, z > 0.0);
}
