"""File formats and I/O, apart from the compute core: nothing here touches a device.

    image     images in and out: load (any Pillow mode, EXIF orientation), resize, the
              preprocessing of a network, save as PNG / JPEG / 16-bit TIFF with the run's metadata
    tiff      a minimal 16-bit RGB TIFF encoder
    files     atomic_write (unique temporary, fsync, rename) and same_file: every output goes here
    weights   ranvgg's .npz weights format and the trained VGG-19 formats it converts from
"""
