// scale.wgsl: Y[i] = alpha * Y[i]. 2-D grid for vectors past 65535 * 256 entries.
// Bindings: 0 Y (read_write), 1 params (uniform).
// CPU twin: HostVectorSpace.scale (src/reference/engine.ts).

// #include "elementwise.wgsl"

struct Params {
  n: u32, offY: u32, pad0: u32, pad1: u32,
  alpha: f32, pad2: f32, pad3: f32, pad4: f32,
}

@group(0) @binding(0) var<storage, read_write> Y: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = elementIndex(gid, groups);
  if (i >= p.n) {
    return;
  }
  Y[p.offY + i] = p.alpha * Y[p.offY + i];
}
