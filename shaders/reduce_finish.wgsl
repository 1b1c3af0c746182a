// reduce_finish.wgsl: second stage of reduce.wgsl: one workgroup sums `groups` partials into
// result[offOut] with the same fixed order (Kahan per thread, then a tree).
// Bindings: 0 partial (read), 1 result (read_write), 2 params (uniform, same struct as reduce.wgsl).

struct Params {
  n: u32, offX: u32, offY: u32, mode: u32,
  groups: u32, offOut: u32, pad0: u32, pad1: u32,
}

var<workgroup> scratch: array<f32, 256>;

@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> result: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  let t = lid.x;
  var s = 0.0;
  var comp = 0.0;
  for (var i = t; i < p.groups; i += 256u) {
    let yk = partial[i] - comp;
    let tk = s + yk;
    comp = (tk - s) - yk;
    s = tk;
  }
  scratch[t] = s;
  for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
    workgroupBarrier();
    if (t < stride) {
      scratch[t] += scratch[t + stride];
    }
  }
  if (t == 0u) {
    result[p.offOut] = scratch[0];
  }
}
