// 3x3, stride-1, pad-1 convolution: the data movement half (the GEMM half is cuBLAS).
//
// conv3x3_im2col: x (N, C, H, W) -> cols (N, C*9, H*W)
//   cols[n, c*9 + ky*3 + kx, y*W + x] = x[n, c, y + ky - 1, x + kx - 1], 0 outside the image.
// The same gather serves the input gradient (applied to gy with the flipped, transposed
// weights), so there is no col2im scatter and no atomics.
//
// conv3x3_im2col_relu_bwd: the same gather of gy * (y > 0), for the backward pass of a conv
// followed by a ReLU (y: the ReLU's output). Fusing the ReLU mask into the gather saves a pass
// over the gradient and a temporary of its size in every conv layer.
//
// Launch: 1-D grid-stride loop; one thread writes one element of cols.

template <typename T, bool MASKED>
__device__ void im2col3x3(const T* __restrict__ x, const T* __restrict__ y, T* __restrict__ cols,
                          int n, int c, int h, int w) {
    const long long hw = (long long)h * w;
    const long long total = (long long)n * c * 9 * hw;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long p = i % hw;          // output position y*W + x
        const long long row = i / hw;        // (n, c, ky, kx) flattened
        const int k = (int)(row % 9);
        const long long nc = row / 9;        // n*C + c
        const int sy = (int)(p / w) + k / 3 - 1;  // source row and column
        const int sx = (int)(p % w) + k % 3 - 1;
        if (sy >= 0 && sy < h && sx >= 0 && sx < w) {
            const long long j = nc * hw + (long long)sy * w + sx;
            cols[i] = MASKED ? x[j] * T(y[j] > T(0)) : x[j];  // gy * mask, as the NumPy path
        } else {
            cols[i] = T(0);
        }
    }
}

extern "C" {
__global__ void conv3x3_im2col_f32(const float* x, float* cols, int n, int c, int h, int w) {
    im2col3x3<float, false>(x, nullptr, cols, n, c, h, w);
}
__global__ void conv3x3_im2col_f64(const double* x, double* cols, int n, int c, int h, int w) {
    im2col3x3<double, false>(x, nullptr, cols, n, c, h, w);
}
__global__ void conv3x3_im2col_relu_bwd_f32(const float* gy, const float* y, float* cols, int n, int c, int h, int w) {
    im2col3x3<float, true>(gy, y, cols, n, c, h, w);
}
__global__ void conv3x3_im2col_relu_bwd_f64(const double* gy, const double* y, double* cols, int n, int c, int h, int w) {
    im2col3x3<double, true>(gy, y, cols, n, c, h, w);
}
}
