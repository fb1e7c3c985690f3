"""The proof that ranvgg is right, mirroring the tree: tests/engine/ (the compute core),
tests/engine/io/ (file formats), tests/kernels/ (NVRTC compiles and the CPU grid emulator of
every raw CUDA kernel), tests/tasks/ (the commands), tests/bench/ (the GPU proof command's own
logic), and the README and docs at the top. ``python -m pytest`` runs the default suite;
``-m slow`` the long runs; ``-m gpu`` the parity suite on a CUDA device."""
