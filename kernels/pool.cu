// 2x2, stride-2 pooling over (NC, H, W) planes; odd sizes are floored (Ho = H/2, Wo = W/2).
//
// avgpool2_fwd: one thread writes one y[p, i, j] = mean of x[p, 2i..2i+1, 2j..2j+1]
// avgpool2_bwd: one thread writes one gx[p, r, s] = gy[p, r/2, s/2] / 4 (0 in a floored edge)
// maxpool2_fwd: one thread writes one y[p, i, j] = window max and arg = its index 0..3
//               (row-major; the first maximum wins ties)
// maxpool2_bwd: one thread writes one gx[p, r, s] = gy[p, r/2, s/2] if (r, s) won, else 0
// Backward passes are gathers, so no atomics. All loops are 1-D grid-stride loops; plane_index
// splits a flat index with two 64-bit divisions (one helper for all four kernels).

#define GRID_LOOP(i, total) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (total); \
         i += (long long)blockDim.x * gridDim.x)

// Element i of (P, rows, cols) planes -> its plane p, row r and column c.
struct PlaneIndex {
    long long p;
    int r, c;
};

__device__ __forceinline__ PlaneIndex plane_index(long long i, int rows, int cols) {
    const long long pr = i / cols;   // plane * rows + row
    return {pr / rows, (int)(pr % rows), (int)(i - pr * cols)};
}

// The four kernels share their shape on purpose (one element per thread, its plane found by
// plane_index): each reads as the whole story of its op, as its NumPy twin in engine/ops/pooling.py.
template <typename T>
__device__ void avgpool2_fwd(const T* __restrict__ x, T* __restrict__ y, int nc, int h, int w) {
    const int ho = h / 2, wo = w / 2;
    GRID_LOOP(i, (long long)nc * ho * wo) {
        const PlaneIndex at = plane_index(i, ho, wo);
        const long long p = at.p;
        const int r = at.r, j = at.c;
        const T* src = x + p * h * w + (long long)(2 * r) * w + 2 * j;
        y[i] = (src[0] + src[1] + src[w] + src[w + 1]) * T(0.25);
    }
}

template <typename T>
__device__ void avgpool2_bwd(const T* __restrict__ gy, T* __restrict__ gx, int nc, int h, int w) {
    const int ho = h / 2, wo = w / 2;
    GRID_LOOP(i, (long long)nc * h * w) {
        const PlaneIndex at = plane_index(i, h, w);
        const long long p = at.p;
        const int r = at.r, s = at.c;
        const int pi = r / 2, pj = s / 2;
        gx[i] = (pi < ho && pj < wo) ? gy[(p * ho + pi) * wo + pj] * T(0.25) : T(0);
    }
}

template <typename T>
__device__ void maxpool2_fwd(const T* __restrict__ x, T* __restrict__ y, unsigned char* __restrict__ arg,
                             int nc, int h, int w) {
    const int ho = h / 2, wo = w / 2;
    GRID_LOOP(i, (long long)nc * ho * wo) {
        const PlaneIndex at = plane_index(i, ho, wo);
        const long long p = at.p;
        const int r = at.r, j = at.c;
        const T* src = x + p * h * w + (long long)(2 * r) * w + 2 * j;
        T best = src[0];
        unsigned char k = 0;
        for (int q = 1; q < 4; ++q) {
            const T v = src[(q / 2) * w + (q % 2)];
            if (v > best) { best = v; k = (unsigned char)q; }
        }
        y[i] = best;
        arg[i] = k;
    }
}

template <typename T>
__device__ void maxpool2_bwd(const T* __restrict__ gy, const unsigned char* __restrict__ arg, T* __restrict__ gx,
                             int nc, int h, int w) {
    const int ho = h / 2, wo = w / 2;
    GRID_LOOP(i, (long long)nc * h * w) {
        const PlaneIndex at = plane_index(i, h, w);
        const long long p = at.p;
        const int r = at.r, s = at.c;
        const int pi = r / 2, pj = s / 2;
        const long long o = (p * ho + pi) * wo + pj;
        gx[i] = (pi < ho && pj < wo && arg[o] == (r % 2) * 2 + (s % 2)) ? gy[o] : T(0);
    }
}

extern "C" {
__global__ void avgpool2_fwd_f32(const float* x, float* y, int nc, int h, int w) { avgpool2_fwd<float>(x, y, nc, h, w); }
__global__ void avgpool2_fwd_f64(const double* x, double* y, int nc, int h, int w) { avgpool2_fwd<double>(x, y, nc, h, w); }
__global__ void avgpool2_bwd_f32(const float* gy, float* gx, int nc, int h, int w) { avgpool2_bwd<float>(gy, gx, nc, h, w); }
__global__ void avgpool2_bwd_f64(const double* gy, double* gx, int nc, int h, int w) { avgpool2_bwd<double>(gy, gx, nc, h, w); }
__global__ void maxpool2_fwd_f32(const float* x, float* y, unsigned char* arg, int nc, int h, int w) {
    maxpool2_fwd<float>(x, y, arg, nc, h, w);
}
__global__ void maxpool2_fwd_f64(const double* x, double* y, unsigned char* arg, int nc, int h, int w) {
    maxpool2_fwd<double>(x, y, arg, nc, h, w);
}
__global__ void maxpool2_bwd_f32(const float* gy, const unsigned char* arg, float* gx, int nc, int h, int w) {
    maxpool2_bwd<float>(gy, arg, gx, nc, h, w);
}
__global__ void maxpool2_bwd_f64(const double* gy, const unsigned char* arg, double* gx, int nc, int h, int w) {
    maxpool2_bwd<double>(gy, arg, gx, nc, h, w);
}
}
