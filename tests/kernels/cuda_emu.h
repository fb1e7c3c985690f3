// Just enough CUDA for g++ to compile an unchanged kernels/<name>.cu into a CPU shared library.
//
// Build: g++ -O1 -shared -fPIC -std=c++14 -include cuda_emu.h -x c++ kernels/pool.cu
// The emulator (tests/kernels/emulator.py) then calls each kernel once per (block, thread),
// after emu_set() has placed that thread's coordinates in blockIdx / threadIdx.
//
// Threads run one after another, so only kernels without __shared__ memory or
// __syncthreads() can be emulated; those two are deliberately left undefined, so such a
// kernel fails to compile here instead of running wrongly.
#pragma once

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// __restrict__ is a g++ keyword already.

struct emu_dim3 {
    unsigned int x, y, z;
};

static emu_dim3 blockIdx, threadIdx, blockDim, gridDim;

extern "C" void emu_set(unsigned int bx, unsigned int by, unsigned int bz,
                        unsigned int tx, unsigned int ty, unsigned int tz,
                        unsigned int bdx, unsigned int bdy, unsigned int bdz,
                        unsigned int gdx, unsigned int gdy, unsigned int gdz) {
    blockIdx = {bx, by, bz};
    threadIdx = {tx, ty, tz};
    blockDim = {bdx, bdy, bdz};
    gridDim = {gdx, gdy, gdz};
}
