/**
 * Dense linear algebra in float64 for adapter initialisation (PiSSA's SVD, OLoRA's QR) and adapter
 * combination (SVD of a summed update). Sizes are those of one weight matrix, so plain O(n³)
 * methods are fine.
 * @internal
 */

/** Eigen-decomposition of a symmetric n×n matrix (row-major) by cyclic Jacobi rotations. */
export function symmetricEigen(n: number, matrix: Float64Array): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i];
  return { values, vectors: v };
}

/**
 * The r largest singular triplets of W [rows, cols]: U [rows, r], S [r], Vt [r, cols], with
 * W ≈ U·diag(S)·Vt. Computed from the eigen-decomposition of the smaller Gram matrix.
 */
export function truncatedSvd(w: Float64Array, rows: number, cols: number, r: number): { u: Float64Array; s: Float64Array; vt: Float64Array } {
  const k = Math.min(rows, cols);
  if (r > k) r = k;
  const byCols = cols <= rows;  // Gram = WᵀW [cols, cols] gives V; otherwise WWᵀ gives U
  const n = byCols ? cols : rows;
  const gram = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let sum = 0;
      if (byCols) for (let t = 0; t < rows; t++) sum += w[t * cols + i] * w[t * cols + j];
      else for (let t = 0; t < cols; t++) sum += w[i * cols + t] * w[j * cols + t];
      gram[i * n + j] = gram[j * n + i] = sum;
    }
  }
  const { values, vectors } = symmetricEigen(n, gram);
  const order = [...values.keys()].sort((x, y) => values[y] - values[x]).slice(0, r);
  const u = new Float64Array(rows * r), s = new Float64Array(r), vt = new Float64Array(r * cols);
  order.forEach((idx, j) => {
    const sigma = Math.sqrt(Math.max(values[idx], 0));
    s[j] = sigma;
    if (byCols) {
      for (let c = 0; c < cols; c++) vt[j * cols + c] = vectors[c * n + idx];
      for (let t = 0; t < rows; t++) {  // u = W v / σ
        let sum = 0;
        for (let c = 0; c < cols; c++) sum += w[t * cols + c] * vt[j * cols + c];
        u[t * r + j] = sigma > 0 ? sum / sigma : 0;
      }
    } else {
      for (let t = 0; t < rows; t++) u[t * r + j] = vectors[t * n + idx];
      for (let c = 0; c < cols; c++) {  // vᵀ = uᵀ W / σ
        let sum = 0;
        for (let t = 0; t < rows; t++) sum += u[t * r + j] * w[t * cols + c];
        vt[j * cols + c] = sigma > 0 ? sum / sigma : 0;
      }
    }
  });
  return { u, s, vt };
}

/** Reduced QR of W [rows, cols] by Householder reflections: Q [rows, k], R [k, cols], k = min(rows, cols). */
export function qrReduced(w: Float64Array, rows: number, cols: number): { q: Float64Array; r: Float64Array; k: number } {
  const k = Math.min(rows, cols);
  const a = Float64Array.from(w);
  const reflectors: Float64Array[] = [];
  for (let j = 0; j < k; j++) {
    const v = new Float64Array(rows);
    let norm = 0;
    for (let i = j; i < rows; i++) norm += a[i * cols + j] * a[i * cols + j];
    norm = Math.sqrt(norm);
    const alpha = a[j * cols + j] > 0 ? -norm : norm;
    for (let i = j; i < rows; i++) v[i] = a[i * cols + j];
    v[j] -= alpha;
    let vnorm = 0;
    for (let i = j; i < rows; i++) vnorm += v[i] * v[i];
    if (vnorm > 0) {
      for (let c = j; c < cols; c++) {
        let dot = 0;
        for (let i = j; i < rows; i++) dot += v[i] * a[i * cols + c];
        const f = (2 * dot) / vnorm;
        for (let i = j; i < rows; i++) a[i * cols + c] -= f * v[i];
      }
    }
    reflectors.push(vnorm > 0 ? v.map((x) => x / Math.sqrt(vnorm)) : v);
  }
  const r = new Float64Array(k * cols);
  for (let i = 0; i < k; i++) for (let c = i; c < cols; c++) r[i * cols + c] = a[i * cols + c];
  // Q = H0·H1·…·H(k-1) applied to the first k columns of the identity.
  const q = new Float64Array(rows * k);
  for (let i = 0; i < k; i++) q[i * k + i] = 1;
  for (let j = k - 1; j >= 0; j--) {
    const v = reflectors[j];
    for (let c = 0; c < k; c++) {
      let dot = 0;
      for (let i = j; i < rows; i++) dot += v[i] * q[i * k + c];
      for (let i = j; i < rows; i++) q[i * k + c] -= 2 * dot * v[i];
    }
  }
  return { q, r, k };
}
