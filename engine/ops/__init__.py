"""The primitive ops, one family per file: forward, input-gradient backward, CPU and GPU paths.

    conv3x3.py  3x3 stride-1 pad-1 convolution (im2col gather + GEMM), bias; picks the algorithm
    winograd.py the CPU's Winograd F(2x2) / F(4x4) form of that conv (conv3x3.py dispatches)
    winograd_gpu.py  the GPU's Winograd F(2x2) / F(4x4) form: kernels/winograd.cu around one GEMM
    direct.py   the CPU's shifted-sum form of that conv, for few channels on one side (the image layer)
    relu.py     ReLU
    pooling.py  2x2 average and max pooling
    fc.py       fully connected (fc6-fc8)
    gram.py     Gram matrix G = F F^T
    losses.py   inversion (content) loss and Gram (texture) loss, analytic gradients
    tv.py       total variation
    stats.py    centred moments and the sliced Wasserstein distance (beside the Gram loss)
    spectrum.py a Fourier-spectrum loss (each channel's DFT magnitude held to the exemplar's)
    fftconv.py  large-filter convolution by FFT (the multi-scale random filter bank)
    project.py  random projection of a layer's channels (statistics of K combinations of C channels)
    border.py   wrap an image around (a periodic synthesis) and cut a window out of a map

Each op takes and returns ``engine.autograd.Tensor``; the array-level ``*_forward`` /
``*_backward`` functions it is built from work on NumPy or CuPy arrays alike. Import from the
file: ``from engine.ops.conv3x3 import conv3x3``.
"""
