// 3x3, stride-1, pad-1 convolution: the data movement half (the GEMM half is cuBLAS).
//
// conv3x3_im2col: x (N, C, H, W) -> cols (N, C*9, H*W)
//   cols[n, c*9 + ky*3 + kx, y*W + x] = x[n, c, y + ky - 1, x + kx - 1], 0 outside the image.
// The same gather serves the input gradient (applied to gy with the flipped, transposed
// weights), so there is no col2im scatter and no atomics.
//
// Launch: 1-D grid-stride loop; one thread writes one element of cols.

template <typename T>
__device__ void im2col3x3(const T* __restrict__ x, T* __restrict__ cols,
                          int n, int c, int h, int w) {
    const long long hw = (long long)h * w;
    const long long total = (long long)n * c * 9 * hw;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long p = i % hw;          // output position y*W + x
        const long long row = i / hw;        // (n, c, ky, kx) flattened
        const int k = (int)(row % 9);
        const long long nc = row / 9;        // n*C + c
        const int y = (int)(p / w) + k / 3 - 1;
        const int xx = (int)(p % w) + k % 3 - 1;
        cols[i] = (y >= 0 && y < h && xx >= 0 && xx < w) ? x[nc * hw + (long long)y * w + xx] : T(0);
    }
}

extern "C" __global__ void conv3x3_im2col_f32(const float* x, float* cols, int n, int c, int h, int w) {
    im2col3x3<float>(x, cols, n, c, h, w);
}

extern "C" __global__ void conv3x3_im2col_f64(const double* x, double* cols, int n, int c, int h, int w) {
    im2col3x3<double>(x, cols, n, c, h, w);
}
