"""What every task does between its options and its outputs: the optimisation pipeline.

    inputs    input images (files or shipped samples), the fc crop, the starting image
    network   the network a task runs on (ranVGG recipe, plain random draw, weights file),
              its layer listing, and the memory check before a run
    runner    calibrate, optimise with progress, save and log: the same for every task
    scales    coarse to fine (--scales): solve small first, upsample, continue
    scoring   scores of texture and style results in networks other than the one optimised
"""
