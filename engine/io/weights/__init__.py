"""Weights files: ranvgg's own .npz, and the trained VGG-19 formats it converts from.

    npz           the .npz format VGG19.load / VGG19.save use, read without trusting it
    meta          the schema of a weights file's JSON meta
    safezip       zip containers (.npz, torch .pth, wheels) judged from their directory
    torch_pickle  torch.save files (zip and legacy) read with a restricted unpickler, no torch
    keras_h5      Keras VGG-19 .h5 files (needs h5py)
    convert       which source a file is, and its mapping onto docs/method.md, section 1's layer names
"""
