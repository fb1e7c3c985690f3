// Winograd F(2x2, 3x3) convolution on the GPU: the two data transforms (the GEMMs are cuBLAS).
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

extern "C" {
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
