// Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution on the GPU: the two data transforms of each
// (the GEMMs are cuBLAS).
//
// F(M x M, 3x3), M = 2 or 4, a = M + 2: a 3x3, pad-1 conv of an a x a input tile d gives an
// M x M output tile (Lavin & Gray 2016):
//     Y = A^T [ U * (B^T d B) ] A,   U = G g G^T (made once per layer, engine/ops/winograd_gpu.py)
// with the matrices of engine/ops/winograd.py (points 0, 1, -1 for M = 2; 0, 1, -1, 2, -2 for
// M = 4; and infinity). Tiles: th = ceil(H/M) rows by tw = ceil(W/M) columns per plane, P = th*tw
// per image; tile (ty, tx) reads input rows M*ty-1 .. M*ty+M and columns M*tx-1 .. M*tx+M (0
// outside the image).
//
// winograd{M}_input: x (N, C, H, W) -> v (a*a, C, N*P), v[k, c, n*P + t] = (B^T d B)[k / a, k % a]
// winograd{M}_input_relu_bwd: the same of gy * (y > 0) (a ReLU that followed the conv, backward)
// winograd{M}_output: m (a*a, Cout, N*P) -> y (N, Cout, H, W) = A^T m A + bias (ReLU if relu != 0)
//
// Launch: a 2-D grid; y (with a grid-stride loop) runs over the N*C planes, x (a grid-stride
// loop) over one plane's tiles, so each thread finds its tile with 32-bit integer math only.
// One thread per tile; no shared memory, no __syncthreads, no atomics.

#define PLANE_LOOP(plane, planes)                                                       \
    for (long long plane = blockIdx.y; plane < (planes); plane += gridDim.y)
#define TILE_LOOP(t, tiles)                                                             \
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < (tiles); t += blockDim.x * gridDim.x)

// Tile<M>::bt: r = B^T d (a values in, a out); Tile<M>::at: r = A^T q (a in, M out); the
// inputs s apart, the outputs rs apart, so that one function serves columns and rows.
template <int M> struct Tile;

template <> struct Tile<2> {
    template <typename T>
    __device__ static __forceinline__ void bt(const T* d, int s, T* r, int rs) {
        const T d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s];
        r[0] = d0 - d2;
        r[rs] = d1 + d2;
        r[2 * rs] = d2 - d1;
        r[3 * rs] = d1 - d3;
    }
    template <typename T>
    __device__ static __forceinline__ void at(const T* q, int s, T* r, int rs) {
        const T q0 = q[0], q1 = q[s], q2 = q[2 * s], q3 = q[3 * s];
        r[0] = q0 + q1 + q2;
        r[rs] = q1 - q2 - q3;
    }
};

template <> struct Tile<4> {
    template <typename T>
    __device__ static __forceinline__ void bt(const T* d, int s, T* r, int rs) {
        const T d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
        r[0] = T(4) * d0 - T(5) * d2 + d4;
        r[rs] = -T(4) * d1 - T(4) * d2 + d3 + d4;
        r[2 * rs] = T(4) * d1 - T(4) * d2 - d3 + d4;
        r[3 * rs] = -T(2) * d1 - d2 + T(2) * d3 + d4;
        r[4 * rs] = T(2) * d1 - d2 - T(2) * d3 + d4;
        r[5 * rs] = T(4) * d1 - T(5) * d3 + d5;
    }
    template <typename T>
    __device__ static __forceinline__ void at(const T* q, int s, T* r, int rs) {
        const T q0 = q[0], q1 = q[s], q2 = q[2 * s], q3 = q[3 * s], q4 = q[4 * s], q5 = q[5 * s];
        r[0] = q0 + q1 + q2 + q3 + q4;
        r[rs] = q1 - q2 + T(2) * q3 - T(2) * q4;
        r[2 * rs] = q1 + q2 + T(4) * q3 + T(4) * q4;
        r[3 * rs] = q1 - q2 + T(8) * q3 - T(8) * q4 + q5;
    }
};

template <typename T, int M, bool MASKED>
__device__ void winograd_input(const T* __restrict__ x, const T* __restrict__ mask, T* __restrict__ v,
                               int n, int c, int h, int w) {
    constexpr int A = M + 2;
    const int th = (h + M - 1) / M, tw = (w + M - 1) / M, tiles = th * tw;
    const long long np = (long long)n * tiles, plane_stride = (long long)c * np;   // v's k stride
    PLANE_LOOP(plane, (long long)n * c) {
        const int b = (int)(plane / c), ci = (int)(plane - (long long)b * c);
        const T* src = x + plane * h * w;
        const T* msk = MASKED ? mask + plane * h * w : nullptr;
        T* dst = v + (long long)ci * np + (long long)b * tiles;
        TILE_LOOP(t, tiles) {
            const int ty = t / tw, tx = t - ty * tw;
            T d[A][A];
            for (int i = 0; i < A; ++i) {
                const int y = M * ty - 1 + i;
                for (int j = 0; j < A; ++j) {
                    const int xx = M * tx - 1 + j;
                    T val = T(0);
                    if (y >= 0 && y < h && xx >= 0 && xx < w) {
                        const int o = y * w + xx;
                        val = src[o];
                        if (MASKED) val = val * T(msk[o] > T(0));   // gy * mask, as the NumPy path
                    }
                    d[i][j] = val;
                }
            }
            T r[A][A];   // B^T d, column by column
            for (int j = 0; j < A; ++j) Tile<M>::bt(&d[0][j], A, &r[0][j], A);
            for (int i = 0; i < A; ++i) {   // (B^T d) B, row by row, written point by point
                T o[A];
                Tile<M>::bt(&r[i][0], 1, o, 1);
                for (int j = 0; j < A; ++j) dst[(A * i + j) * plane_stride + t] = o[j];
            }
        }
    }
}

template <typename T, int M>
__device__ void winograd_output(const T* __restrict__ m, const T* __restrict__ bias, T* __restrict__ y,
                                int n, int cout, int h, int w, int relu) {
    constexpr int A = M + 2;
    const int th = (h + M - 1) / M, tw = (w + M - 1) / M, tiles = th * tw;
    const long long np = (long long)n * tiles, plane_stride = (long long)cout * np;
    PLANE_LOOP(plane, (long long)n * cout) {
        const int b = (int)(plane / cout), co = (int)(plane - (long long)b * cout);
        const T* src = m + (long long)co * np + (long long)b * tiles;
        T* dst = y + plane * h * w;
        const T add = bias[co];
        TILE_LOOP(t, tiles) {
            const int ty = t / tw, tx = t - ty * tw;
            T q[A][A];
            for (int k = 0; k < A * A; ++k) q[k / A][k % A] = src[k * plane_stride + t];
            T r[M][A];   // A^T m, column by column
            for (int j = 0; j < A; ++j) Tile<M>::at(&q[0][j], A, &r[0][j], A);
            for (int i = 0; i < M; ++i) {
                const int yy = M * ty + i;
                if (yy >= h) break;
                T out[M];   // (A^T m) A, one row
                Tile<M>::at(&r[i][0], 1, out, 1);
                for (int j = 0; j < M; ++j) {
                    const int xx = M * tx + j;
                    if (xx >= w) break;
                    const T val = out[j] + add;
                    dst[yy * w + xx] = (relu && val < T(0)) ? T(0) : val;   // NaN passes, as in NumPy
                }
            }
        }
    }
}

// The entry points, with C linkage, written out (the tests read their signatures from this text).
extern "C" {
__global__ void winograd2_input_f32(const float* x, float* v, int n, int c, int h, int w) {
    winograd_input<float, 2, false>(x, nullptr, v, n, c, h, w);
}
__global__ void winograd2_input_relu_bwd_f32(const float* gy, const float* y, float* v, int n, int c, int h, int w) {
    winograd_input<float, 2, true>(gy, y, v, n, c, h, w);
}
__global__ void winograd2_output_f32(const float* m, const float* bias, float* y, int n, int cout, int h, int w, int relu) {
    winograd_output<float, 2>(m, bias, y, n, cout, h, w, relu);
}
__global__ void winograd2_input_f64(const double* x, double* v, int n, int c, int h, int w) {
    winograd_input<double, 2, false>(x, nullptr, v, n, c, h, w);
}
__global__ void winograd2_input_relu_bwd_f64(const double* gy, const double* y, double* v, int n, int c, int h, int w) {
    winograd_input<double, 2, true>(gy, y, v, n, c, h, w);
}
__global__ void winograd2_output_f64(const double* m, const double* bias, double* y, int n, int cout, int h, int w, int relu) {
    winograd_output<double, 2>(m, bias, y, n, cout, h, w, relu);
}
__global__ void winograd4_input_f32(const float* x, float* v, int n, int c, int h, int w) {
    winograd_input<float, 4, false>(x, nullptr, v, n, c, h, w);
}
__global__ void winograd4_input_relu_bwd_f32(const float* gy, const float* y, float* v, int n, int c, int h, int w) {
    winograd_input<float, 4, true>(gy, y, v, n, c, h, w);
}
__global__ void winograd4_output_f32(const float* m, const float* bias, float* y, int n, int cout, int h, int w, int relu) {
    winograd_output<float, 4>(m, bias, y, n, cout, h, w, relu);
}
__global__ void winograd4_input_f64(const double* x, double* v, int n, int c, int h, int w) {
    winograd_input<double, 4, false>(x, nullptr, v, n, c, h, w);
}
__global__ void winograd4_input_relu_bwd_f64(const double* gy, const double* y, double* v, int n, int c, int h, int w) {
    winograd_input<double, 4, true>(gy, y, v, n, c, h, w);
}
__global__ void winograd4_output_f64(const double* m, const double* bias, double* y, int n, int cout, int h, int w, int relu) {
    winograd_output<double, 4>(m, bias, y, n, cout, h, w, relu);
}
}
