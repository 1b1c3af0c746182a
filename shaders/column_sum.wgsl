// column_sum.wgsl: out[b][c] (+)= sum_r X[b][r, c], rows summed in order 0..R-1 (deterministic).
// Used for bias gradients dL/db = sum over samples of delta, and their R-operator counterparts.
// Bindings: 0 X (read, row-major [batch][rows, cols]), 1 out (read_write), 2 params (uniform).
// CPU twin: the bias branch of ReferenceObjective.accumulateLayerGradient.

struct Params {
  rows: u32, cols: u32, batch: u32, accumulate: u32,
  offX: u32, sXb: u32, offOut: u32, sOutB: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let b = gid.y;
  if (c >= p.cols || b >= p.batch) {
    return;
  }
  let base = p.offX + b * p.sXb + c;
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    s += X[base + r * p.cols];
  }
  let o = p.offOut + b * p.sOutB + c;
  if (p.accumulate != 0u) {
    s += out[o];
  }
  out[o] = s;
}
