// ReLU forward and backward, one element per thread (1-D grid-stride loop).
//
// relu_fwd: y[i] = max(x[i], 0), NaN kept
// relu_bwd: gx[i] = gy[i] * (y[i] > 0)        (needs only the output y, not x)

template <typename T>
__device__ void relu_fwd(const T* __restrict__ x, T* __restrict__ y, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        const T v = x[i];
        y[i] = v < T(0) ? T(0) : v;  // NaN passes through, as in NumPy's maximum
    }
}

template <typename T>
__device__ void relu_bwd(const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        gx[i] = gy[i] * T(y[i] > T(0));  // gy * mask, exactly as the NumPy path (NaN kept)
    }
}

extern "C" __global__ void relu_fwd_f32(const float* x, float* y, long long n) { relu_fwd<float>(x, y, n); }
extern "C" __global__ void relu_fwd_f64(const double* x, double* y, long long n) { relu_fwd<double>(x, y, n); }
extern "C" __global__ void relu_bwd_f32(const float* y, const float* gy, float* gx, long long n) {
    relu_bwd<float>(y, gy, gx, n);
}
extern "C" __global__ void relu_bwd_f64(const double* y, const double* gy, double* gx, long long n) {
    relu_bwd<double>(y, gy, gx, n);
}
