// Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution on the GPU: the two data transforms of each
// (the GEMMs are cuBLAS).
//
// A 3x3, pad-1 conv of a 4x4 input tile d gives a 2x2 output tile (Lavin & Gray 2016):
//     Y = A^T [ U * (B^T d B) ] A,   U = G g G^T (made once per layer, engine/ops/winograd_gpu.py)
// Tiles: th = ceil(H/2) rows by tw = ceil(W/2) columns per plane, P = th*tw per image; tile
// (ty, tx) reads input rows 2ty-1 .. 2ty+2 and columns 2tx-1 .. 2tx+2 (0 outside the image).
//
// winograd2_input: x (N, C, H, W) -> v (16, C, N*P), v[k, c, n*P + t] = (B^T d B)[k / 4, k % 4]
// winograd2_input_relu_bwd: the same of gy * (y > 0) (a ReLU that followed the conv, backward)
// winograd2_output: m (16, Cout, N*P) -> y (N, Cout, H, W) = A^T m A + bias (ReLU if relu != 0)
//
// Launch: a 2-D grid; y (with a grid-stride loop) runs over the N*C planes, x (a grid-stride
// loop) over one plane's tiles, so each thread finds its tile with 32-bit integer math only.
// One thread per tile; no shared memory, no __syncthreads, no atomics.

#define PLANE_LOOP(plane, planes)                                                       \
    for (long long plane = blockIdx.y; plane < (planes); plane += gridDim.y)
#define TILE_LOOP(t, tiles)                                                             \
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < (tiles); t += blockDim.x * gridDim.x)

template <typename T, bool MASKED>
__device__ void winograd2_input(const T* __restrict__ x, const T* __restrict__ mask, T* __restrict__ v,
                                int n, int c, int h, int w) {
    const int th = (h + 1) / 2, tw = (w + 1) / 2, tiles = th * tw;
    const long long np = (long long)n * tiles, plane_stride = (long long)c * np;   // v's k stride
    PLANE_LOOP(plane, (long long)n * c) {
        const int b = (int)(plane / c), ci = (int)(plane - (long long)b * c);
        const T* src = x + plane * h * w;
        const T* msk = MASKED ? mask + plane * h * w : nullptr;
        T* dst = v + (long long)ci * np + (long long)b * tiles;
        TILE_LOOP(t, tiles) {
            const int ty = t / tw, tx = t - ty * tw;
            T d[4][4];
            for (int i = 0; i < 4; ++i) {
                const int y = 2 * ty - 1 + i;
                for (int j = 0; j < 4; ++j) {
                    const int xx = 2 * tx - 1 + j;
                    T val = T(0);
                    if (y >= 0 && y < h && xx >= 0 && xx < w) {
                        const int o = y * w + xx;
                        val = src[o];
                        if (MASKED) val = val * T(msk[o] > T(0));   // gy * mask, as the NumPy path
                    }
                    d[i][j] = val;
                }
            }
            T r[4][4];   // B^T d
            for (int j = 0; j < 4; ++j) {
                r[0][j] = d[0][j] - d[2][j];
                r[1][j] = d[1][j] + d[2][j];
                r[2][j] = d[2][j] - d[1][j];
                r[3][j] = d[1][j] - d[3][j];
            }
            for (int i = 0; i < 4; ++i) {   // (B^T d) B, written point by point
                dst[(4 * i + 0) * plane_stride + t] = r[i][0] - r[i][2];
                dst[(4 * i + 1) * plane_stride + t] = r[i][1] + r[i][2];
                dst[(4 * i + 2) * plane_stride + t] = r[i][2] - r[i][1];
                dst[(4 * i + 3) * plane_stride + t] = r[i][1] - r[i][3];
            }
        }
    }
}

template <typename T>
__device__ void winograd2_output(const T* __restrict__ m, const T* __restrict__ bias, T* __restrict__ y,
                                 int n, int cout, int h, int w, int relu) {
    const int th = (h + 1) / 2, tw = (w + 1) / 2, tiles = th * tw;
    const long long np = (long long)n * tiles, plane_stride = (long long)cout * np;
    PLANE_LOOP(plane, (long long)n * cout) {
        const int b = (int)(plane / cout), co = (int)(plane - (long long)b * cout);
        const T* src = m + (long long)co * np + (long long)b * tiles;
        T* dst = y + plane * h * w;
        const T add = bias[co];
        TILE_LOOP(t, tiles) {
            const int ty = t / tw, tx = t - ty * tw;
            T q[4][4];
            for (int k = 0; k < 16; ++k) q[k / 4][k % 4] = src[k * plane_stride + t];
            T r[2][4];   // A^T m
            for (int j = 0; j < 4; ++j) {
                r[0][j] = q[0][j] + q[1][j] + q[2][j];
                r[1][j] = q[1][j] - q[2][j] - q[3][j];
            }
            for (int i = 0; i < 2; ++i) {
                const int yy = 2 * ty + i;
                if (yy >= h) break;
                const T out[2] = {r[i][0] + r[i][1] + r[i][2] + add, r[i][1] - r[i][2] - r[i][3] + add};
                for (int j = 0; j < 2; ++j) {
                    const int xx = 2 * tx + j;
                    if (xx >= w) break;
                    const T val = out[j];
                    dst[yy * w + xx] = (relu && val < T(0)) ? T(0) : val;   // NaN passes, as in NumPy
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Winograd F(4x4, 3x3): 6x6 input tiles, 4x4 output tiles (points 0, 1, -1, 2, -2 and infinity;
// the matrices of engine/ops/winograd.py, so that U from winograd.weight_transform(w, 4) fits).
// Tiles: th = ceil(H/4) by tw = ceil(W/4); tile (ty, tx) reads rows 4ty-1 .. 4ty+4 and columns
// 4tx-1 .. 4tx+4 (0 outside the image); v and m are (36, C, N*P), point k = 6*i + j.
//
// winograd4_input, winograd4_input_relu_bwd, winograd4_output: as their F(2x2) namesakes.

template <typename T>
__device__ __forceinline__ void bt4(const T* d, int s, T* r, int rs) {   // r = B^T d, 6 -> 6
    const T d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
    r[0] = T(4) * d0 - T(5) * d2 + d4;
    r[rs] = -T(4) * d1 - T(4) * d2 + d3 + d4;
    r[2 * rs] = T(4) * d1 - T(4) * d2 - d3 + d4;
    r[3 * rs] = -T(2) * d1 - d2 + T(2) * d3 + d4;
    r[4 * rs] = T(2) * d1 - d2 - T(2) * d3 + d4;
    r[5 * rs] = T(4) * d1 - T(5) * d3 + d5;
}

template <typename T>
__device__ __forceinline__ void at4(const T* q, int s, T* r, int rs) {   // r = A^T q, 6 -> 4
    const T q0 = q[0], q1 = q[s], q2 = q[2 * s], q3 = q[3 * s], q4 = q[4 * s], q5 = q[5 * s];
    r[0] = q0 + q1 + q2 + q3 + q4;
    r[rs] = q1 - q2 + T(2) * q3 - T(2) * q4;
    r[2 * rs] = q1 + q2 + T(4) * q3 + T(4) * q4;
    r[3 * rs] = q1 - q2 + T(8) * q3 - T(8) * q4 + q5;
}

template <typename T, bool MASKED>
__device__ void winograd4_input(const T* __restrict__ x, const T* __restrict__ mask, T* __restrict__ v,
                                int n, int c, int h, int w) {
    const int th = (h + 3) / 4, tw = (w + 3) / 4, tiles = th * tw;
    const long long np = (long long)n * tiles, plane_stride = (long long)c * np;   // v's k stride
    PLANE_LOOP(plane, (long long)n * c) {
        const int b = (int)(plane / c), ci = (int)(plane - (long long)b * c);
        const T* src = x + plane * h * w;
        const T* msk = MASKED ? mask + plane * h * w : nullptr;
        T* dst = v + (long long)ci * np + (long long)b * tiles;
        TILE_LOOP(t, tiles) {
            const int ty = t / tw, tx = t - ty * tw;
            T d[6][6];
            for (int i = 0; i < 6; ++i) {
                const int y = 4 * ty - 1 + i;
                for (int j = 0; j < 6; ++j) {
                    const int xx = 4 * tx - 1 + j;
                    T val = T(0);
                    if (y >= 0 && y < h && xx >= 0 && xx < w) {
                        const int o = y * w + xx;
                        val = src[o];
                        if (MASKED) val = val * T(msk[o] > T(0));   // gy * mask, as the NumPy path
                    }
                    d[i][j] = val;
                }
            }
            T r[6][6];   // B^T d, column by column
            for (int j = 0; j < 6; ++j) bt4(&d[0][j], 6, &r[0][j], 6);
            for (int i = 0; i < 6; ++i) {   // (B^T d) B, row by row, written point by point
                T o[6];
                bt4(&r[i][0], 1, o, 1);
                for (int j = 0; j < 6; ++j) dst[(6 * i + j) * plane_stride + t] = o[j];
            }
        }
    }
}

template <typename T>
__device__ void winograd4_output(const T* __restrict__ m, const T* __restrict__ bias, T* __restrict__ y,
                                 int n, int cout, int h, int w, int relu) {
    const int th = (h + 3) / 4, tw = (w + 3) / 4, tiles = th * tw;
    const long long np = (long long)n * tiles, plane_stride = (long long)cout * np;
    PLANE_LOOP(plane, (long long)n * cout) {
        const int b = (int)(plane / cout), co = (int)(plane - (long long)b * cout);
        const T* src = m + (long long)co * np + (long long)b * tiles;
        T* dst = y + plane * h * w;
        const T add = bias[co];
        TILE_LOOP(t, tiles) {
            const int ty = t / tw, tx = t - ty * tw;
            T q[6][6];
            for (int k = 0; k < 36; ++k) q[k / 6][k % 6] = src[k * plane_stride + t];
            T r[4][6];   // A^T m, column by column
            for (int j = 0; j < 6; ++j) at4(&q[0][j], 6, &r[0][j], 6);
            for (int i = 0; i < 4; ++i) {
                const int yy = 4 * ty + i;
                if (yy >= h) break;
                T out[4];   // (A^T m) A, one row
                at4(&r[i][0], 1, out, 1);
                for (int j = 0; j < 4; ++j) {
                    const int xx = 4 * tx + j;
                    if (xx >= w) break;
                    const T val = out[j] + add;
                    dst[yy * w + xx] = (relu && val < T(0)) ? T(0) : val;   // NaN passes, as in NumPy
                }
            }
        }
    }
}

extern "C" {
__global__ void winograd4_input_f32(const float* x, float* v, int n, int c, int h, int w) {
    winograd4_input<float, false>(x, nullptr, v, n, c, h, w);
}
__global__ void winograd4_input_f64(const double* x, double* v, int n, int c, int h, int w) {
    winograd4_input<double, false>(x, nullptr, v, n, c, h, w);
}
__global__ void winograd4_input_relu_bwd_f32(const float* gy, const float* y, float* v, int n, int c, int h, int w) {
    winograd4_input<float, true>(gy, y, v, n, c, h, w);
}
__global__ void winograd4_input_relu_bwd_f64(const double* gy, const double* y, double* v, int n, int c, int h, int w) {
    winograd4_input<double, true>(gy, y, v, n, c, h, w);
}
__global__ void winograd4_output_f32(const float* m, const float* bias, float* y, int n, int cout, int h, int w,
                                     int relu) {
    winograd4_output<float>(m, bias, y, n, cout, h, w, relu);
}
__global__ void winograd4_output_f64(const double* m, const double* bias, double* y, int n, int cout, int h, int w,
                                     int relu) {
    winograd4_output<double>(m, bias, y, n, cout, h, w, relu);
}

__global__ void winograd2_input_f32(const float* x, float* v, int n, int c, int h, int w) {
    winograd2_input<float, false>(x, nullptr, v, n, c, h, w);
}
__global__ void winograd2_input_f64(const double* x, double* v, int n, int c, int h, int w) {
    winograd2_input<double, false>(x, nullptr, v, n, c, h, w);
}
__global__ void winograd2_input_relu_bwd_f32(const float* gy, const float* y, float* v, int n, int c, int h, int w) {
    winograd2_input<float, true>(gy, y, v, n, c, h, w);
}
__global__ void winograd2_input_relu_bwd_f64(const double* gy, const double* y, double* v, int n, int c, int h, int w) {
    winograd2_input<double, true>(gy, y, v, n, c, h, w);
}
__global__ void winograd2_output_f32(const float* m, const float* bias, float* y, int n, int cout, int h, int w,
                                     int relu) {
    winograd2_output<float>(m, bias, y, n, cout, h, w, relu);
}
__global__ void winograd2_output_f64(const double* m, const double* bias, double* y, int n, int cout, int h, int w,
                                     int relu) {
    winograd2_output<double>(m, bias, y, n, cout, h, w, relu);
}
}
