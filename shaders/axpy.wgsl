// axpy.wgsl: Y[i] = alpha * X[i] + beta * Y[i] (axpy: beta = 1).
// 2-D grid for vectors past 65535 * 256 entries.
// Bindings: 0 X (read), 1 Y (read_write), 2 params (uniform).
// CPU twin: HostVectorSpace.axpy (src/reference/engine.ts).

// #include "elementwise.wgsl"

struct Params {
  n: u32, offX: u32, offY: u32, pad: u32,
  alpha: f32, beta: f32, pad1: f32, pad2: f32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = elementIndex(gid, groups);
  if (i >= p.n) {
    return;
  }
  Y[p.offY + i] = p.alpha * X[p.offX + i] + p.beta * Y[p.offY + i];
}
