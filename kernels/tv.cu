// Total variation R(x) = sum (x[i,j+1]-x[i,j])^2 + (x[i+1,j]-x[i,j])^2 over (NC, H, W) planes.
//
// tv_fwd_bwd: one thread handles one pixel (i, j):
//   terms[i,j] = its right and down squared differences (those that exist); sum(terms) = R
//   gx[i,j]    = dR/dx[i,j] = 2 * sum over existing neighbours n of (x[i,j] - x[n])
// A gather (each thread reads its 4 neighbours), so no atomics. 1-D grid-stride loop.

template <typename T>
__device__ void tv_fwd_bwd(const T* __restrict__ x, T* __restrict__ terms, T* __restrict__ gx,
                           int nc, int h, int w) {
    const long long total = (long long)nc * h * w;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int s = (int)(i % w);
        const int r = (int)((i / w) % h);
        const T v = x[i];
        T t = T(0), g = T(0);
        if (s + 1 < w) { const T d = x[i + 1] - v; t += d * d; g -= T(2) * d; }
        if (r + 1 < h) { const T d = x[i + w] - v; t += d * d; g -= T(2) * d; }
        if (s > 0) g += T(2) * (v - x[i - 1]);
        if (r > 0) g += T(2) * (v - x[i - w]);
        terms[i] = t;
        gx[i] = g;
    }
}

extern "C" __global__ void tv_fwd_bwd_f32(const float* x, float* terms, float* gx, int nc, int h, int w) {
    tv_fwd_bwd<float>(x, terms, gx, nc, h, w);
}
extern "C" __global__ void tv_fwd_bwd_f64(const double* x, double* terms, double* gx, int nc, int h, int w) {
    tv_fwd_bwd<double>(x, terms, gx, nc, h, w);
}
