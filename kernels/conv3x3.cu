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
// Launch: a 2-D grid. y (a grid-stride loop: gridDim.y stops at 65535) runs over the N*C*9 rows
// of cols, each row one (plane, ky, kx) found by divisions by the constants 9 and 3; x (a
// grid-stride loop) runs over the row's H*W positions, one thread per element, with 32-bit
// unsigned index math: one division (p / W) per element, no 64-bit division anywhere.
// A plane must hold fewer than 2^31 positions (engine/ops/conv3x3.py checks).

template <typename T, bool MASKED>
__device__ void im2col3x3(const T* __restrict__ x, const T* __restrict__ y, T* __restrict__ cols,
                          int n, int c, int h, int w) {
    const unsigned uw = (unsigned)w, hw = (unsigned)h * uw;
    const long long rows = (long long)n * c * 9;
    for (long long row = blockIdx.y; row < rows; row += gridDim.y) {
        const long long plane = row / 9;                  // n*C + c; a constant divisor: a multiply
        const int k = (int)(row - plane * 9);             // ky*3 + kx
        const int dy = k / 3 - 1, dx = k % 3 - 1;         // the tap's offset
        const T* src = x + plane * hw;
        const T* msk = MASKED ? y + plane * hw : nullptr;
        T* dst = cols + row * hw;
        for (unsigned p = blockIdx.x * blockDim.x + threadIdx.x; p < hw; p += blockDim.x * gridDim.x) {
            const unsigned oy = p / uw;                   // output row and column
            const int sy = (int)oy + dy, sx = (int)(p - oy * uw) + dx;   // source row and column
            if (sy >= 0 && sy < h && sx >= 0 && sx < w) {
                const unsigned j = (unsigned)sy * uw + (unsigned)sx;
                dst[p] = MASKED ? src[j] * T(msk[j] > T(0)) : src[j];   // gy * mask, as the NumPy path
            } else {
                dst[p] = T(0);
            }
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
