// pool_common.wgsl: the parameters shared by pool2d_forward.wgsl and pool2d_backward.wgsl (spliced
// in by build.mjs where a kernel says `// #include "pool_common.wgsl"`; filled by poolParams in
// src/gpu/convDispatch.ts). Pooling (PyTorch MaxPool2d / AvgPool2d, floor mode) maps the
// activation h [rows, C, H, W] to [rows, C, Hp, Wp]; window (py, px) covers rows
// py sh - ph .. py sh - ph + kh - 1 and the columns likewise, cells outside the image are padding.
//   In   [batch][...] at offIn + b*sInB      Out [batch][...] at offOut + b*sOutB
//   Idx  arg-max per pooled cell, [rows, C, Hp, Wp] (no batch): y*W + x inside its channel plane
//   Mask pre-activations z [rows, C, H, W] at offMask (no batch), for the phi'(z) factor

struct PoolParams {
  C: u32, H: u32, W: u32, Hp: u32,
  Wp: u32, kh: u32, kw: u32, sh: u32,
  sw: u32, ph: u32, pw: u32, rows: u32,
  batch: u32, countIncludePad: u32, offIn: u32, sInB: u32,
  offOut: u32, sOutB: u32, offMask: u32, slope: f32,
  count: u32, pad0: u32, pad1: u32, pad2: u32,
}

/** Cells of window (py, px) inside the image: the average's divisor when padding is not counted. */
fn windowCells(py: u32, px: u32) -> f32 {
  let y0 = i32(py * p.sh) - i32(p.ph);
  let x0 = i32(px * p.sw) - i32(p.pw);
  let hy = min(y0 + i32(p.kh), i32(p.H)) - max(y0, 0);
  let hx = min(x0 + i32(p.kw), i32(p.W)) - max(x0, 0);
  return f32(hy * hx);
}

/** The divisor of an average over window (py, px): kh*kw with countIncludePad, else its in-image cells. */
fn avgDivisor(py: u32, px: u32) -> f32 {
  if (p.countIncludePad != 0u) {
    return f32(p.kh * p.kw);
  }
  return windowCells(py, px);
}
